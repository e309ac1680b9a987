"""Alarm rollback: a guarded alarm entered ALARM → stop the function's in-flight deployment and put
its alias back on the previous version at once, routing cleared.

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
from typing import Any, Protocol

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from deployguard.alarms import ALARM, selects
from deployguard.appspec import DeploymentTarget, plain_function_name
from deployguard.aws.codedeploy import FINISHED_STATUSES, IN_FLIGHT_STATUSES, CodeDeploy, Deployment
from deployguard.aws.lambda_ import Lambda
from deployguard.bake import Clock
from deployguard.errors import AwsCallError, DeployGuardError, EventError, ResolutionError
from deployguard.notify import AlertPublisher
from deployguard.observability import logger, record_outcome
from deployguard.outcome import Action, ActionKind, OutcomeRecord, Role
from deployguard.policy import DeploymentGroupRef, FunctionPolicy, Policy
from deployguard.post_traffic import audited_bypass
from deployguard.records import datarecord
from deployguard.secrets import Redactor
from deployguard.snapshot import AliasState

PRECONDITION_FAILED = "PreconditionFailedException"
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


class AlarmTags(Protocol):
    def tags(self, alarm_arn: str) -> dict[str, str]: ...


@datarecord
class RollbackPorts:
    codedeploy: CodeDeploy
    lambda_: Lambda
    alarms: AlarmTags
    load_policy: Callable[[], Policy]


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
    codedeploy: CodeDeploy,
    function_name: str,
    group: DeploymentGroupRef | None,
    *,
    created_before: datetime,
    recent_since: datetime | None,
) -> Located | None:
    """The function's in-flight deployment created before ``created_before`` — one ListDeployments
    call when the policy names the deployment group — else, with ``recent_since``, its newest
    finished one created since then."""
    names: dict[str, Any] = (
        {"application_name": group.application, "deployment_group_name": group.name} if group else {}
    )
    ids = codedeploy.deployments(**names, statuses=IN_FLIGHT_STATUSES, created_before=created_before)
    if ids and group is not None:
        # one in-flight deployment per group: no need to resolve
        return Located(deployment_id=ids[0], in_flight=True, deployment=None)
    deployment = newest_of(codedeploy, ids, function_name)
    if deployment is not None:
        return Located(deployment_id=deployment.deployment_id, in_flight=True, deployment=deployment)
    if recent_since is None:
        return None
    ids = codedeploy.deployments(
        **names, statuses=FINISHED_STATUSES, created_after=recent_since, created_before=created_before
    )
    deployment = newest_of(codedeploy, ids, function_name)
    return (
        Located(deployment_id=deployment.deployment_id, in_flight=False, deployment=deployment)
        if deployment
        else None
    )


def newest_of(
    codedeploy: CodeDeploy, deployment_ids: list[str], function_name: str, alias: str | None = None
) -> Deployment | None:
    """The newest of the deployments that shift ``function_name`` (and ``alias``); others are skipped."""
    matching: list[Deployment] = []
    for deployment_id in deployment_ids:
        try:
            deployment = codedeploy.resolve(deployment_id)
        except ResolutionError:
            continue  # not a Lambda deployment, or one without versions: not this function's
        target = deployment.target
        if plain_function_name(target.function_name) == plain_function_name(function_name) and alias in (
            None,
            target.alias,
        ):
            matching.append(deployment)
    if not matching:
        return None
    return max(matching, key=lambda d: d.create_time.timestamp() if d.create_time else 0.0)


@datarecord
class Restore:
    """Where the alias goes back to, and which version it leaves."""

    version: str
    leaving: str


def plan_restore(state: AliasState, deployment: Deployment | None) -> Restore | None:
    """Mid-shift (routing weights): back to the alias's main version. At 100% on the release's
    target: back to the AppSpec's CurrentVersion. Anything else: the alias is not on the release."""
    if state.additional_version_weights:
        return Restore(
            version=state.function_version, leaving=",".join(sorted(state.additional_version_weights))
        )
    if deployment is not None and state.function_version == deployment.target.target_version:
        return Restore(version=deployment.target.current_version, leaving=deployment.target.target_version)
    return None


