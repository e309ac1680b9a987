"""The bake workflow's step (statemachine/bake.asl.json): one poll of the guarded alarms and the new
version's metrics per call, until the bake window ends or a check blocks; then it reports the
AfterAllowTraffic status itself, exactly once.

The post-traffic hook (``deployguard.post_traffic``) starts the workflow after judging the first
poll with the same code (``deployguard.watch``, :func:`deployguard.bake.decide_poll`).

What the step trusts: the state carries ids, the window and counters (:class:`~deployguard.bake.
BakeState`). Every poll resolves the function, its versions, the deployment's status and create
time from CodeDeploy, and the alarms from the policy; the state must belong to the execution that
runs it (its name is derived from the state's ids: :func:`~deployguard.bake.execution_name`). A
state that is malformed, or of an older DeployGuard, is reported Failed when its ids allow it.
"""

from __future__ import annotations

import traceback
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from pydantic import ValidationError

from deployguard.appspec import DeploymentTarget
from deployguard.bake import (
    BakeState,
    BakeStepEvent,
    Clock,
    PollOutcome,
    Verdict,
    decide_poll,
    execution_name,
    output,
)
from deployguard.deadlines import deadline_at
from deployguard.deployment import TERMINAL_STATUSES, Deployment
from deployguard.errors import DeployGuardError
from deployguard.findings import CheckResult, Decision, Result, Severity, error_findings
from deployguard.guard import Bypassed, Unguarded, bypass_reason, guard_function
from deployguard.hook import AfterSuccess, HookName, hook_id_problem, report_and_record
from deployguard.mode import ENFORCE, Mode
from deployguard.observability import finish_record, logger
from deployguard.outcome import Action, ActionKind, OutcomeRecord, Role
from deployguard.outcome import Bypassed as Bypass
from deployguard.ports import AlertPublisher, CodeDeployPort, LambdaPort, PolicySource, VersionsPort
from deployguard.prune import pruning
from deployguard.records import datarecord
from deployguard.redaction import TRACEBACK_MAX, version_redactor
from deployguard.secrets import Redactor
from deployguard.stages import APP_TAG, Stage
from deployguard.watch import WatchPorts, deployment_started_at, poll_checks

HOOK: HookName = "AfterAllowTraffic"
LOGGED_ERROR_MAX = 500
# The hook opens the window minutes after CodeDeploy created the deployment; this much allows for
# clocks that disagree, not for a window opened before the deployment existed.
CLOCK_SKEW = timedelta(seconds=60)
OLDER_STATE = (
    "the bake workflow's state is of an older DeployGuard (it names the function and the "
    "deployment's start itself, which this version no longer takes from a state)"
)


@datarecord
class BakePorts:
    codedeploy: CodeDeployPort
    functions: LambdaPort
    watch: WatchPorts
    policy: PolicySource
    versions: VersionsPort | None = None  # version pruning (``prune``); None: never prunes


@dataclass
class _Redaction:
    """The invocation's redactor, built when text is first written (one GetFunctionConfiguration per
    version, only then: a poll that continues writes no free text). ``failure`` says why it could
    not be built; the text is then masked by the key formats only (no environment was read)."""

    functions: LambdaPort
    target: DeploymentTarget | None = None
    failure: CheckResult | None = None
    _built: Redactor | None = None

    def redactor(self) -> Redactor:
        if self._built is None:
            self._built = Redactor()  # NOTE: formats only, until (unless) the environments are read
            if self.target is not None:
                target = self.target
                try:
                    self._built = version_redactor(
                        self.functions, target.function_name, [target.target_version, target.current_version]
                    )
                except DeployGuardError as exc:
                    message = f"the versions' environments could not be read to redact the record: {exc}"
                    self.failure = CheckResult(name="redaction", result=Result.ERROR, message=message)
        return self._built


@datarecord
class _Unusable:
    """An event the step cannot run: why, and the ids it names (when they are lifecycle ids and the
    event may report on them)."""

    reason: str
    ids: tuple[str, str] | None


