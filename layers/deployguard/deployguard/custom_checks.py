"""Custom checks: the application team's own Lambda functions, invoked before and/or after traffic
shifts with the deployment's context. Their JSON answer joins the decision like a smoke test's: the
same bounded pool, per-check timeout and hook deadline (:func:`deployguard.smoke.run_bounded`), the
same quoting through the invocation's redactor, the same record.

The contract (docs/policy.md#custom-checks): the check receives :func:`check_context` as its event
and answers ``{"result": "pass" | "fail", "findings": [{"code", "level", "message"}, ...]}``.
Anything else fails the release (fail closed): a "fail", an error-level finding, a function error,
an answer that is not JSON or not that shape, no answer in time, an invocation that is refused.
"""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING, Any

from deployguard.errors import DeployGuardError
from deployguard.findings import CheckResult, Finding, Result, Severity
from deployguard.records import datarecord
from deployguard.smoke import ERROR_MESSAGE_SHOWN, BoundedJob, run_bounded

if TYPE_CHECKING:
    from deployguard.appspec import DeploymentTarget
    from deployguard.policy import CheckPhase, CustomCheck
    from deployguard.ports import LambdaPort
    from deployguard.secrets import Redactor
    from deployguard.snapshot import InvocationResult

CHECK_FAILED = "CHK001"  # the check answered "fail", or an error-level finding
CHECK_TIMED_OUT = "CHK002"  # no answer within its timeout_ms or by the hook's deadline
CHECK_RAISED = "CHK003"  # the check function raised (FunctionError)
CHECK_GARBLED = "CHK004"  # the answer is not JSON or not the contract's shape
CHECK_NOT_INVOKED = "CHK005"  # the invocation was refused (not found, access denied: the stage tag)

MAX_FINDINGS = 20
"""Findings of one check kept in the record; the rest are counted."""
_CODE_SHOWN = 32
_MESSAGE_SHOWN = 300

LIFECYCLE_EVENTS: dict[str, str] = {"pre_traffic": "BeforeAllowTraffic", "post_traffic": "AfterAllowTraffic"}


@datarecord
class CheckContext:
    """What a check function is told about the deployment it judges."""

    deployment_id: str
    stage: str
    application: str | None
    function_name: str
    alias: str
    target_version: str
    target_version_arn: str | None
    current_version: str | None

    @classmethod
    def of(
        cls,
        deployment_id: str,
        target: DeploymentTarget,
        *,
        stage: str,
        application: str | None,
        target_version_arn: str | None = None,
    ) -> CheckContext:
        """The context of ``target``'s deployment ``deployment_id``."""
        return cls(
            deployment_id=deployment_id,
            stage=stage,
            application=application,
            function_name=target.function_name,
            alias=target.alias,
            target_version=target.target_version,
            target_version_arn=target_version_arn,
            current_version=target.current_version,
        )


def check_context(context: CheckContext, phase: CheckPhase, check: CustomCheck) -> dict[str, Any]:
    """The event a check function receives (documented in docs/policy.md#custom-checks)."""
    return {
        "deployguard": {"check": check.name, "schema": "deployguard.check/1"},
        "deployment_id": context.deployment_id,
        "lifecycle_event": LIFECYCLE_EVENTS[phase],
        "stage": context.stage,
        "application": context.application,
        "function_name": context.function_name,
        "alias": context.alias,
        "target_version": context.target_version,
        "target_version_arn": context.target_version_arn,
        "previous_version": context.current_version,
    }


@datarecord
class _Reported:
    code: str
    level: str
    message: str


@datarecord
class _Answer:
    result: str
    findings: list[_Reported]


ANSWER_SHAPE = (
    '{"result": "pass" or "fail", "findings": [{"code": "...", "level": "error" or "warning", '
    '"message": "..."}]}'
)


def parse_answer(answer: Any) -> _Answer | str:
    """The check's answer, or where it departs from the contract (extra keys are ignored).

    NOTE: hand-checked, not a pydantic model: this module is imported at the pre-traffic hook's
    cold start, which does not import pydantic until a policy is parsed."""
    if not isinstance(answer, dict):
        return "$ is not an object"
    if answer.get("result") not in ("pass", "fail"):
        return '$.result is not "pass" or "fail"'
    findings = answer.get("findings", [])
    if not isinstance(findings, list):
        return "$.findings is not an array"
    reported: list[_Reported] = []
    for index, item in enumerate(findings):
        where = f"$.findings[{index}]"
        if not isinstance(item, dict):
            return f"{where} is not an object"
        code, level, message = item.get("code"), item.get("level"), item.get("message")
        if not isinstance(code, str) or not code:
            return f"{where}.code is not a non-empty string"
        if level not in ("error", "warning"):
            return f'{where}.level is not "error" or "warning"'
        if not isinstance(message, str):
            return f"{where}.message is not a string"
        reported.append(_Reported(code=code, level=level, message=message))
    return _Answer(result=answer["result"], findings=reported)


def split_function(function: str) -> tuple[str, str]:
    """(function, qualifier) of a check's ``function``: a name, a name with ':<qualifier>', an ARN,
    or an ARN with ':<qualifier>'; the qualifier defaults to $LATEST."""
    parts = function.split(":")
    if parts[0] == "arn" and len(parts) == 8:
        return ":".join(parts[:7]), parts[7]
    if parts[0] != "arn" and len(parts) == 2:
        return parts[0], parts[1]
    return function, "$LATEST"


