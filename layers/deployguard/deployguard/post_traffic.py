"""AfterAllowTraffic: the new version takes the traffic. Smoke-test the live alias, then watch the
guarded alarms and the new version's own metrics, at once (``bake.minutes: 0``) or over a bake
window run by a Step Functions workflow that calls :func:`run_bake_step` once per poll.

Both the hook and the bake step judge a poll with the same code (:func:`poll_checks` and
:func:`deployguard.bake.decide_poll`), so a bake of 0 and a bake of 55 minutes agree.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, replace
from datetime import datetime
from typing import Any, Protocol

from pydantic import ValidationError

from deployguard.alarms import AlarmSelection, AlarmSource, describe_selected, select_alarms, timed_check
from deployguard.appspec import DeploymentTarget
from deployguard.aws.codedeploy import TERMINAL_STATUSES, CodeDeploy
from deployguard.aws.lambda_ import Lambda
from deployguard.bake import BakeState, Clock, PollOutcome, Verdict, decide_poll, execution_name, open_window
from deployguard.errors import DeployGuardError
from deployguard.findings import CheckResult, Decision, Result
from deployguard.hook import Evaluation, HookName, HookRun, report_and_record
from deployguard.notify import AlertPublisher
from deployguard.observability import logger, record_outcome
from deployguard.outcome import Action, ActionKind, Bypassed, OutcomeRecord, Role
from deployguard.policy import FunctionPolicy, Policy
from deployguard.pre_traffic import bypass_for, policy_for
from deployguard.records import datarecord
from deployguard.secrets import Redactor
from deployguard.settings import SettingsError
from deployguard.smoke import run_smoke
from deployguard.stages import Stage
from deployguard.version_health import MetricSource, check_version_health, health_queries, metric_window

HOOK: HookName = "AfterAllowTraffic"


class BakeStarter(Protocol):
    """The port the hook starts the bake workflow through (``aws.stepfunctions.BakeWorkflow``)."""

    def start(self, name: str, payload: Mapping[str, Any]) -> str: ...


@datarecord
class WatchPorts:
    alarms: AlarmSource
    metrics: MetricSource


@datarecord
class PostTrafficPorts:
    codedeploy: CodeDeploy
    lambda_: Lambda
    watch: WatchPorts
    load_policy: Callable[[], Policy]
    bake: BakeStarter | None  # None when DEPLOYGUARD_BAKE_STATE_MACHINE_ARN is unset


def audited_bypass(entry: FunctionPolicy, deployment_id: str, function_name: str) -> Bypassed | None:
    """The policy's bypass for this deployment, logged at WARNING: a bypass is never silent (outside
    the hook runner, which logs the bypasses of hooks itself)."""
    bypass = bypass_for(entry, deployment_id)
    if bypass is not None:
        logger.warning(
            "checks bypassed by policy",
            extra={
                "deployment_id": deployment_id,
                "function_name": function_name,
                "reason": bypass.reason,
                "approved_by": bypass.approved_by,
            },
        )
    return bypass


def poll_checks(
    entry: FunctionPolicy,
    watch: WatchPorts,
    *,
    target: DeploymentTarget,
    deployment_started_at: datetime,
    alarms: Callable[[], AlarmSelection],
    now: datetime,
    final: bool,
) -> list[CheckResult]:
    """One poll: the alarm check (⌈K/100⌉ DescribeAlarms) and per-version health (1 GetMetricData)."""
    checks: list[CheckResult] = []
    if entry.alarms is not None:
        checks.append(timed_check(alarms, entry.alarms, deployment_started_at=deployment_started_at))
    if entry.version_health is not None:
        began = time.perf_counter()
        start, end = metric_window(deployment_started_at, now)
        sums = watch.metrics.sums(health_queries(target), start, end)
        checks.append(
            check_version_health(
                sums,
                entry.version_health,
                target_version=target.target_version,
                final=final,
                duration_ms=(time.perf_counter() - began) * 1000,
            )
        )
    return checks


def evaluate_post_traffic(run: HookRun, ports: PostTrafficPorts, *, stage: Stage, clock: Clock) -> Evaluation:
    deployment_id = run.ids.deployment_id
    deployment = ports.codedeploy.resolve(deployment_id)
    target = deployment.target
    entry, policy_check = policy_for(ports.load_policy(), target.function_name)
    if entry is None:
        return Evaluation(checks=[policy_check], target=target)
    bypass = bypass_for(entry, deployment_id)  # the hook runner logs it at WARNING and records it
    if bypass is not None:
        return Evaluation(
            checks=[policy_check],
            target=target,
            bypass=bypass,
            reason=f"checks bypassed by policy for this deployment: {bypass.reason} (approved by {bypass.approved_by})",
        )
    smoke = (
        run_smoke(
            entry.smoke,
            lambda payload: ports.lambda_.invoke(
                target.function_name, target.alias, payload, deployment_id=deployment_id
            ),
            concurrency=entry.smoke_concurrency,
            deadline=run.deadline,
        )
        if entry.post_traffic_smoke
        else []
    )
    checks = [policy_check, *smoke]
    if any(check.blocking for check in smoke):
        return Evaluation(checks=checks, target=target)

    now = clock()
    window = open_window(now, entry.bake)
    started_at = deployment.create_time or now
    selected: list[AlarmSelection] = []

    def first_selection() -> AlarmSelection:
        assert entry is not None and entry.alarms is not None
        selected.append(select_alarms(ports.watch.alarms, entry.alarms.select))
        return selected[-1]

    checks += poll_checks(
        entry,
        ports.watch,
        target=target,
        deployment_started_at=started_at,
        alarms=first_selection,
        now=now,
        final=window.is_final(now),
    )
    outcome = decide_poll(window, checks, now)
    if outcome.verdict is Verdict.DONE:
        return Evaluation(checks=checks, target=target)

    if ports.bake is None:
        raise SettingsError(
            f"the policy bakes {target.function_name} for {entry.bake.minutes} minutes but "
            "DEPLOYGUARD_BAKE_STATE_MACHINE_ARN is not set: set it to the bake state machine in template.yaml"
        )
    state = BakeState(
        deployment_id=deployment_id,
        lifecycle_event_hook_execution_id=run.ids.lifecycle_event_hook_execution_id,
        stage=stage.value,
        target=target,
        deployment_started_at=started_at,
        window=window,
        alarm_names=selected[-1].names if selected else [],
        # NOTE: the execution's input shows in the Step Functions console: redacted like a record
        prior_checks=OutcomeRecord(role=Role.POST_TRAFFIC, checks=smoke).redacted(Redactor()).checks,
    )
    execution = ports.bake.start(
        execution_name(deployment_id, run.ids.lifecycle_event_hook_execution_id), state.output(outcome)
    )
    until = window.until.isoformat(timespec="seconds")
    return Evaluation(
        checks=checks,
        target=target,
        defer=True,
        reason=f"first poll passed; baking {entry.bake.minutes} minute(s) until {until}, the bake workflow reports the status",
        actions=[Action(kind=ActionKind.BAKE_STARTED, detail=execution)],
    )


# --- the bake workflow's step ---------------------------------------------------------------------


@datarecord
class BakePorts:
    codedeploy: CodeDeploy
    watch: WatchPorts
    load_policy: Callable[[], Policy]


def run_bake_step(
    event: Mapping[str, Any], ports: BakePorts, *, clock: Clock, alerts: AlertPublisher | None = None
) -> dict[str, Any]:
    """One poll of the bake workflow, or (``"action": "fail"``) the workflow's Catch reporting Failed.

    Returns the next state with ``verdict`` (continue | done) and ``wait_seconds``. A final verdict
    is reported here, exactly once; if the report cannot be delivered this raises, so the
    workflow's Retry and Catch try again. Any other error ends in a reported Failed (fail closed).
    """
    failing = event.get("action") == "fail"
    raw = event.get("state") if failing else event
    try:
        state = BakeState.model_validate(raw)
    except ValidationError as exc:
        return _malformed(raw, exc, ports, alerts)
    record = OutcomeRecord(
        role=Role.BAKE,
        hook=HOOK,
        stage=state.stage,
        deployment_id=state.deployment_id,
        lifecycle_event_hook_execution_id=state.lifecycle_event_hook_execution_id,
        **asdict(state.target),
    )
    if failing:
        message = f"the bake workflow failed ({_workflow_error(raw)}); reported Failed (fail closed)"
        checks = [*state.prior_checks, CheckResult(name="bake", result=Result.ERROR, message=message)]
        return _report(
            state,
            record,
            checks,
            PollOutcome(verdict=Verdict.DONE, decision=Decision.FAILED, wait_seconds=0),
            ports=ports,
            alerts=alerts,
        )

    now = clock()
    try:
        status = ports.codedeploy.status(state.deployment_id)
        if status in TERMINAL_STATUSES:
            return _deployment_finished(state, record, status)
        polled_checks, bypass = _poll(state, ports, now)
        if bypass is not None:  # added to the policy mid-bake (a hot fix): report at once
            record = replace(record, bypass=bypass)
            checks = [*state.prior_checks, *polled_checks]
            outcome = PollOutcome(verdict=Verdict.DONE, decision=Decision.SUCCEEDED, wait_seconds=0)
            return _report(state, record, checks, outcome, ports=ports, alerts=alerts)
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
    return _report(polled, record, checks, outcome, ports=ports, alerts=alerts)


def _poll(state: BakeState, ports: BakePorts, now: datetime) -> tuple[list[CheckResult], Bypassed | None]:
    entry, policy_check = policy_for(ports.load_policy(), state.target.function_name)
    if entry is None:
        return [policy_check], None
    bypass = audited_bypass(entry, state.deployment_id, state.target.function_name)
    if bypass is not None:
        return [policy_check], bypass
    alarm_rules = entry.alarms

    def alarms() -> AlarmSelection:
        assert alarm_rules is not None
        if state.alarm_names:
            return describe_selected(ports.watch.alarms, state.alarm_names)
        return select_alarms(ports.watch.alarms, alarm_rules.select)  # the policy gained alarms mid-bake

    checks = poll_checks(
        entry,
        ports.watch,
        target=state.target,
        deployment_started_at=state.deployment_started_at,
        alarms=alarms,
        now=now,
        final=state.window.is_final(now),
    )
    return [policy_check, *checks], None


def _report(
    state: BakeState,
    record: OutcomeRecord,
    checks: list[CheckResult],
    outcome: PollOutcome,
    *,
    ports: BakePorts,
    alerts: AlertPublisher | None,
) -> dict[str, Any]:
    decision = outcome.decision or Decision.FAILED
    blocking = [c for c in checks if c.blocking]
    if record.bypass is not None:
        reason = f"checks bypassed by policy for this deployment: {record.bypass.reason} (approved by {record.bypass.approved_by})"
    elif blocking:
        reason = "; ".join(f"{c.name}: {c.message}" for c in blocking)
    else:
        reason = f"all {len(checks)} checks passed after {state.polls} poll(s) of the bake window"
    record = replace(record, checks=checks, reason=reason)
    reported = report_and_record(record, decision, lambda: ports.codedeploy, Redactor(), alerts=alerts)
    return state.output(outcome, reason=reported.reason)


def _deployment_finished(state: BakeState, record: OutcomeRecord, status: str) -> dict[str, Any]:
    """The deployment was stopped or ended while baking (an alarm rollback, an operator): CodeDeploy
    takes no status for it any more, so the bake ends without one."""
    reason = f"the deployment is {status}: the bake ends without reporting a status"
    action = Action(kind=ActionKind.NO_ACTION, detail=f"deployment {status}")
    record_outcome(replace(record, reason=reason, actions=[action]).finish().redacted(Redactor()))
    return state.output(PollOutcome(verdict=Verdict.DONE, decision=None, wait_seconds=0), reason=reason)


def _workflow_error(raw: Any) -> str:
    """The Catch's error name (Step Functions puts ``{"Error", "Cause"}`` under ``error``)."""
    error = raw.get("error") if isinstance(raw, Mapping) else None
    if not isinstance(error, Mapping):
        return "no error details"
    return str(error.get("Error") or "unknown error")[:500]


def _malformed(
    raw: Any, exc: ValidationError, ports: BakePorts, alerts: AlertPublisher | None
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
    reported = report_and_record(record, Decision.FAILED, lambda: ports.codedeploy, Redactor(), alerts=alerts)
    return {"verdict": Verdict.DONE.value, "wait_seconds": 0, "decision": "Failed", "reason": reported.reason}
