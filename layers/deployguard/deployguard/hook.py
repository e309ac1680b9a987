"""Exactly one honest status per CodeDeploy lifecycle hook execution.

The runner every hook shares:
- parse the event; without both ids nothing can be reported, so log and stop (no retry storm);
- a retried invocation whose lifecycle event already has a status stops without re-running checks;
- checks run in a worker thread against a deadline that keeps ``reserve`` seconds before the
  Lambda timeout, so a slow check still ends in a reported Failed, not an hour of waiting;
- any exception, malformed input, missing policy or AWS error → Failed (fail closed);
- PutLifecycleEventHookExecutionStatus exactly once; LifecycleEventAlreadyCompleted is logged;
- if the report itself cannot be delivered, raise, so Lambda's async retry tries again.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Literal

from aws_lambda_powertools.utilities.data_classes.code_deploy_lifecycle_hook_event import (
    CodeDeployLifecycleHookEvent,
)

from deployguard.appspec import DeploymentTarget
from deployguard.aws.codedeploy import CodeDeploy
from deployguard.errors import DeployGuardError, EventError
from deployguard.findings import CheckResult, Decision, Result, decide
from deployguard.notify import AlertPublisher
from deployguard.observability import logger, record_outcome
from deployguard.outcome import Action, ActionKind, Bypassed, OutcomeRecord, Role
from deployguard.records import datarecord
from deployguard.secrets import Redactor

HookName = Literal["BeforeAllowTraffic", "AfterAllowTraffic"]


@datarecord
class HookIds:
    deployment_id: str
    lifecycle_event_hook_execution_id: str


def parse_hook_event(event: Mapping[str, Any]) -> HookIds:
    try:
        parsed = CodeDeployLifecycleHookEvent(dict(event))
        ids = HookIds(
            deployment_id=parsed.deployment_id,
            lifecycle_event_hook_execution_id=parsed.lifecycle_event_hook_execution_id,
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise EventError(
            "the event is not a CodeDeploy lifecycle hook event: it needs 'DeploymentId' and "
            "'LifecycleEventHookExecutionId' (see events/pre_traffic_hook.json)"
        ) from exc
    if not ids.deployment_id or not ids.lifecycle_event_hook_execution_id:
        raise EventError("DeploymentId and LifecycleEventHookExecutionId must not be empty")
    return ids


@dataclass
class Evaluation:
    """What a hook's checks concluded. ``decision`` overrides the checks (a bypass, a bake start)."""

    checks: list[CheckResult] = field(default_factory=list)
    target: DeploymentTarget | None = None
    reason: str = ""
    bypass: Bypassed | None = None
    redactor: Redactor = field(default_factory=Redactor)
    defer: bool = False  # the status will be reported later (bake workflow started)
    actions: list[Action] = field(default_factory=list)


@datarecord
class HookRun:
    ids: HookIds
    deadline: float  # time.monotonic() instant by which checks must be done

    def seconds_left(self) -> float:
        return self.deadline - time.monotonic()


Evaluate = Callable[[HookRun], Evaluation]


