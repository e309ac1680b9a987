"""Alarm rollback: a guarded alarm entered ALARM → stop the function's in-flight deployment and put
its alias back on the previous version at once, routing cleared (``deployguard.restore``).

The hot path for a canary (the alias still carries ``RoutingConfig`` weights) is four calls:
ListDeployments → StopDeployment(autoRollbackEnabled) → GetAlias → UpdateAlias(RevisionId). When
the alias already serves the target at 100%, the previous version comes from the deployment's
AppSpec. UpdateAlias carries the RevisionId read just before: an alias changed meanwhile is never
overwritten.

Idempotent: only deployments created before the alarm fired are considered (a late, duplicate or
out-of-order event cannot touch a later release, nor CodeDeploy's own rollback deployment), a
stopped deployment is no longer in flight, and an alias already on the previous version is left
alone. Every guarded alarm gets one outcome record per function (and the Rollbacks metric when
something was rolled back); an alarm that guards nothing is only logged.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import asdict, replace
from datetime import datetime, timedelta
from typing import Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from deployguard.alarms import ALARM, selects
from deployguard.appspec import DeploymentTarget, plain_function_name
from deployguard.bake import Clock
from deployguard.deployment import FINISHED_STATUSES, IN_FLIGHT_STATUSES, Deployment, newest_of
from deployguard.errors import DeployGuardError, EventError
from deployguard.guard import bypass_for, bypass_reason
from deployguard.hook import Evaluation
from deployguard.observability import finish_record, logger
from deployguard.outcome import Action, ActionKind, OutcomeRecord, Role
from deployguard.policy import DeploymentGroupRef, FunctionPolicy, Policy
from deployguard.ports import AlarmTags, AlertPublisher, CodeDeployPort, LambdaPort, PolicySource
from deployguard.records import datarecord
from deployguard.restore import Aim, Restore, plan_restore, stop_and_restore
from deployguard.stages import Stage

_GLOB = frozenset("*?[")


class RollbackError(DeployGuardError):
    """A rollback step failed; raised after the outcome record is written, so Lambda retries."""

    code = "ROLLBACK"


class AlarmStateChange(BaseModel):
    """The parts of an EventBridge "CloudWatch Alarm State Change" event DeployGuard acts on."""

    model_config = ConfigDict(frozen=True)

    alarm_name: str = Field(min_length=1)
    alarm_arn: str = ""
    state: str
    previous_state: str | None = None
    changed_at: AwareDatetime
    dimensions: dict[str, str] = Field(default_factory=dict)
    composite: bool = False


def parse_alarm_event(event: Mapping[str, Any]) -> AlarmStateChange:
    detail = event.get("detail")
    if event.get("detail-type") != "CloudWatch Alarm State Change" or not isinstance(detail, Mapping):
        raise EventError(
            "the event is not a 'CloudWatch Alarm State Change' EventBridge event (see events/alarm_state_change.json)"
        )
    try:
        state = detail["state"]
        configuration = detail.get("configuration") or {}
        dimensions: dict[str, str] = {}
        for metric in configuration.get("metrics") or []:
            for name, value in (
                ((metric.get("metricStat") or {}).get("metric") or {}).get("dimensions", {}).items()
            ):
                dimensions.setdefault(str(name), str(value))
        resources = event.get("resources") or []
        return AlarmStateChange(
            alarm_name=detail["alarmName"],
            alarm_arn=str(resources[0]) if resources else "",
            state=state["value"],
            previous_state=(detail.get("previousState") or {}).get("value"),
            changed_at=datetime.fromisoformat(
                str(state.get("timestamp") or event["time"]).replace("Z", "+00:00")
            ),
            dimensions=dimensions,
            composite="alarmRule" in configuration,
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise EventError(f"the alarm state change event is malformed ({type(exc).__name__}: {exc})") from exc


@datarecord
class RollbackPorts:
    codedeploy: CodeDeployPort
    functions: LambdaPort
    alarms: AlarmTags
    policy: PolicySource


@datarecord
class GuardedFunction:
    key: str  # the entry under the policy's 'functions'
    entry: FunctionPolicy
    function_name: str
    alias: str | None  # from the alarm's Resource dimension (function:alias), when it names one


def guarded_functions(
    policy: Policy, alarm: AlarmStateChange, tags: Callable[[], Mapping[str, str]]
) -> tuple[list[GuardedFunction], list[str]]:
    """The functions whose policy selects the alarm (by name, prefix or tag). The function is the
    alarm's FunctionName dimension, else the entry's literal name. Also: why an entry that selects
    the alarm names no function (a glob entry and an alarm without dimensions)."""
    found: dict[str, GuardedFunction] = {}
    unresolved: list[str] = []
    dimension = alarm.dimensions.get("FunctionName")
    resource = alarm.dimensions.get("Resource", "")
    qualifier = resource.split(":", 1)[1] if ":" in resource else ""
    alias = qualifier if qualifier and not qualifier.isdigit() and qualifier != "$LATEST" else None
    for key, entry in policy.functions.items():
        if entry.alarms is None or not selects(entry.alarms.select, alarm.alarm_name, tags):
            continue
        if dimension:
            match = policy.for_function(dimension)
            if match is None or match[0] != key:
                continue  # the alarm watches another function than this entry guards
            name = plain_function_name(dimension)
        elif _GLOB.isdisjoint(entry.match or key):
            name = entry.match or key
        else:
            unresolved.append(
                f"functions.{key} selects alarm {alarm.alarm_name}, but the alarm has no FunctionName "
                f"dimension and '{entry.match or key}' is a pattern: add the dimension or name the function"
            )
            continue
        found.setdefault(name, GuardedFunction(key=key, entry=entry, function_name=name, alias=alias))
    return list(found.values()), unresolved


@datarecord
class Located:
    deployment_id: str
    in_flight: bool
    deployment: Deployment | None  # resolved (AppSpec read) when finding it needed that


def locate_deployment(
    codedeploy: CodeDeployPort,
    function_name: str,
    group: DeploymentGroupRef | None,
    *,
    created_before: datetime,
    recent_since: datetime | None,
) -> Located | None:
    """The function's in-flight deployment created before ``created_before`` — one ListDeployments
    call when the policy names the deployment group — else, with ``recent_since``, its newest
    finished one created since then."""
    application = group.application if group else None
    group_name = group.name if group else None
    ids = codedeploy.deployments(
        application_name=application,
        deployment_group_name=group_name,
        statuses=IN_FLIGHT_STATUSES,
        created_before=created_before,
    )
    if ids and group is not None:
        # one in-flight deployment per group: no need to resolve
        return Located(deployment_id=ids[0], in_flight=True, deployment=None)
    deployment = newest_of(codedeploy, ids, function_name)
    if deployment is not None:
        return Located(deployment_id=deployment.deployment_id, in_flight=True, deployment=deployment)
    if recent_since is None:
        return None
    ids = codedeploy.deployments(
        application_name=application,
        deployment_group_name=group_name,
        statuses=FINISHED_STATUSES,
        created_after=recent_since,
        created_before=created_before,
    )
    deployment = newest_of(codedeploy, ids, function_name)
    return (
        Located(deployment_id=deployment.deployment_id, in_flight=False, deployment=deployment)
        if deployment
        else None
    )


def handle_alarm_event(
    event: Mapping[str, Any],
    ports: RollbackPorts,
    *,
    stage: Stage,
    clock: Clock,
    alerts: AlertPublisher | None = None,
) -> list[OutcomeRecord]:
    """Roll back every guarded function the alarm concerns; one outcome record per function."""
    alarm = parse_alarm_event(event)
    context = {"alarm_name": alarm.alarm_name, "state": alarm.state}
    if alarm.state != ALARM:
        logger.info("alarm not in ALARM; no action", extra=context)
        return []
    policy = ports.policy.load(stage)
    fetched: list[dict[str, str]] = []

    def tags() -> dict[str, str]:  # fetched at most once, and only when a tag selector decides
        if not fetched:
            fetched.append(ports.alarms.tags(alarm.alarm_arn) if alarm.alarm_arn else {})
        return fetched[0]

    functions, unresolved = guarded_functions(policy, alarm, tags)
    for reason in unresolved:
        logger.warning("guarded alarm names no function; no action", extra={**context, "reason": reason})
    if not functions:
        logger.info("alarm guards no function; no action", extra=context)
        return []
    records, failures = [], []
    for function in functions:
        record, failure = _roll_back(function, alarm, policy, ports, stage=stage, clock=clock)
        records.append(finish_record(record, alerts=alerts))
        if failure is not None:
            failures.append(failure)
    if failures:
        logger.error("alarm rollback incomplete", extra={**context, "errors": [str(f) for f in failures]})
        raise RollbackError("; ".join(str(f) for f in failures)) from failures[0]
    return records


def record_unrun(failure: Evaluation, *, stage: str | None) -> OutcomeRecord:
    """The record of an alarm rollback that could not run at all (invalid settings): no alarm and
    no deployment known, only why."""
    record = OutcomeRecord(role=Role.ALARM_ROLLBACK, stage=stage, checks=failure.checks)
    return finish_record(_no_action(record, failure.reason, ok=False))


def _roll_back(
    function: GuardedFunction,
    alarm: AlarmStateChange,
    policy: Policy,
    ports: RollbackPorts,
    *,
    stage: Stage,
    clock: Clock,
) -> tuple[OutcomeRecord, DeployGuardError | None]:
    record = OutcomeRecord(
        role=Role.ALARM_ROLLBACK,
        stage=stage.value,
        function_name=function.function_name,
        alias=function.alias,
        alarm_name=alarm.alarm_name,
        alarm_at=alarm.changed_at,
    )
    recent = policy.rollback.recent_minutes
    try:
        located = locate_deployment(
            ports.codedeploy,
            function.function_name,
            function.entry.deployment_group,
            created_before=alarm.changed_at,
            recent_since=clock() - timedelta(minutes=recent) if recent else None,
        )
    except DeployGuardError as exc:
        reason = f"could not look for the deployment of {function.function_name}: {exc}"
        return _no_action(record, reason, ok=False), exc
    if located is None:
        window = f" nor finished within {recent} minutes" if recent else ""
        reason = f"{alarm.alarm_name} in ALARM, but no deployment of {function.function_name} was in flight{window}"
        return _no_action(record, reason), None
    record = replace(record, deployment_id=located.deployment_id)
    if located.deployment is not None:
        record = replace(record, **asdict(located.deployment.target))
    bypass = bypass_for(function.entry, located.deployment_id, function.function_name)
    if bypass is not None:
        reason = bypass_reason(bypass, skipped="rollback")
        return _no_action(replace(record, bypass=bypass), reason), None

    def aim() -> Aim:
        """Read the alias (after the stop) and where it goes back to."""
        deployment = located.deployment
        if function.alias is None and deployment is None:
            deployment = ports.codedeploy.resolve(located.deployment_id)
        alias = function.alias or (deployment.target.alias if deployment else "")
        state = ports.functions.alias(function.function_name, alias)
        if not state.additional_version_weights and deployment is None:
            deployment = ports.codedeploy.resolve(located.deployment_id)
        plan = plan_restore(state, deployment)
        executed = alarm.dimensions.get("ExecutedVersion")
        if plan is None:
            left = f"{alias} is on version {state.function_version}, not on the release: left alone"
        elif executed is not None and executed == plan.version:
            left = f"the alarm concerns version {executed}, the one {alias} would go back to: left alone"
        else:
            left = None
        return Aim(state=state, plan=plan, deployment=deployment, left_alone=left)

    done = stop_and_restore(
        ports.codedeploy,
        ports.functions,
        deployment_id=located.deployment_id if located.in_flight else None,
        aim=aim,
    )
    if done.alias_changed and done.aim is not None:
        logger.warning(
            "alias changed since it was read; not overwritten",
            extra={
                "deployment_id": located.deployment_id,
                "function_name": done.aim.state.function_name,
                "alias": done.aim.state.alias,
                "revision_id": done.aim.state.revision_id,
            },
        )
    if done.aim is not None:
        record = _with_versions(
            replace(record, alias=done.aim.state.alias), done.aim.plan, done.aim.deployment
        )
    restored_ms = (clock() - alarm.changed_at).total_seconds() * 1000 if done.restored else None
    return _rollback_record(record, alarm, done.actions, restored_ms), done.error


def _with_versions(
    record: OutcomeRecord, plan: Restore | None, deployment: Deployment | None
) -> OutcomeRecord:
    if deployment is not None:
        target: DeploymentTarget = deployment.target
        return replace(record, current_version=target.current_version, target_version=target.target_version)
    if plan is not None:
        return replace(record, current_version=plan.version, target_version=plan.leaving)
    return record


def _rollback_record(
    record: OutcomeRecord, alarm: AlarmStateChange, actions: list[Action], restored_ms: float | None
) -> OutcomeRecord:
    done = [
        a for a in actions if a.ok and a.kind in (ActionKind.DEPLOYMENT_STOPPED, ActionKind.ALIAS_RESTORED)
    ]
    failed = [a for a in actions if not a.ok]
    summary = ", ".join(f"{a.kind.value} ({a.detail})" for a in done) or "nothing to roll back"
    reason = f"{alarm.alarm_name} in ALARM during deployment {record.deployment_id}: {summary}"
    if failed:
        reason += "; failed: " + "; ".join(f"{a.kind.value}: {a.detail}" for a in failed)
    elif not done:
        reason += "; " + "; ".join(a.detail for a in actions)
    return replace(record, actions=actions, reason=reason, alarm_to_restore_ms=restored_ms)


def _no_action(record: OutcomeRecord, reason: str, *, ok: bool = True) -> OutcomeRecord:
    logger.info("alarm rollback: no action", extra={"alarm_name": record.alarm_name, "reason": reason})
    action = Action(kind=ActionKind.NO_ACTION, ok=ok, detail=reason)
    return replace(record, reason=reason, actions=[action])