def judge_answer(check: CustomCheck, result: InvocationResult, redactor: Redactor | None) -> CheckResult:
    """The CheckResult of one check's answer; what it quotes is redacted, then clipped."""
    name = f"custom:{check.name}"

    def quote(text: str, limit: int) -> str:
        # NOTE: as smoke quotes: without the redactor kept whole, for the record to redact, then clip
        return redactor.clip(text, limit) if redactor is not None else text

    def failed(code: str, message: str) -> CheckResult:
        finding = Finding(code=code, severity=Severity.ERROR, subject=check.name, message=message)
        return CheckResult(name=name, result=Result.FAILED, message=message, findings=[finding])

    try:
        answer: Any = json.loads(result.payload) if result.payload else None
    except ValueError:
        answer = None
        if not result.function_error:
            return failed(CHECK_GARBLED, f"the check {check.function} answered something that is not JSON")
    if result.function_error:
        error = answer if isinstance(answer, dict) else {}
        kind = quote(str(error.get("errorType", result.function_error)), _CODE_SHOWN)
        message = quote(str(error.get("errorMessage", "")), ERROR_MESSAGE_SHOWN)
        return failed(CHECK_RAISED, f"the check {check.function} raised {kind}: {message}".rstrip(": "))
    parsed = parse_answer(answer)
    if isinstance(parsed, str):
        return failed(
            CHECK_GARBLED,
            f"the check {check.function} answered JSON that is not a check answer ({parsed}): answer {ANSWER_SHAPE}",
        )
    findings = [
        Finding(
            code=CHECK_FAILED,
            severity=Severity(f.level),
            subject=f"{check.name}/{quote(f.code, _CODE_SHOWN)}",
            message=quote(f.message, _MESSAGE_SHOWN),
        )
        for f in parsed.findings[:MAX_FINDINGS]
    ]
    more = len(parsed.findings) - MAX_FINDINGS
    blocking = parsed.result == "fail" or any(f.severity is Severity.ERROR for f in findings)
    if more > 0:
        level = (
            Severity.ERROR
            if any(f.level == "error" for f in parsed.findings[MAX_FINDINGS:])
            else Severity.WARNING
        )
        findings.append(
            Finding(code=CHECK_FAILED, severity=level, subject=check.name, message=f"{more} more finding(s)")
        )
        blocking = blocking or level is Severity.ERROR
    if blocking and not any(f.severity is Severity.ERROR for f in findings):
        findings.append(
            Finding(
                code=CHECK_FAILED,
                severity=Severity.ERROR,
                subject=check.name,
                message=f"the check {check.function} answered fail",
            )
        )
    if blocking:
        message = "; ".join(f.message for f in findings if f.severity is Severity.ERROR)
        return CheckResult(name=name, result=Result.FAILED, message=message, findings=findings)
    return CheckResult(
        name=name,
        result=Result.WARNED if findings else Result.PASSED,
        message=f"passed in {result.latency_ms:.0f} ms"
        + (f" with {len(findings)} warning(s)" if findings else ""),
        findings=findings,
    )


def run_custom_checks(
    checks: list[CustomCheck],
    phase: CheckPhase,
    context: CheckContext,
    functions: LambdaPort,
    *,
    deadline: float | None = None,
    redactor: Redactor | None = None,
) -> list[CheckResult]:
    """Invoke every check of ``phase`` (all at once, each within its timeout_ms, all by ``deadline``);
    one CheckResult per check, in the policy's order. Never raises for a check."""

    def job(check: CustomCheck) -> BoundedJob:
        function, qualifier = split_function(check.function)
        payload = json.dumps(check_context(context, phase, check)).encode()

        def run() -> CheckResult:
            begin = time.perf_counter()
            try:
                result = functions.invoke(function, qualifier, payload, deployment_id=context.deployment_id)
            except DeployGuardError as exc:
                message = (
                    f"the check {check.function} could not be invoked ({exc}): it must exist and carry "
                    f"the tag deployguard:stage={context.stage}"
                )
                finding = Finding(
                    code=CHECK_NOT_INVOKED, severity=Severity.ERROR, subject=check.name, message=message
                )
                return CheckResult(
                    name=f"custom:{check.name}",
                    result=Result.ERROR,
                    message=message,
                    duration_ms=_ms(begin),
                    findings=[finding],
                )
            judged = judge_answer(check, result, redactor)
            return CheckResult(
                name=judged.name,
                result=judged.result,
                message=judged.message,
                duration_ms=_ms(begin),
                findings=judged.findings,
            )

        return BoundedJob(
            check_name=f"custom:{check.name}",
            subject=check.name,
            timeout_ms=check.timeout_ms,
            timeout_code=CHECK_TIMED_OUT,
            timeout_owner="the check's",
            run=run,
        )

    selected = [c for c in checks if phase in c.when]
    return run_bounded([job(c) for c in selected], concurrency=None, deadline=deadline)


def _ms(begin: float) -> float:
    return (time.perf_counter() - begin) * 1000