def run_bake_step(
    event: Mapping[str, Any],
    ports: BakePorts,
    *,
    stage: Stage,
    clock: Clock,
    alerts: AlertPublisher | None = None,
    deadline: float | None = None,
) -> dict[str, Any]:
    """One poll of the bake workflow, or (``"action": "fail"``) the workflow's Catch reporting Failed.

    ``deadline`` (a ``time.monotonic()`` instant) bounds the poll's AWS calls, throttled retries
    included. A poll that is not the last and could not run because AWS throttled its calls to the
    end is inconclusive (finding AWS001), not a failure: the next poll checks again. The last poll
    must run.

    Returns the workflow's next document: the state, ``verdict`` (continue | done) and
    ``wait_seconds``. A final verdict is reported here, exactly once; if the report cannot be
    delivered this raises, so the workflow's Retry and Catch try again. Any other error ends in a
    reported Failed (fail closed).
    """
    parsed = _parse(event)
    if isinstance(parsed, _Unusable):
        return _unusable(parsed, ports.codedeploy, stage=stage.value, alerts=alerts)
    state = parsed.input.state
    if parsed.execution_name != execution_name(state.deployment_id, state.lifecycle_event_hook_execution_id):
        return _foreign(state, parsed.execution_name, stage=stage.value)
    if parsed.action == "fail":
        error = parsed.input.error or {}
        return _workflow_failed(state, str(error.get("Error") or "no error details"), ports, stage, alerts)

    now = clock()
    redaction = _Redaction(ports.functions)
    bypass: Bypass | None = None
    mode: Mode = ENFORCE  # until the policy is read: a poll that cannot read it fails closed
    after: AfterSuccess | None = None  # version pruning, once a final Succeeded is reported
    try:
        deployment = ports.codedeploy.resolve(state.deployment_id)
        redaction.target = deployment.target
        if deployment.status in TERMINAL_STATUSES:
            return _deployment_finished(state, deployment, redaction, stage=stage.value)
        with deadline_at(deadline):
            polled, bypass, mode, after = _poll(state, deployment, ports, stage, now, clock=clock)
    except DeployGuardError as exc:
        polled = [_poll_error(exc, final=state.window.is_final(now))]
    except Exception as exc:  # a bug must still end in a reported Failed
        crash = "".join(traceback.format_exception(exc))
        logger.error(
            "bake poll crashed",
            extra={
                "error_type": type(exc).__name__,
                "traceback": redaction.redactor().clip(crash, TRACEBACK_MAX),
            },
        )
        message = f"internal error ({type(exc).__name__}): {exc}"
        polled = [CheckResult(name="internal", result=Result.ERROR, message=message)]
    # NOTE: the hook's smoke results only add failures: every poll runs its own policy check
    checks = [*state.prior_checks, *polled]
    if bypass is not None:  # added to the policy mid-bake (a hot fix): report at once
        outcome = PollOutcome(verdict=Verdict.DONE, decision=Decision.SUCCEEDED, wait_seconds=0)
    else:
        outcome = decide_poll(state.window, checks, now)
    polled_state = state.model_copy(update={"polls": state.polls + 1})
    if outcome.verdict is Verdict.CONTINUE:
        logger.info(
            "bake poll",
            extra={
                "deployment_id": state.deployment_id,
                "poll": polled_state.polls,
                "wait_seconds": outcome.wait_seconds,
                "checks": {c.name: c.result.value for c in checks},
            },
        )
        return output(polled_state, outcome)
    record = replace(_record(state, stage.value, redaction.target), bypass=bypass)
    return _report(
        polled_state,
        record,
        checks,
        outcome,
        codedeploy=ports.codedeploy,
        redaction=redaction,
        alerts=alerts,
        mode=mode,
        after_success=after,
    )


def _poll_error(error: DeployGuardError, *, final: bool) -> CheckResult:
    """The check of a poll that could not run: an error, or (throttled, and not the last poll)
    inconclusive, since throttling says nothing about the release."""
    findings = error_findings(error)
    if findings and not final:
        warned = [replace(f, severity=Severity.WARNING) for f in findings]
        message = f"{error}; the next poll checks again"
        return CheckResult(
            name=type(error).__name__, result=Result.INCONCLUSIVE, message=message, findings=warned
        )
    return CheckResult(name=type(error).__name__, result=Result.ERROR, message=str(error), findings=findings)


def fail_bake_step(
    event: Mapping[str, Any],
    codedeploy: CodeDeployPort,
    functions: LambdaPort,
    failed: list[CheckResult],
    *,
    stage: str | None,
    alerts: AlertPublisher | None = None,
) -> dict[str, Any]:
    """Report Failed for the bake ``event`` carries without polling: ``failed`` are the checks that
    could not run (the function's settings are invalid)."""
    parsed = _parse(event)
    if isinstance(parsed, _Unusable):
        return _unusable(parsed, codedeploy, stage=stage, alerts=alerts)
    state = parsed.input.state
    if parsed.execution_name != execution_name(state.deployment_id, state.lifecycle_event_hook_execution_id):
        return _foreign(state, parsed.execution_name, stage=stage)
    redaction = _Redaction(functions)
    outcome = PollOutcome(verdict=Verdict.DONE, decision=Decision.FAILED, wait_seconds=0)
    record = _record(state, stage, None)
    return _report(
        state,
        record,
        [*state.prior_checks, *failed],
        outcome,
        codedeploy=codedeploy,
        redaction=redaction,
        alerts=alerts,
    )