def guard_lifecycle_event(
    event: Mapping[str, Any],
    *,
    hook: HookName,
    role: Role,
    stage: str | None,
    codedeploy: Callable[[], CodeDeploy],
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
        record = replace(record, reason=f"{exc}; nothing can be reported to CodeDeploy")
        logger.error("malformed hook event", extra={"error": str(exc)})
        return _finish(record, Redactor())
    record = replace(
        record,
        deployment_id=ids.deployment_id,
        lifecycle_event_hook_execution_id=ids.lifecycle_event_hook_execution_id,
    )
    run = HookRun(ids=ids, deadline=time.monotonic() + remaining_ms() / 1000 - reserve_seconds)

    evaluation, already = _evaluate_within_deadline(run, hook, codedeploy, evaluate)
    if already is not None:
        record = replace(
            record,
            reason=f"{hook} of this deployment already has status {already}; checks not re-run",
            actions=[Action(kind=ActionKind.STATUS_ALREADY_REPORTED, detail=already)],
        )
        logger.info("lifecycle event already reported", extra={"status": already})
        return _finish(record, Redactor())

    decision = Decision.SUCCEEDED if evaluation.bypass else decide(evaluation.checks)
    if evaluation.bypass is not None:  # explicit and audited, never silent
        logger.warning(
            "checks bypassed by policy",
            extra={"reason": evaluation.bypass.reason, "approved_by": evaluation.bypass.approved_by},
        )
    reason = evaluation.reason or _reason(decision, evaluation.checks)
    target = evaluation.target
    record = replace(
        record,
        checks=evaluation.checks,
        bypass=evaluation.bypass,
        reason=reason,
        actions=list(evaluation.actions),
        **asdict(target) if target else {},
    )
    if evaluation.defer and decision is Decision.SUCCEEDED:
        return _finish(record, evaluation.redactor)  # the bake workflow reports later
    return report_and_record(record, decision, codedeploy, evaluation.redactor, alerts=alerts)


def report_and_record(
    record: OutcomeRecord,
    decision: Decision,
    codedeploy: Callable[[], CodeDeploy],
    redactor: Redactor,
    *,
    alerts: AlertPublisher | None = None,
) -> OutcomeRecord:
    """Report ``decision`` once, add the action to the record, log it. Raises if it cannot report."""
    deployment_id, execution_id = record.deployment_id, record.lifecycle_event_hook_execution_id
    if not (deployment_id and execution_id):
        raise EventError("a status can only be reported for a known deployment and hook execution")
    record = replace(record, decision=decision)
    try:
        reported = codedeploy().report(deployment_id, execution_id, decision)
    except DeployGuardError as exc:
        action = Action(kind=ActionKind.STATUS_REPORTED, ok=False, detail=f"{decision.value}: {exc}")
        _finish(replace(record, actions=[*record.actions, action]), redactor)
        raise
    kind = ActionKind.STATUS_REPORTED if reported else ActionKind.STATUS_ALREADY_REPORTED
    action = Action(kind=kind, detail=decision.value)
    return _finish(replace(record, actions=[*record.actions, action]), redactor, alerts)


def _evaluate_within_deadline(
    run: HookRun, hook: HookName, codedeploy: Callable[[], CodeDeploy], evaluate: Evaluate
) -> tuple[Evaluation, str | None]:
    box: dict[str, Any] = {}

    def work() -> None:
        try:
            status = codedeploy().lifecycle_event_status(run.ids.deployment_id, hook)
            if status in ("Succeeded", "Failed"):
                box["already"] = status
                return
            box["evaluation"] = evaluate(run)
        except DeployGuardError as exc:
            box["evaluation"] = _error_evaluation(type(exc).__name__, str(exc))
        except Exception as exc:  # a bug must still end in a reported Failed
            logger.exception("hook check crashed")
            box["evaluation"] = _error_evaluation("internal", f"internal error ({type(exc).__name__}): {exc}")

    worker = threading.Thread(target=work, name=f"{hook}-checks", daemon=True)
    worker.start()
    worker.join(timeout=max(run.seconds_left(), 0))
    if worker.is_alive():
        message = (
            "checks did not finish before the hook's deadline; reported Failed with time to spare "
            "instead of letting CodeDeploy wait (raise the function's Timeout or trim the checks)"
        )
        return _error_evaluation("deadline", message), None
    if "already" in box:
        return Evaluation(), str(box["already"])
    return box["evaluation"], None


def _error_evaluation(name: str, message: str) -> Evaluation:
    return Evaluation(checks=[CheckResult(name=name, result=Result.ERROR, message=message)], reason=message)


def _reason(decision: Decision, checks: list[CheckResult]) -> str:
    if decision is Decision.SUCCEEDED:
        return f"all {len(checks)} checks passed"
    failed = [c for c in checks if c.blocking]
    if not failed:
        return "no checks ran"
    # NOTE: not clipped here: a clipped secret would escape redaction; OutcomeRecord.redacted clips
    return "; ".join(f"{c.name}: {c.message}" for c in failed)


def _finish(record: OutcomeRecord, redactor: Redactor, alerts: AlertPublisher | None = None) -> OutcomeRecord:
    record = record.finish().redacted(redactor)
    record_outcome(record, alerts=alerts)
    return record
