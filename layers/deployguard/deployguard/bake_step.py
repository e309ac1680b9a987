"""The bake workflow's step (statemachine/bake.asl.json): one poll of the guarded alarms and the new
version's metrics per call, until the bake window ends or a check blocks; then it reports the
AfterAllowTraffic status itself, exactly once.

The post-traffic hook (``deployguard.post_traffic``) starts the workflow after judging the first
poll with the same code (``deployguard.watch``, :func:`deployguard.bake.decide_poll`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, replace
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from deployguard.alarms import AlarmSelection, describe_selected, select_alarms
from deployguard.bake import BakeState, Clock, PollOutcome, Verdict, decide_poll
from deployguard.deployment import TERMINAL_STATUSES
from deployguard.errors import DeployGuardError
from deployguard.findings import CheckResult, Decision, Result
from deployguard.guard import Bypassed, Unguarded, bypass_reason, guard_function
from deployguard.hook import HookName, report_and_record
from deployguard.observability import finish_record, logger
from deployguard.outcome import Action, ActionKind, OutcomeRecord, Role
from deployguard.outcome import Bypassed as Bypass
from deployguard.ports import AlertPublisher, CodeDeployPort, HookStatusPort, PolicySource
from deployguard.records import datarecord
from deployguard.secrets import Redactor
from deployguard.stages import Stage
from deployguard.watch import WatchPorts, poll_checks

HOOK: HookName = "AfterAllowTraffic"


@datarecord
class BakePorts:
    codedeploy: CodeDeployPort
    watch: WatchPorts
    policy: PolicySource


def run_bake_step(
    event: Mapping[str, Any],
    ports: BakePorts,
    *,
    stage: Stage,
    clock: Clock,
    alerts: AlertPublisher | None = None,
) -> dict[str, Any]:
    """One poll of the bake workflow, or (``"action": "fail"``) the workflow's Catch reporting Failed.

    Returns the next state with ``verdict`` (continue | done) and ``wait_seconds``. A final verdict
    is reported here, exactly once; if the report cannot be delivered this raises, so the
    workflow's Retry and Catch try again. Any other error ends in a reported Failed (fail closed).
    """
    if event.get("action") == "fail":
        message = (
            f"the bake workflow failed ({_workflow_error(event.get('state'))}); reported Failed (fail closed)"
        )
        failed = [CheckResult(name="bake", result=Result.ERROR, message=message)]
        return fail_bake_step(event, ports.codedeploy, failed, alerts=alerts)
    try:
        state = BakeState.model_validate(event)
    except ValidationError as exc:
        return _malformed(event, exc, ports.codedeploy, alerts)
    record = _record(state)

    now = clock()
    try:
        status = ports.codedeploy.status(state.deployment_id)
        if status in TERMINAL_STATUSES:
            return _deployment_finished(state, record, status)
        polled_checks, bypass = _poll(state, ports, stage, now)
        if bypass is not None:  # added to the policy mid-bake (a hot fix): report at once
            record = replace(record, bypass=bypass)
            checks = [*state.prior_checks, *polled_checks]
            outcome = PollOutcome(verdict=Verdict.DONE, decision=Decision.SUCCEEDED, wait_seconds=0)
            return _report(state, record, checks, outcome, codedeploy=ports.codedeploy, alerts=alerts)
        checks = [*state.prior_checks, *polled_checks]
    except DeployGuardError as exc:
        checks = [
            *state.prior_checks,
            CheckResult(name=type(exc).__name__, result=Result.ERROR, message=str(exc)),
        ]
    except Exception as exc:  # a bug must still end in a reported Failed
        logger.exception("bake poll crashed")
        message = f"internal error ({type(exc).__name__}): {exc}"
        checks = [*state.prior_checks, CheckResult(name="internal", result=Result.ERROR, message=message)]
    outcome = decide_poll(state.window, checks, now)
    polled = state.model_copy(update={"polls": state.polls + 1})
    if outcome.verdict is Verdict.CONTINUE:
        logger.info(
            "bake poll",
            extra={
                "deployment_id": state.deployment_id,
                "poll": polled.polls,
                "wait_seconds": outcome.wait_seconds,
                "checks": {c.name: c.result.value for c in checks},
            },
        )
        return polled.output(outcome)
    return _report(polled, record, checks, outcome, codedeploy=ports.codedeploy, alerts=alerts)


def fail_bake_step(
    event: Mapping[str, Any],
    codedeploy: HookStatusPort,
    failed: list[CheckResult],
    *,
    alerts: AlertPublisher | None = None,
) -> dict[str, Any]:
    """Report Failed for the bake ``event`` carries (a state, or the Catch's ``{"action": "fail",
    "state": …}``) without polling: ``failed`` are the checks that could not run (the workflow
    failed, or the function's settings are invalid)."""
    raw = event.get("state") if event.get("action") == "fail" else event
    try:
        state = BakeState.model_validate(raw)
    except ValidationError as exc:
        return _malformed(raw, exc, codedeploy, alerts)
    checks = [*state.prior_checks, *failed]
    outcome = PollOutcome(verdict=Verdict.DONE, decision=Decision.FAILED, wait_seconds=0)
    return _report(state, _record(state), checks, outcome, codedeploy=codedeploy, alerts=alerts)


def _record(state: BakeState) -> OutcomeRecord:
    return OutcomeRecord(
        role=Role.BAKE,
        hook=HOOK,
        stage=state.stage,
        deployment_id=state.deployment_id,
        lifecycle_event_hook_execution_id=state.lifecycle_event_hook_execution_id,
        **asdict(state.target),
    )


def _poll(
    state: BakeState, ports: BakePorts, stage: Stage, now: datetime
) -> tuple[list[CheckResult], Bypass | None]:
    found = guard_function(
        ports.policy.load(stage), state.target.function_name, deployment_id=state.deployment_id
    )
    if isinstance(found, Unguarded):
        return [found.policy_check], None
    if isinstance(found, Bypassed):
        return [found.policy_check], found.bypass
    alarm_rules = found.entry.alarms

    def alarms() -> AlarmSelection:
        assert alarm_rules is not None
        if state.alarm_names:
            return describe_selected(ports.watch.alarms, state.alarm_names)
        return select_alarms(ports.watch.alarms, alarm_rules.select)  # the policy gained alarms mid-bake

    checks = poll_checks(
        found.entry,
        ports.watch,
        target=state.target,
        deployment_started_at=state.deployment_started_at,
        alarms=alarms,
        now=now,
        final=state.window.is_final(now),
    )
    return [found.policy_check, *checks], None


def _report(
    state: BakeState,
    record: OutcomeRecord,
    checks: list[CheckResult],
    outcome: PollOutcome,
    *,
    codedeploy: HookStatusPort,
    alerts: AlertPublisher | None,
) -> dict[str, Any]:
    decision = outcome.decision or Decision.FAILED
    blocking = [c for c in checks if c.blocking]
    if record.bypass is not None:
        reason = bypass_reason(record.bypass)
    elif blocking:
        reason = "; ".join(f"{c.name}: {c.message}" for c in blocking)
    else:
        reason = f"all {len(checks)} checks passed after {state.polls} poll(s) of the bake window"
    record = replace(record, checks=checks, reason=reason)
    reported = report_and_record(record, decision, codedeploy, Redactor(), alerts=alerts)
    return state.output(outcome, reason=reported.reason)


def _deployment_finished(state: BakeState, record: OutcomeRecord, status: str) -> dict[str, Any]:
    """The deployment was stopped or ended while baking (an alarm rollback, an operator): CodeDeploy
    takes no status for it any more, so the bake ends without one."""
    reason = f"the deployment is {status}: the bake ends without reporting a status"
    action = Action(kind=ActionKind.NO_ACTION, detail=f"deployment {status}")
    finish_record(replace(record, reason=reason, actions=[action]))
    return state.output(PollOutcome(verdict=Verdict.DONE, decision=None, wait_seconds=0), reason=reason)


def _workflow_error(raw: Any) -> str:
    """The Catch's error name (Step Functions puts ``{"Error", "Cause"}`` under ``error``)."""
    error = raw.get("error") if isinstance(raw, Mapping) else None
    if not isinstance(error, Mapping):
        return "no error details"
    return str(error.get("Error") or "unknown error")[:500]


def _malformed(
    raw: Any, exc: ValidationError, codedeploy: HookStatusPort, alerts: AlertPublisher | None
) -> dict[str, Any]:
    """A state without its hook ids cannot be reported: log it. With them, report Failed."""
    problems = "; ".join(
        f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}"
        for e in exc.errors(include_url=False, include_input=False)
    )
    ids = raw if isinstance(raw, Mapping) else {}
    deployment_id, execution_id = ids.get("deployment_id"), ids.get("lifecycle_event_hook_execution_id")
    if not (
        isinstance(deployment_id, str) and deployment_id and isinstance(execution_id, str) and execution_id
    ):
        logger.error("malformed bake state", extra={"error": problems[:500]})
        return {"verdict": Verdict.DONE.value, "wait_seconds": 0, "decision": None, "reason": problems[:500]}
    reason = f"the bake workflow's state is malformed ({problems}); reported Failed (fail closed)"
    record = OutcomeRecord(
        role=Role.BAKE,
        hook=HOOK,
        deployment_id=deployment_id,
        lifecycle_event_hook_execution_id=execution_id,
        checks=[CheckResult(name="bake", result=Result.ERROR, message=reason)],
        reason=reason,
    )
    reported = report_and_record(record, Decision.FAILED, codedeploy, Redactor(), alerts=alerts)
    return {"verdict": Verdict.DONE.value, "wait_seconds": 0, "decision": "Failed", "reason": reported.reason}
