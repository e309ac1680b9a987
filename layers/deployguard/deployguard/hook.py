"""Exactly one honest status per CodeDeploy lifecycle hook execution.

The protocol every hook shares, in :func:`guard_lifecycle_event`, top to bottom:
- parse the event; without both ids nothing can be reported, so log and stop (no retry storm);
- the status is Failed unless checks that finish in time say otherwise (fail closed): an
  exception, malformed input, a missing policy, invalid settings or an AWS error each become a
  failed evaluation;
- a retried invocation whose lifecycle event already has a status stops without re-running checks;
- the checks run on a worker against a deadline that keeps ``reserve`` seconds before the Lambda
  timeout, so a slow check still ends in a reported Failed, not an hour of waiting; their AWS
  calls see the deadline (``deployguard.deadlines``): a throttled call is retried while it fits;
- PutLifecycleEventHookExecutionStatus exactly once; LifecycleEventAlreadyCompleted is logged;
- if the report itself cannot be delivered, raise, so Lambda's async retry tries again;
- then the outcome record (log line, metrics, alert).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from typing import TYPE_CHECKING, Any, Literal

from aws_lambda_powertools.utilities.data_classes.code_deploy_lifecycle_hook_event import (
    CodeDeployLifecycleHookEvent,
)

from deployguard.appspec import DeploymentTarget
from deployguard.deadlines import deadline_at, in_context
from deployguard.errors import DeployGuardError, EventError
from deployguard.findings import CheckResult, Decision, Finding, Result, decide, error_findings
from deployguard.guard import Bypassed, Unguarded, bypass_reason
from deployguard.mode import ENFORCE, Mode, apply_mode
from deployguard.observability import finish_record, logger
from deployguard.outcome import Action, ActionKind, OutcomeRecord, Role
from deployguard.outcome import Bypassed as Bypass
from deployguard.records import datarecord
from deployguard.redaction import RedactedError
from deployguard.secrets import Redactor

if TYPE_CHECKING:
    from deployguard.ports import AlertPublisher, HookStatusPort

HookName = Literal["BeforeAllowTraffic", "AfterAllowTraffic"]
AfterSuccess = Callable[[], CheckResult]
"""Work done once a Succeeded status was reported (version pruning); it never raises."""

REPORT_MARGIN_SECONDS = 1.0  # of the Lambda's remaining time, left when the status report gives up

DEADLINE_MESSAGE = (
    "checks did not finish before the hook's deadline; reported Failed with time to spare "
    "instead of letting CodeDeploy wait (raise the function's Timeout or trim the checks)"
)


@datarecord
class HookIds:
    deployment_id: str
    lifecycle_event_hook_execution_id: str


_ALPHANUMERIC = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
# NOTE: botocore's CodeDeploy model gives both ids as plain strings (no length, no pattern).
# DeployGuard bounds them by what CodeDeploy issues, with headroom: a deployment id is "d-" and 9
# letters or digits (moto issues UUIDs); a hook execution id is the base64 of an encrypted JSON
# envelope, about 250 characters. (field, most characters, allowed characters, in words)
HOOK_ID_RULES: dict[str, tuple[int, frozenset[str], str]] = {
    "DeploymentId": (64, frozenset(_ALPHANUMERIC + "-"), "letters, digits and '-'"),
    "LifecycleEventHookExecutionId": (1024, frozenset(_ALPHANUMERIC + "+/=_-"), "base64 characters"),
}


def hook_id_problem(field_name: str, value: Any) -> str | None:
    """What is wrong with ``value`` as the lifecycle id ``field_name`` (a key of HOOK_ID_RULES), or
    None. The answer names the field and what it must be; it never quotes the value."""
    most, allowed, described = HOOK_ID_RULES[field_name]
    rule = f"{field_name} must be a string of 1 to {most} {described}"
    if not isinstance(value, str):
        return f"{rule}, not {_json_kind(value)}"
    if not value:
        return f"{rule}, not an empty string"
    if len(value) > most:
        return f"{rule}, not {len(value):,} characters"
    if not set(value) <= allowed:
        return f"{rule}; it holds other characters"
    return None


def _json_kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, list | tuple):
        return "an array"
    return "an object" if isinstance(value, Mapping) else f"a {type(value).__name__}"


def parse_hook_event(event: Mapping[str, Any]) -> HookIds:
    """The two ids of a CodeDeploy lifecycle hook event. EventError when either is missing or is
    not a lifecycle id (a number, a list, too long…): such an event can never be reported, so the
    hook logs it and returns instead of letting Lambda retry it."""
    try:
        parsed = CodeDeployLifecycleHookEvent(dict(event))
        deployment_id = parsed.deployment_id
        execution_id = parsed.lifecycle_event_hook_execution_id
    except (KeyError, TypeError, ValueError) as exc:
        raise EventError(
            "the event is not a CodeDeploy lifecycle hook event: it needs 'DeploymentId' and "
            "'LifecycleEventHookExecutionId' (see events/pre_traffic_hook.json)"
        ) from exc
    problems = [
        problem
        for name, value in (("DeploymentId", deployment_id), ("LifecycleEventHookExecutionId", execution_id))
        if (problem := hook_id_problem(name, value)) is not None
    ]
    if problems:
        raise EventError(
            "; ".join(problems)
            + ": CodeDeploy sends both as it issued them (see events/pre_traffic_hook.json)"
        )
    return HookIds(deployment_id=deployment_id, lifecycle_event_hook_execution_id=execution_id)


@dataclass
class Evaluation:
    """What a hook's checks concluded. A ``bypass`` succeeds whatever the checks; ``defer`` leaves
    the report to the bake workflow."""

    checks: list[CheckResult] = field(default_factory=list)
    target: DeploymentTarget | None = None
    reason: str = ""
    bypass: Bypass | None = None
    redactor: Redactor = field(default_factory=Redactor)
    defer: bool = False  # the status will be reported later (bake workflow started)
    actions: list[Action] = field(default_factory=list)
    mode: Mode = ENFORCE  # the guarding entry's; enforce when no entry was read (fail closed)
    # run once the checks' own Succeeded was reported (version pruning); its result joins the record
    after_success: AfterSuccess | None = None


def failed_evaluation(error: DeployGuardError) -> Evaluation:
    """The evaluation of checks that could not run: one ERROR check named after the error, which
    is also the reason (invalid settings, an AWS call that failed, a missing policy…).

    A :class:`~deployguard.redaction.RedactedError` (raised after the invocation's redactor was
    built) keeps that redactor for the record and the original error's name; a bug's is
    ``internal``, and its traceback is logged, redacted (never the raw one: it would quote the
    values the bug saw)."""
    if not isinstance(error, RedactedError):
        return _failed(type(error).__name__, str(error), findings=error_findings(error))
    if error.crashed:
        logger.error(
            "hook check crashed",
            extra={"error_type": error.error_type, "error": str(error), "traceback": error.traceback},
        )
    name = "internal" if error.crashed else error.error_type
    return _failed(name, str(error), error.redactor, findings=error.findings)


def unchecked_evaluation(verdict: Unguarded | Bypassed, target: DeploymentTarget) -> Evaluation:
    """The policy settles it without checks: the function is not guarded, or this deployment is
    bypassed (reported Succeeded, with the bypass in the record)."""
    if isinstance(verdict, Unguarded):
        return Evaluation(checks=[verdict.policy_check], target=target)
    return Evaluation(
        checks=[verdict.policy_check],
        target=target,
        bypass=verdict.bypass,
        reason=bypass_reason(verdict.bypass),
    )


@datarecord
class HookRun:
    ids: HookIds
    deadline: float  # time.monotonic() instant by which checks must be done

    def seconds_left(self) -> float:
        return self.deadline - time.monotonic()


@datarecord
class AlreadyReported:
    """The lifecycle event already has this status: a retried invocation, nothing to re-run."""

    status: str


Evaluate = Callable[[HookRun], Evaluation]


def guard_lifecycle_event(
    event: Mapping[str, Any],
    *,
    hook: HookName,
    role: Role,
    stage: str | None,
    codedeploy: HookStatusPort,
    evaluate: Evaluate,
    remaining_ms: Callable[[], int],
    reserve_seconds: float,
    alerts: AlertPublisher | None = None,
) -> OutcomeRecord:
    """Run the checks and report one status; ``alerts`` gets a summary of a failed deployment,
    published only after the status has been reported (errors logged, never raised)."""
    record = OutcomeRecord(role=role, hook=hook, stage=stage)
    try:
        ids = parse_hook_event(event)
    except EventError as exc:
        logger.error("malformed hook event", extra={"error": str(exc)})
        return finish_record(replace(record, reason=f"{exc}; nothing can be reported to CodeDeploy"))
    record = replace(
        record,
        deployment_id=ids.deployment_id,
        lifecycle_event_hook_execution_id=ids.lifecycle_event_hook_execution_id,
    )
    run = HookRun(ids=ids, deadline=time.monotonic() + remaining_ms() / 1000 - reserve_seconds)

    # Evaluate within the deadline; past it, the deadline's failed evaluation stands.
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"{hook}-checks")
    try:
        answer = pool.submit(in_context(_evaluate), run, hook, codedeploy, evaluate).result(
            timeout=max(run.seconds_left(), 0)
        )
    except TimeoutError:
        answer = _failed("deadline", DEADLINE_MESSAGE)
    finally:
        # NOTE: no wait (and no `with`, which waits): a worker past the deadline finishes on its
        # own; the hook must report now.
        pool.shutdown(wait=False)
    if isinstance(answer, AlreadyReported):
        logger.info("lifecycle event already reported", extra={"status": answer.status})
        reason = f"{hook} of this deployment already has status {answer.status}; checks not re-run"
        action = Action(kind=ActionKind.STATUS_ALREADY_REPORTED, detail=answer.status)
        return finish_record(replace(record, reason=reason, actions=[action]))

    # Decide: a bypass succeeds (audited); otherwise every check must pass.
    decision = Decision.SUCCEEDED if answer.bypass else decide(answer.checks)
    target = answer.target
    record = replace(
        record,
        checks=answer.checks,
        bypass=answer.bypass,
        reason=answer.reason or _reason(decision, answer.checks),
        actions=list(answer.actions),
        **asdict(target) if target else {},
    )
    if answer.defer and decision is Decision.SUCCEEDED:  # the bake workflow reports later, or nobody
        return finish_record(record, answer.redactor, alerts=alerts)
    # NOTE: the report may use the reserve, not the Lambda's last second: a throttled report retries
    # while it fits, else raises in time for Lambda to retry the invocation
    with deadline_at(time.monotonic() + remaining_ms() / 1000 - REPORT_MARGIN_SECONDS):
        return report_and_record(
            record,
            decision,
            codedeploy,
            answer.redactor,
            alerts=alerts,
            mode=answer.mode,
            after_success=answer.after_success,
        )


def report_and_record(
    record: OutcomeRecord,
    decision: Decision,
    codedeploy: HookStatusPort,
    redactor: Redactor,
    *,
    alerts: AlertPublisher | None = None,
    mode: Mode = ENFORCE,
    after_success: AfterSuccess | None = None,
) -> OutcomeRecord:
    """Report ``decision`` once, add the action to the record, record it. Raises if it cannot
    report (the record says so), so Lambda's retry (or the bake workflow's) tries again. In observe
    ``mode`` the status reported is Succeeded and the record keeps ``decision`` (``deployguard.mode``)."""
    deployment_id, execution_id = record.deployment_id, record.lifecycle_event_hook_execution_id
    if not (deployment_id and execution_id):
        raise EventError("a status can only be reported for a known deployment and hook execution")
    record, decision = apply_mode(record, decision, mode)
    record = replace(record, decision=decision)
    try:
        reported = codedeploy.report(deployment_id, execution_id, decision)
    except DeployGuardError as exc:
        action = Action(kind=ActionKind.STATUS_REPORTED, ok=False, detail=f"{decision.value}: {exc}")
        finish_record(replace(record, actions=[*record.actions, action]), redactor)
        raise
    kind = ActionKind.STATUS_REPORTED if reported else ActionKind.STATUS_ALREADY_REPORTED
    action = Action(kind=kind, detail=decision.value)
    if (
        after_success is not None
        and reported
        and record.decision is Decision.SUCCEEDED
        and record.would_have in (None, Decision.SUCCEEDED)
    ):
        # NOTE: after the report, never before: its result is a check of the record, not of the decision
        record = replace(record, checks=[*record.checks, after_success()])
    return finish_record(replace(record, actions=[*record.actions, action]), redactor, alerts=alerts)


def _evaluate(
    run: HookRun, hook: HookName, codedeploy: HookStatusPort, evaluate: Evaluate
) -> Evaluation | AlreadyReported:
    """The worker: the retry check, then the hook's checks; any error is a failed evaluation. Every
    AWS call in it ends by the deadline (``deployguard.deadlines``): a throttled call is retried only
    while the retry fits."""
    try:
        with deadline_at(run.deadline):
            status = codedeploy.lifecycle_event_status(run.ids.deployment_id, hook)
            if status in ("Succeeded", "Failed"):
                return AlreadyReported(status=status)
            return evaluate(run)
    except DeployGuardError as exc:
        return failed_evaluation(exc)
    except Exception as exc:  # a bug must still end in a reported Failed
        # NOTE: before the use case built its redactor (or a use case that builds none): formats only
        return failed_evaluation(RedactedError(exc, Redactor()))


def _failed(
    name: str, message: str, redactor: Redactor | None = None, *, findings: list[Finding] | None = None
) -> Evaluation:
    return Evaluation(
        checks=[CheckResult(name=name, result=Result.ERROR, message=message, findings=findings or [])],
        reason=message,
        redactor=redactor or Redactor(),
    )


def _reason(decision: Decision, checks: list[CheckResult]) -> str:
    if decision is Decision.SUCCEEDED:
        return f"all {len(checks)} checks passed"
    failed = [c for c in checks if c.blocking]
    if not failed:
        return "no checks ran"
    # NOTE: not clipped here: a clipped secret would escape redaction; OutcomeRecord.redacted clips
    return "; ".join(f"{c.name}: {c.message}" for c in failed)