def _workflow_failed(
    state: BakeState, error: str, ports: BakePorts, stage: Stage, alerts: AlertPublisher | None
) -> dict[str, Any]:
    """The Catch: report Failed, unless the deployment has ended meanwhile (CodeDeploy takes no
    status then). The deployment is resolved for the record when CodeDeploy answers."""
    redaction = _Redaction(ports.functions)
    try:
        deployment: Deployment | None = ports.codedeploy.resolve(state.deployment_id)
    except DeployGuardError:
        deployment = None  # report Failed all the same: the ids are this execution's
    if deployment is not None:
        redaction.target = deployment.target
        if deployment.status in TERMINAL_STATUSES:
            return _deployment_finished(state, deployment, redaction, stage=stage.value)
    error_name = redaction.redactor().clip(error, LOGGED_ERROR_MAX)
    message = f"the bake workflow failed ({error_name}); reported Failed (fail closed)"
    failed = [CheckResult(name="bake", result=Result.ERROR, message=message)]
    outcome = PollOutcome(verdict=Verdict.DONE, decision=Decision.FAILED, wait_seconds=0)
    record = _record(state, stage.value, redaction.target)
    return _report(
        state,
        record,
        [*state.prior_checks, *failed],
        outcome,
        codedeploy=ports.codedeploy,
        redaction=redaction,
        alerts=alerts,
    )


def _record(state: BakeState, stage: str | None, target: DeploymentTarget | None) -> OutcomeRecord:
    record = OutcomeRecord(
        role=Role.BAKE,
        hook=HOOK,
        stage=stage,
        deployment_id=state.deployment_id,
        lifecycle_event_hook_execution_id=state.lifecycle_event_hook_execution_id,
    )
    if target is None:
        return record
    return replace(
        record,
        function_name=target.function_name,
        alias=target.alias,
        current_version=target.current_version,
        target_version=target.target_version,
    )


def _poll(
    state: BakeState,
    deployment: Deployment,
    ports: BakePorts,
    stage: Stage,
    now: datetime,
    *,
    clock: Clock,
) -> tuple[list[CheckResult], Bypass | None, Mode, AfterSuccess | None]:
    """One poll of ``deployment`` as CodeDeploy describes it now, the guarding entry's mode, and
    the version pruning to run if the poll's Succeeded is the final one reported."""
    if state.window.started_at < deployment_started_at(deployment) - CLOCK_SKEW:
        message = (
            "the bake window opens before the deployment was created: the state is not this "
            "deployment's bake; reported Failed (fail closed)"
        )
        return [CheckResult(name="bake", result=Result.ERROR, message=message)], None, ENFORCE, None
    function_name = deployment.target.function_name
    tags = ports.functions.tags(function_name)
    policy = ports.policy.load(stage, tags.get(APP_TAG), function_name)
    found = guard_function(
        policy,
        function_name,
        tags=tags,
        deployment_id=deployment.deployment_id,
    )
    if isinstance(found, Unguarded):
        return [found.policy_check], None, ENFORCE, None
    if isinstance(found, Bypassed):
        return [found.policy_check], found.bypass, found.entry.mode, None
    try:
        checks = poll_checks(
            found.entry, ports.watch, deployment=deployment, now=now, final=state.window.is_final(now)
        )
    except DeployGuardError as exc:  # the entry was read: its mode decides this failure too
        return (
            [found.policy_check, _poll_error(exc, final=state.window.is_final(now))],
            None,
            found.entry.mode,
            None,
        )
    after = (
        pruning(ports.versions, found.entry, deployment, policy.rollback.recent_minutes, clock)
        if ports.versions is not None
        else None
    )
    return [found.policy_check, *checks], None, found.entry.mode, after


def _report(
    state: BakeState,
    record: OutcomeRecord,
    checks: list[CheckResult],
    outcome: PollOutcome,
    *,
    codedeploy: CodeDeployPort,
    redaction: _Redaction,
    alerts: AlertPublisher | None,
    mode: Mode = ENFORCE,
    after_success: AfterSuccess | None = None,
) -> dict[str, Any]:
    redactor = redaction.redactor()
    decision = outcome.decision or Decision.FAILED
    if redaction.failure is not None:  # fail closed: the record could not be redacted fully
        checks = [*checks, redaction.failure]
        if record.bypass is None:
            decision = Decision.FAILED
    blocking = [c for c in checks if c.blocking]
    if record.bypass is not None:
        reason = bypass_reason(record.bypass)
    elif blocking:
        reason = "; ".join(f"{c.name}: {c.message}" for c in blocking)
    else:
        reason = f"all {len(checks)} checks passed after {state.polls} poll(s) of the bake window"
    record = replace(record, checks=checks, reason=reason)
    reported = report_and_record(
        record, decision, codedeploy, redactor, alerts=alerts, mode=mode, after_success=after_success
    )
    done = PollOutcome(verdict=Verdict.DONE, decision=reported.decision or decision, wait_seconds=0)
    return output(state, done, reason=reported.reason)