def handle_alarm_event(
    event: Mapping[str, Any],
    ports: RollbackPorts,
    *,
    stage: str,
    clock: Clock,
    alerts: AlertPublisher | None = None,
) -> list[OutcomeRecord]:
    """Roll back every guarded function the alarm concerns; one outcome record per function."""
    alarm = parse_alarm_event(event)
    context = {"alarm_name": alarm.alarm_name, "state": alarm.state}
    if alarm.state != ALARM:
        logger.info("alarm not in ALARM; no action", extra=context)
        return []
    policy = ports.load_policy()
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
        record = record.finish().redacted(Redactor())
        record_outcome(record, alerts=alerts)
        records.append(record)
        if failure is not None:
            failures.append(failure)
    if failures:
        logger.error("alarm rollback incomplete", extra={**context, "errors": [str(f) for f in failures]})
        raise RollbackError("; ".join(str(f) for f in failures)) from failures[0]
    return records


def _roll_back(
    function: GuardedFunction,
    alarm: AlarmStateChange,
    policy: Policy,
    ports: RollbackPorts,
    *,
    stage: str,
    clock: Clock,
) -> tuple[OutcomeRecord, DeployGuardError | None]:
    record = OutcomeRecord(
        role=Role.ALARM_ROLLBACK,
        stage=stage,
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
    bypass = audited_bypass(function.entry, located.deployment_id, function.function_name)
    if bypass is not None:
        reason = f"rollback bypassed by policy for this deployment: {bypass.reason} (approved by {bypass.approved_by})"
        return _no_action(replace(record, bypass=bypass), reason), None
    return _stop_and_restore(
        record, function=function, alarm=alarm, located=located, ports=ports, clock=clock
    )


def _stop_and_restore(
    record: OutcomeRecord,
    *,
    function: GuardedFunction,
    alarm: AlarmStateChange,
    located: Located,
    ports: RollbackPorts,
    clock: Clock,
) -> tuple[OutcomeRecord, DeployGuardError | None]:
    actions: list[Action] = []
    failure: DeployGuardError | None = None
    deployment_id = located.deployment_id
    if located.in_flight:
        try:
            stopped = ports.codedeploy.stop(deployment_id, auto_rollback=True)
            detail = "with auto-rollback" if stopped else "already completed"
            actions.append(
                Action(kind=ActionKind.DEPLOYMENT_STOPPED if stopped else ActionKind.NO_ACTION, detail=detail)
            )
        except DeployGuardError as exc:  # NOTE: still restore the alias: that is what stops the harm
            actions.append(Action(kind=ActionKind.DEPLOYMENT_STOPPED, ok=False, detail=str(exc)))
            failure = exc
    deployment = located.deployment
    restored_ms: float | None = None
    try:
        if function.alias is None and deployment is None:
            deployment = ports.codedeploy.resolve(deployment_id)
        alias = function.alias or (deployment.target.alias if deployment else "")
        state = ports.lambda_.alias(function.function_name, alias)
        if not state.additional_version_weights and deployment is None:
            deployment = ports.codedeploy.resolve(deployment_id)
        plan = plan_restore(state, deployment)
        record = _with_versions(replace(record, alias=alias), plan, deployment)
        executed = alarm.dimensions.get("ExecutedVersion")
        if plan is None:
            detail = f"{alias} is on version {state.function_version}, not on the release: left alone"
            actions.append(Action(kind=ActionKind.NO_ACTION, detail=detail))
        elif executed is not None and executed == plan.version:
            detail = f"the alarm concerns version {executed}, the one {alias} would go back to: left alone"
            actions.append(Action(kind=ActionKind.NO_ACTION, detail=detail))
        else:
            actions.append(_point(ports.lambda_, state, plan, deployment_id))
            if actions[-1].ok:
                restored_ms = (clock() - alarm.changed_at).total_seconds() * 1000
    except DeployGuardError as exc:  # an AWS call failed, or the AppSpec does not name the versions
        actions.append(Action(kind=ActionKind.ALIAS_RESTORED, ok=False, detail=str(exc)))
        failure = failure or exc
    return _rollback_record(record, alarm, actions, restored_ms), failure


def _point(lambda_: Lambda, state: AliasState, plan: Restore, deployment_id: str) -> Action:
    try:
        lambda_.point_alias(state, plan.version)
    except AwsCallError as exc:
        if exc.error_code != PRECONDITION_FAILED:
            raise
        logger.warning(
            "alias changed since it was read; not overwritten",
            extra={
                "deployment_id": deployment_id,
                "function_name": state.function_name,
                "alias": state.alias,
                "revision_id": state.revision_id,
            },
        )
        detail = (
            f"{state.alias} changed after it was read (RevisionId {state.revision_id}): not overwritten; "
            "check it with `deployguard status`"
        )
        return Action(kind=ActionKind.ALIAS_RESTORED, ok=False, detail=detail)
    return Action(
        kind=ActionKind.ALIAS_RESTORED, detail=f"{state.alias} -> version {plan.version}, routing cleared"
    )


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