def _deployment_finished(
    state: BakeState, deployment: Deployment, redaction: _Redaction, *, stage: str | None
) -> dict[str, Any]:
    """The deployment was stopped or ended while baking (an alarm rollback, an operator): CodeDeploy
    takes no status for it any more, so the bake ends without one."""
    status = deployment.status
    reason = f"the deployment is {status}: the bake ends without reporting a status"
    action = Action(kind=ActionKind.NO_ACTION, detail=f"deployment {status}")
    record = replace(_record(state, stage, deployment.target), reason=reason, actions=[action])
    finish_record(record, redaction.redactor())
    return output(state, PollOutcome(verdict=Verdict.DONE, decision=None, wait_seconds=0), reason=reason)


def _foreign(state: BakeState, name: str, *, stage: str | None) -> dict[str, Any]:
    """The state's ids are not those the running execution was started for: it is not this bake's
    state (forged, or a bug). Nothing is reported for ids that cannot be trusted; it is recorded."""
    reason = (
        "the bake state does not belong to the execution running it (its name is not the one "
        "derived from the state's deployment and hook execution ids): nothing reported"
    )
    logger.error("foreign bake state", extra={"deployment_id": state.deployment_id, "execution_name": name})
    record = replace(
        _record(state, stage, None),
        reason=reason,
        actions=[Action(kind=ActionKind.NO_ACTION, detail="foreign state")],
    )
    finish_record(record, _FORMATS_ONLY)
    return {"verdict": Verdict.DONE.value, "wait_seconds": 0, "decision": None, "reason": reason}


# NOTE: where the step has not resolved a deployment, no function's environment was read: nothing of
# one can be in the text, and the key formats are all there is to mask.
_FORMATS_ONLY = Redactor()


def _parse(event: Any) -> BakeStepEvent | _Unusable:
    if not isinstance(event, Mapping):
        return _Unusable(reason="the bake step's event is not a JSON object", ids=None)
    if "input" not in event:
        older = event.get("state") if event.get("action") == "fail" else event
        if isinstance(older, Mapping) and ("target" in older or "deployment_started_at" in older):
            return _Unusable(reason=OLDER_STATE, ids=_ids(older, None))
    try:
        return BakeStepEvent.model_validate(event)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}"
            for e in exc.errors(include_url=False, include_input=False)
        )
        document = event.get("input")
        raw_state = document.get("state") if isinstance(document, Mapping) else None
        reason = f"the bake workflow's state is malformed ({_FORMATS_ONLY.clip(problems, LOGGED_ERROR_MAX)})"
        return _Unusable(reason=reason, ids=_ids(raw_state, event.get("execution_name")))


def _ids(raw: Any, name: Any) -> tuple[str, str] | None:
    """The lifecycle ids of a state that cannot be used, if they are ids and the execution (when
    its name is known) was started for them."""
    if not isinstance(raw, Mapping):
        return None
    deployment_id, execution_id = raw.get("deployment_id"), raw.get("lifecycle_event_hook_execution_id")
    if hook_id_problem("DeploymentId", deployment_id) or hook_id_problem(
        "LifecycleEventHookExecutionId", execution_id
    ):
        return None
    assert isinstance(deployment_id, str) and isinstance(execution_id, str)  # hook_id_problem said so
    if name is not None and name != execution_name(deployment_id, execution_id):
        return None
    return deployment_id, execution_id


def _unusable(
    unusable: _Unusable, codedeploy: CodeDeployPort, *, stage: str | None, alerts: AlertPublisher | None
) -> dict[str, Any]:
    """A state without usable ids cannot be reported: log it. With them, report Failed."""
    if unusable.ids is None:
        logger.error("malformed bake state", extra={"error": unusable.reason})
        return {"verdict": Verdict.DONE.value, "wait_seconds": 0, "decision": None, "reason": unusable.reason}
    deployment_id, execution_id = unusable.ids
    reason = f"{unusable.reason}; reported Failed (fail closed)"
    record = OutcomeRecord(
        role=Role.BAKE,
        hook=HOOK,
        stage=stage,
        deployment_id=deployment_id,
        lifecycle_event_hook_execution_id=execution_id,
        checks=[CheckResult(name="bake", result=Result.ERROR, message=reason)],
        reason=reason,
    )
    reported = report_and_record(record, Decision.FAILED, codedeploy, _FORMATS_ONLY, alerts=alerts)
    return {"verdict": Verdict.DONE.value, "wait_seconds": 0, "decision": "Failed", "reason": reported.reason}
