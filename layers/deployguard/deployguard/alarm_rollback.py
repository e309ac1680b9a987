"""Alarm rollback: a guarded alarm entered ALARM → stop the function's in-flight deployment and put
its alias back on the previous version at once, routing cleared (``deployguard.restore``).

Nothing in the event is trusted. The event says which alarm changed; before anything is done the
alarm is read back from CloudWatch (:func:`verify_alarm`): it must exist, be in ALARM now, carry the
ARN the event names (``resources[0]``, for the event's ``alarmName``), and its state change must not
lie in the future (:data:`CLOCK_SKEW` allowed). The policy selects by the alarm as read (name,
tags), the function and the version come from its dimensions as read, and the time it entered
ALARM is CloudWatch's. A forged or stale event changes nothing: one outcome record says why, and a
WARNING line.

Acting never makes things worse:

- only the function's most recent release is undone: the deployment in flight that was created
  before the alarm entered ALARM; else (a retry) one stopped after it; else, with
  ``rollback.recent_minutes``, one that finished recently — and never when a later deployment of the
  function exists (it replaced what the rollback would go back to);
- only when the alarm concerns the release's target version (its ``ExecutedVersion`` dimension,
  when it has one);
- only while the alias still has the shape the deployment gave it (``restore.alias_shape``: the
  current version with the target in the routing config, or the target alone); an operator's newer
  change is left alone, deployment included;
- UpdateAlias carries the RevisionId read before the stop: a change made meanwhile is not
  overwritten, unless it put the alias exactly where the rollback would (then: no action).

Every guarded alarm leaves one outcome record per function, written in a ``finally``, whatever
failed; a failed or partial rollback, one that ran out of time, and a bypassed one alert; a failure
is then raised so Lambda retries (a retry finishes a restore a throttled UpdateAlias left undone).
The work runs against a deadline like the hooks' (the Lambda's remaining time minus the reserve):
past it nothing more is changed, and the records say what was done.

The release is found from the function, not by searching the account (``deployguard.lookup``): the
policy's ``deployment_group``, else the deployment the pre-traffic hook recorded, verified with
CodeDeploy; only without either are the account's deployments resolved, in parallel. The canary hot
path with a record is DescribeAlarms and Query (the record; remembered while warm) at once →
GetDeployment (the record's AppSpec is taken when its SHA-256 is CodeDeploy's) → GetAlias →
StopDeployment → UpdateAlias: six calls. The scope is the verified record's ``deployguard:stage``
tag; without one it is read (ListTags, beside the lookup; remembered for a minute).

The records are redacted with both versions' environments (two GetFunctionConfiguration, remembered
while warm) only when one will quote text DeployGuard did not write: an AWS error message, a crash,
a bypass's reason from the policy. Every other record is DeployGuard's own sentences about
identifiers (the alarm, the deployment, version numbers, the alias), where no environment value can
appear: key formats redact them, and the environments are not read.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from deployguard.alarms import ALARM, selects
from deployguard.appspec import plain_function_name
from deployguard.bake import Clock
from deployguard.deadlines import in_context
from deployguard.deployment import (
    FINISHED_STATUSES,
    IN_FLIGHT_STATUSES,
    Deployment,
    deployments_of,
    newest_of,
)
from deployguard.errors import DeployGuardError, EventError
from deployguard.findings import Decision
from deployguard.guard import bypass_for, bypass_reason, scope_finding
from deployguard.hook import Evaluation
from deployguard.lookup import Recorded, recorded_deployment
from deployguard.mode import acts
from deployguard.observability import ERROR_MAX, finish_record, logger
from deployguard.outcome import Action, ActionKind, OutcomeRecord, Role
from deployguard.policy import DeploymentGroupRef, FunctionPolicy, Policy
from deployguard.ports import (
    AlarmLookup,
    AlertPublisher,
    CodeDeployPort,
    DeploymentRecordsPort,
    LambdaPort,
    PolicySource,
)
from deployguard.records import datarecord
from deployguard.redaction import RedactedError
from deployguard.restore import (
    Aim,
    Restore,
    Shape,
    alias_shape,
    describe_alias,
    redactor_for,
    stop_and_restore,
)
from deployguard.secrets import Redactor
from deployguard.stages import Stage

STATE_CHANGE = "CloudWatch Alarm State Change"
# How far ahead of this function's clock an alarm's state change may be dated and still be taken
# for CloudWatch's: Lambda's and CloudWatch's clocks are NTP-synchronised to well under a second.
CLOCK_SKEW = timedelta(seconds=60)
# A retry looks for the deployment an earlier attempt stopped among those created this long before
# the alarm (two one-hour hooks and the slowest traffic shift, Linear10PercentEvery10Minutes, fit).
STOPPED_LOOKBACK = timedelta(hours=6)
MAX_NAME = 255  # CloudWatch alarm names
MAX_ARN = 1600

_GLOB = frozenset("*?[")


class RollbackError(DeployGuardError):
    """A rollback step failed; raised after the outcome records are written, so Lambda retries."""

    code = "ROLLBACK"


class DeadlineError(DeployGuardError):
    """The rollback ran out of time (the Lambda's remaining time minus the reserve)."""

    code = "DEADLINE"


# --- the event: what it claims ----------------------------------------------------------------------


@datarecord
class AlarmStateChange:
    """What an EventBridge "CloudWatch Alarm State Change" event claims (nothing of it is trusted:
    :func:`verify_alarm` reads the alarm back)."""

    alarm_name: str
    alarm_arn: str
    state: str
    previous_state: str | None
    changed_at: datetime
    dimensions: dict[str, str]
    composite: bool = False


def _malformed(where: str, expected: str, value: Any) -> EventError:
    return EventError(
        f"the alarm state change event is malformed: {where} must be {expected}, not "
        f"{type(value).__name__} (see events/alarm_state_change.json)"
    )


def _mapping(value: Any, where: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise _malformed(where, "an object", value)
    return value


def _optional_mapping(value: Any, where: str) -> Mapping[str, Any]:
    return {} if value is None else _mapping(value, where)


def _text(value: Any, where: str, *, limit: int = MAX_ARN) -> str:
    if not isinstance(value, str) or not value:
        raise _malformed(where, "a non-empty string", value)
    if len(value) > limit:
        raise EventError(
            f"the alarm state change event is malformed: {where} is longer than {limit} characters"
        )
    return value


def _timestamp(value: Any, where: str) -> datetime:
    text = _text(value, where, limit=64)
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise EventError(
            f"the alarm state change event is malformed: {where} is not an ISO 8601 timestamp"
        ) from None
    if moment.tzinfo is None:
        raise EventError(f"the alarm state change event is malformed: {where} has no time zone")
    return moment


def _dimensions(configuration: Mapping[str, Any]) -> dict[str, str]:
    metrics = configuration.get("metrics")
    if metrics is None:
        return {}
    if not isinstance(metrics, list):
        raise _malformed("detail.configuration.metrics", "a list", metrics)
    dimensions: dict[str, str] = {}
    for index, metric in enumerate(metrics):
        where = f"detail.configuration.metrics[{index}]"
        stat = _optional_mapping(_mapping(metric, where).get("metricStat"), f"{where}.metricStat")
        described = _optional_mapping(stat.get("metric"), f"{where}.metricStat.metric")
        found = _optional_mapping(described.get("dimensions"), f"{where}.metricStat.metric.dimensions")
        for name, value in found.items():
            dimensions.setdefault(
                _text(name, f"{where}.metricStat.metric.dimensions key", limit=MAX_NAME),
                _text(value, f"{where}.metricStat.metric.dimensions.{name}", limit=MAX_ARN),
            )
    return dimensions


def parse_alarm_event(event: Any) -> AlarmStateChange:
    """The event's claims, each of the type CloudWatch sends, or an ``EventError`` naming the field
    (a retry of a malformed event cannot succeed: it is recorded, not retried)."""
    if not isinstance(event, Mapping):
        raise _malformed("the event", "a JSON object", event)
    if event.get("detail-type") != STATE_CHANGE or event.get("source") != "aws.cloudwatch":
        raise EventError(
            "the event is not a 'CloudWatch Alarm State Change' EventBridge event from aws.cloudwatch "
            "(see events/alarm_state_change.json)"
        )
    detail = _mapping(event.get("detail"), "detail")
    state = _mapping(detail.get("state"), "detail.state")
    stamp, where = (
        (state["timestamp"], "detail.state.timestamp")
        if "timestamp" in state
        else (event.get("time"), "time")
    )
    previous = _optional_mapping(detail.get("previousState"), "detail.previousState")
    previous_value = previous.get("value")
    configuration = _optional_mapping(detail.get("configuration"), "detail.configuration")
    rule = configuration.get("alarmRule")
    if rule is not None and not isinstance(rule, str):
        raise _malformed("detail.configuration.alarmRule", "a string", rule)
    resources = event.get("resources")
    if resources is None:
        resources = []
    if not isinstance(resources, list):
        raise _malformed("resources", "a list of ARNs", resources)
    return AlarmStateChange(
        alarm_name=_text(detail.get("alarmName"), "detail.alarmName", limit=MAX_NAME),
        alarm_arn=_text(resources[0], "resources[0]") if resources else "",
        state=_text(state.get("value"), "detail.state.value", limit=64),
        previous_state=None
        if previous_value is None
        else _text(previous_value, "detail.previousState.value"),
        changed_at=_timestamp(stamp, where),
        dimensions=_dimensions(configuration),
        composite=rule is not None,
    )


# --- the alarm: what CloudWatch says ------------------------------------------------------------------


@datarecord
class VerifiedAlarm:
    """The alarm as CloudWatch has it now: in ALARM since ``entered_at``."""

    name: str
    arn: str
    kind: str
    entered_at: datetime
    dimensions: dict[str, str]


def verify_alarm(claim: AlarmStateChange, alarms: AlarmLookup, now: datetime) -> VerifiedAlarm | str:
    """The alarm the event names, read back (one DescribeAlarms), or why the event is not trusted."""
    latest = now + CLOCK_SKEW
    if claim.changed_at > latest:
        return (
            f"the event dates the state change of {claim.alarm_name} at {_at(claim.changed_at)}, after "
            f"now ({_at(now)}, {CLOCK_SKEW.seconds} s of clock skew allowed): not a state change CloudWatch made"
        )
    if not claim.alarm_arn:
        return f"the event names no alarm ARN (resources[0]) for {claim.alarm_name}"
    if claim.alarm_arn.rpartition(":alarm:")[2] != claim.alarm_name:
        return f"the event's resources[0] ({claim.alarm_arn}) is not the alarm it names ({claim.alarm_name})"
    alarm = alarms.alarm(claim.alarm_name)
    if alarm is None:
        return f"no alarm {claim.alarm_name} exists in this account and region"
    if alarm.arn != claim.alarm_arn:
        return f"alarm {alarm.name} is {alarm.arn}, not the event's {claim.alarm_arn}"
    if alarm.state != ALARM:
        return f"alarm {alarm.name} is {alarm.state} now, not in ALARM (the event is stale)"
    entered = alarm.entered_at or alarm.updated_at
    if entered is None:
        return f"CloudWatch gives no state change time for alarm {alarm.name}"
    for moment in (entered, alarm.updated_at or entered):
        if moment > latest:
            return (
                f"alarm {alarm.name} changed state at {_at(moment)}, after now ({_at(now)}, "
                f"{CLOCK_SKEW.seconds} s of clock skew allowed): this function's clock is wrong"
            )
    return VerifiedAlarm(
        name=alarm.name, arn=alarm.arn, kind=alarm.kind, entered_at=entered, dimensions=dict(alarm.dimensions)
    )


def _at(moment: datetime) -> str:
    return moment.isoformat(timespec="seconds")


# --- which functions, which deployment ----------------------------------------------------------------


@datarecord
class RollbackPorts:
    codedeploy: CodeDeployPort
    functions: LambdaPort
    alarms: AlarmLookup
    policy: PolicySource
    records: DeploymentRecordsPort | None = None  # None: DEPLOYGUARD_DEPLOYMENT_TABLE unset


@datarecord
class GuardedFunction:
    key: str  # the entry under the policy's 'functions'
    entry: FunctionPolicy
    function_name: str
    alias: str | None  # from the alarm's Resource dimension (function:alias), when it names one


def may_guard(policy: Policy, alarm_name: str) -> bool:
    """Could any entry select an alarm of this name (by name or prefix, or by tags, which need the
    alarm read)? False: nothing to verify, nothing to do."""
    for entry in policy.functions.values():
        select = entry.alarms.select if entry.alarms is not None else None
        if select is not None and (
            alarm_name in select.names
            or any(alarm_name.startswith(p) for p in select.prefixes)
            or select.tags
        ):
            return True
    return False


def guarded_functions(
    policy: Policy, alarm: VerifiedAlarm, tags: Callable[[], Mapping[str, str]]
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
        if entry.alarms is None or not selects(entry.alarms.select, alarm.name, tags):
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
                f"functions.{key} selects alarm {alarm.name}, but the alarm has no FunctionName "
                f"dimension and '{entry.match or key}' is a pattern: add the dimension or name the function"
            )
            continue
        found.setdefault(name, GuardedFunction(key=key, entry=entry, function_name=name, alias=alias))
    return list(found.values()), unresolved


@datarecord
class Located:
    """The release to undo: in flight, or finished (``why`` says how it qualified)."""

    deployment: Deployment
    in_flight: bool
    why: str = "in flight"
    scope_tags: dict[str, str] | None = None  # the function's, from the verified deployment record


@datarecord
class Declined:
    """A release was found, but undoing it could make things worse."""

    deployment: Deployment
    reason: str
    scope_tags: dict[str, str] | None = None  # the function's, from the verified deployment record


def locate_deployment(
    codedeploy: CodeDeployPort,
    function_name: str,
    alias: str | None,
    group: DeploymentGroupRef | None,
    *,
    alarm_at: datetime,
    recent_since: datetime | None,
    records: DeploymentRecordsPort | None = None,
) -> Located | Declined | None:
    """The function's most recent release, if the alarm may undo it.

    0. Its deployment group is the policy's ``deployment_group``; else, with ``records``, the
       deployment the pre-traffic hook recorded, once CodeDeploy confirms it
       (:func:`deployguard.lookup.recorded_deployment`): in flight and created before the alarm, it
       is the release (one deployment is in flight per group); else its group is the function's.
       Without a group, the account's deployments are searched (each resolved, in parallel).
    1. In flight and created before the alarm entered ALARM: one ListDeployments (of the group, or
       of the account) and one resolve. (One deployment is in flight per group: it is the latest.)
    2. Else its deployments created since ``STOPPED_LOOKBACK`` (or ``recent_since``) before the
       alarm, later ones included: the newest created before the alarm qualifies if it was stopped
       after the alarm (an earlier attempt stopped it: the retry finishes the restore) or, with
       ``recent_since``, finished since then — and only if no later deployment of the function
       exists (CodeDeploy's own rollback of it aside).

    What is found carries the function's scope tags when a verified record holds them.
    """
    recorded = (
        recorded_deployment(records, codedeploy, function_name, alias)
        if group is None and records is not None
        else None
    )
    found = _locate(
        codedeploy, function_name, alias, group, recorded, alarm_at=alarm_at, recent_since=recent_since
    )
    if found is not None and recorded is not None and recorded.tags is not None:
        return replace(found, scope_tags=recorded.tags)
    return found


def _locate(
    codedeploy: CodeDeployPort,
    function_name: str,
    alias: str | None,
    group: DeploymentGroupRef | None,
    recorded: Recorded | None,
    *,
    alarm_at: datetime,
    recent_since: datetime | None,
) -> Located | Declined | None:
    application = group.application if group else None
    group_name = group.name if group else None
    since = alarm_at - STOPPED_LOOKBACK
    if recent_since is not None:
        since = min(since, recent_since)
    if recorded is not None:
        if recorded.in_flight_before(alarm_at):
            return Located(deployment=recorded.deployment, in_flight=True)
        application, group_name = recorded.group.application, recorded.group.name
        known = recorded.deployment
        if known.create_time is not None and since <= known.create_time and known.created_before(alarm_at):
            return _since_recorded(
                codedeploy, known, function_name, alias, alarm_at=alarm_at, recent_since=recent_since
            )
    scoped = application is not None and group_name is not None
    ids = codedeploy.deployments(
        application_name=application,
        deployment_group_name=group_name,
        statuses=IN_FLIGHT_STATUSES,
        created_before=alarm_at,
    )
    in_flight = newest_of(codedeploy, ids[:1], function_name, alias) if ids and scoped else None
    in_flight = in_flight or (newest_of(codedeploy, ids, function_name, alias) if ids else None)
    if in_flight is not None:
        return Located(deployment=in_flight, in_flight=True)
    ids = codedeploy.deployments(
        application_name=application,
        deployment_group_name=group_name,
        statuses=(*IN_FLIGHT_STATUSES, *FINISHED_STATUSES),
        created_after=since,
    )
    return _last_release(deployments_of(codedeploy, ids, function_name, alias), alarm_at, recent_since)


def _since_recorded(
    codedeploy: CodeDeployPort,
    known: Deployment,
    function_name: str,
    alias: str | None,
    *,
    alarm_at: datetime,
    recent_since: datetime | None,
) -> Located | Declined | None:
    """The release when the verified record names a finished deployment created before the alarm
    (a repeated alarm of a release already stopped): one ListDeployments of its group, of every
    status, created since the recorded one, and the recorded deployment not resolved again.

    NOTE: this one listing answers both of :func:`locate_deployment`'s: the group has one deployment
    in flight at a time (CodeDeploy refuses a second), so one in flight is no older than the
    recorded, finished one; and the release is the newest created before the alarm, no older than
    the recorded one, with the later ones among those listed."""
    group = known.application_name, known.deployment_group_name
    ids = codedeploy.deployments(
        application_name=group[0],
        deployment_group_name=group[1],
        statuses=(*IN_FLIGHT_STATUSES, *FINISHED_STATUSES),
        created_after=known.create_time - CLOCK_SKEW if known.create_time else None,
    )
    others = deployments_of(codedeploy, [i for i in ids if i != known.deployment_id], function_name, alias)
    mine = sorted([known, *others], key=lambda d: d.create_time.timestamp() if d.create_time else 0.0)
    return _last_release(mine, alarm_at, recent_since)


def _last_release(
    mine: list[Deployment], alarm_at: datetime, recent_since: datetime | None
) -> Located | Declined | None:
    """Among the function's deployments (oldest first), the newest created before the alarm, if it
    is in flight, was stopped after the alarm, or (with ``recent_since``) finished since, and no
    later deployment of the function replaced it."""
    before = [d for d in mine if d.created_before(alarm_at)]
    if not before:
        return None
    candidate = before[-1]
    if candidate.status in IN_FLIGHT_STATUSES:  # it started between the two calls' answers
        return Located(deployment=candidate, in_flight=True)
    stopped_after = (
        candidate.status == "Stopped"
        and candidate.complete_time is not None
        and candidate.complete_time >= alarm_at - CLOCK_SKEW
    )
    recent = (
        recent_since is not None
        and candidate.status in FINISHED_STATUSES
        and candidate.create_time is not None
        and candidate.create_time >= recent_since
    )
    if not (stopped_after or recent):
        return None
    later = [
        d
        for d in mine
        if d is not candidate
        and not (candidate.create_time and d.created_before(candidate.create_time))
        and d.rollback_of != candidate.deployment_id
    ]
    if later:
        newer = later[-1]
        return Declined(
            deployment=candidate,
            reason=(
                f"deployment {newer.deployment_id} (version {newer.target.current_version} -> "
                f"{newer.target.target_version}, {newer.status}) came after {candidate.deployment_id}: only the "
                "most recent release is undone, never back to a version a later deployment replaced"
            ),
        )
    why = "stopped after the alarm" if stopped_after else "finished recently"
    return Located(deployment=candidate, in_flight=False, why=why)


# --- the deadline and the records in progress -------------------------------------------------------


class Deadline:
    """The Lambda's remaining time minus the reserve; ``check`` before each change raises past it."""

    def __init__(self, seconds_left: Callable[[], float] | None) -> None:
        self._at = None if seconds_left is None else time.monotonic() + seconds_left()
        self._expired = threading.Event()

    def remaining(self) -> float | None:
        return None if self._at is None else max(self._at - time.monotonic(), 0.0)

    def expire(self) -> None:
        self._expired.set()

    def check(self, step: str) -> None:
        left = self.remaining()
        if self._expired.is_set() or (left is not None and left <= 0):
            raise DeadlineError(
                f"the rollback ran out of time before {step} (the function's timeout minus "
                "DEPLOYGUARD_TIME_RESERVE_SECONDS): nothing more was changed"
            )


@dataclass
class _Attempt:
    """One record in the making (per guarded function, or one for the alarm when none was reached).
    The worker fills it in; the caller writes it, even when the worker ran out of time or crashed."""

    record: OutcomeRecord
    actions: list[Action] = field(default_factory=list)
    error: Exception | None = None
    redactor: Redactor | None = None
    note: str | None = None
    warn: str | None = None  # a WARNING line to log with the record (not trusted, left alone)
    finished: bool = False  # the worker is done with it (past the deadline, an unfinished one fails)
    # starts reading both versions' environments (the redactor), once the release is known
    read_environments: Callable[[], Future[tuple[Redactor, str | None]] | None] | None = None

    def no_action(self, reason: str, *, ok: bool = True, warn: bool = False) -> None:
        self.actions.append(Action(kind=ActionKind.NO_ACTION, ok=ok, detail=reason))
        self.record = replace(self.record, reason=reason)
        if warn:
            self.warn = reason

    def fail(self, reason: str, error: Exception) -> None:
        self.no_action(reason, ok=False)
        self.error = error


@dataclass
class _Progress:
    attempts: list[_Attempt] = field(default_factory=list)
    step: str = "reading the policy"


# --- the use case -----------------------------------------------------------------------------------


def handle_alarm_event(
    event: Mapping[str, Any],
    ports: RollbackPorts,
    *,
    stage: Stage,
    clock: Clock,
    alerts: AlertPublisher | None = None,
    seconds_left: Callable[[], float] | None = None,
) -> list[OutcomeRecord]:
    """Roll back every guarded function the alarm concerns: one outcome record per function (one for
    the alarm when it goes no further), written whatever happens. ``seconds_left``: the time left
    before the deadline (None: no deadline). Raises ``EventError`` for a malformed event (recorded,
    not to be retried) and ``RollbackError`` after the records when something failed."""
    base = OutcomeRecord(role=Role.ALARM_ROLLBACK, stage=stage.value)
    try:
        claim = parse_alarm_event(event)
    except EventError as exc:
        action = Action(kind=ActionKind.NO_ACTION, detail=str(exc))
        finish_record(replace(base, reason=f"{exc}; nothing was changed", actions=[action]))
        raise
    if claim.state != ALARM:
        logger.info(
            "alarm not in ALARM; no action", extra={"alarm_name": claim.alarm_name, "state": claim.state}
        )
        return []
    base = replace(base, alarm_name=claim.alarm_name)
    deadline = Deadline(seconds_left)
    progress = _Progress()
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="alarm-rollback")
    future = pool.submit(in_context(_work), claim, ports, base, progress, deadline, stage=stage, clock=clock)
    try:
        future.result(timeout=deadline.remaining())
    except Exception as exc:
        if not future.done():  # past the deadline: the worker changes nothing more from now on
            deadline.expire()
            _out_of_time(progress, base)
        else:  # NOTE: a bug outside any attempt: still one record, and an alert
            attempt = _Attempt(record=base, finished=True)
            attempt.fail(f"the alarm rollback crashed while {progress.step}", exc)
            progress.attempts.append(attempt)
    finally:
        # NOTE: no wait: a worker past the deadline must not hold the records back. A call it had
        # already sent may still complete; nothing after it is attempted (Deadline.check).
        pool.shutdown(wait=False)
    attempts = list(progress.attempts)  # NOTE: a worker past the deadline may still append: not written
    records = [_write(attempt, claim, alerts=alerts) for attempt in attempts]
    failures = [a.error for a in attempts if a.error is not None]
    if failures:
        messages = [r.reason for r, a in zip(records, attempts, strict=True) if a.error is not None]
        logger.error("alarm rollback incomplete", extra={"alarm_name": claim.alarm_name, "errors": messages})
        raise RollbackError("; ".join(messages)) from None
    return records


def _out_of_time(progress: _Progress, base: OutcomeRecord) -> None:
    error = DeadlineError(
        f"the rollback ran out of time while {progress.step} (the function's timeout minus "
        "DEPLOYGUARD_TIME_RESERVE_SECONDS): nothing more was changed"
    )
    if not progress.attempts:
        progress.attempts.append(_Attempt(record=base))
    for attempt in list(progress.attempts):
        if not attempt.finished:
            attempt.fail(str(error), error)


def _work(
    claim: AlarmStateChange,
    ports: RollbackPorts,
    base: OutcomeRecord,
    progress: _Progress,
    deadline: Deadline,
    *,
    stage: Stage,
    clock: Clock,
) -> None:
    """Everything that reads AWS and acts; it records into ``progress`` as it goes."""
    try:
        policy = ports.policy.load_all(stage)  # issue 12: every application's entries
    except DeployGuardError as exc:
        attempt = _Attempt(record=base, finished=True)
        attempt.fail(
            f"{claim.alarm_name} in ALARM, but the {stage.value} policy could not be read: {exc}", exc
        )
        progress.attempts.append(attempt)
        return
    if not may_guard(policy, claim.alarm_name):
        logger.info("alarm guards no function; no action", extra={"alarm_name": claim.alarm_name})
        return
    progress.step = "re-reading the alarm"
    ahead = _records_ahead(ports, claim)
    try:
        verified = verify_alarm(claim, ports.alarms, clock())
        if isinstance(verified, VerifiedAlarm):
            progress.step = "reading the alarm's tags"
            fetched: list[dict[str, str]] = []

            def tags() -> dict[str, str]:  # fetched at most once, only when a tag selector decides
                if not fetched:
                    fetched.append(ports.alarms.tags(verified.arn))
                return fetched[0]

            functions, unresolved = guarded_functions(policy, verified, tags)
    except DeployGuardError as exc:
        attempt = _Attempt(record=base, finished=True)
        attempt.fail(f"{claim.alarm_name} could not be read back from CloudWatch: {exc}", exc)
        progress.attempts.append(attempt)
        return
    if isinstance(verified, str):
        attempt = _Attempt(record=base, finished=True)
        attempt.no_action(f"alarm event not trusted, nothing was changed: {verified}", warn=True)
        progress.attempts.append(attempt)
        return
    for reason in unresolved:
        logger.warning(
            "guarded alarm names no function; no action",
            extra={"alarm_name": verified.name, "reason": reason},
        )
    if not functions:
        logger.info("alarm guards no function; no action", extra={"alarm_name": verified.name})
        return
    # NOTE: every function's record exists before the first is rolled back: past the deadline, those
    # not reached are recorded too
    attempts = [
        _Attempt(
            record=replace(
                base,
                function_name=function.function_name,
                alias=function.alias,
                alarm_name=verified.name,
                alarm_at=verified.entered_at,
            )
        )
        for function in functions
    ]
    progress.attempts.extend(attempts)
    if ahead is not None:
        wait([ahead], timeout=deadline.remaining())
    for function, attempt in zip(functions, attempts, strict=True):
        progress.step = f"rolling back {function.function_name}"
        # NOTE: read while the lookup runs, unless the function's record holds them
        scope = None if _tags_recorded(ports, function) else _read_tags(ports, function.function_name)
        _attempt(function, verified, policy, ports, attempt, scope=scope, deadline=deadline, clock=clock)


def _records_ahead(ports: RollbackPorts, claim: AlarmStateChange) -> Future[object] | None:
    """Start reading the deployment records of the function the event names while the alarm is
    read back: a read only, kept in the records' warm memory for the lookup. The alarm as CloudWatch
    has it still decides which function is looked up: a forged name only reads another record."""
    name = claim.dimensions.get("FunctionName")
    if ports.records is None or not name:
        return None
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="alarm-rollback-records")
    try:
        return pool.submit(in_context(ports.records.latest), plain_function_name(name))
    finally:
        pool.shutdown(wait=False)


Tags = Future[Mapping[str, str]]


def _tags_recorded(ports: RollbackPorts, function: GuardedFunction) -> bool:
    """Whether a deployment record of ``function`` (read ahead: remembered) holds its scope tags.
    Then they are taken from the record once CodeDeploy has confirmed it (:func:`_scope_of`), and
    ListTags is read only if it is refused."""
    if ports.records is None or function.entry.deployment_group is not None:
        return False
    try:
        found = ports.records.latest(plain_function_name(function.function_name))
    except DeployGuardError:
        return False
    return any(r.tags is not None and function.alias in (None, r.alias) for r in found)


def _scope_of(
    found: Located | Declined | DeployGuardError | None, ports: RollbackPorts, name: str, scope: Tags | None
) -> Tags:
    """The scope tags: read ahead (``scope``), else the verified record's, else read now."""
    if scope is not None:
        return scope
    if isinstance(found, (Located, Declined)) and found.scope_tags is not None:
        recorded: Tags = Future()
        recorded.set_result(found.scope_tags)
        return recorded
    return _read_tags(ports, name)


def _read_tags(ports: RollbackPorts, name: str) -> Tags:
    """Start reading the tags (the scope) of ``name``, a function the verified alarm concerns, on a
    thread of its own: the lookup (reads only) runs meanwhile; the scope still decides before it is
    used and before anything changes."""
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="alarm-rollback-tags")
    try:
        return pool.submit(in_context(ports.functions.tags), name)
    finally:
        pool.shutdown(wait=False)


def _attempt(
    function: GuardedFunction,
    alarm: VerifiedAlarm,
    policy: Policy,
    ports: RollbackPorts,
    attempt: _Attempt,
    *,
    scope: Tags | None,
    deadline: Deadline,
    clock: Clock,
) -> None:
    """One function's rollback; whatever it raises, the attempt keeps what was done. ``scope``: the
    function's tags being read (None: from its deployment record, once verified)."""
    try:
        deadline.check(f"rolling back {function.function_name}")
        _roll_back(function, alarm, policy, ports, attempt, scope=scope, deadline=deadline, clock=clock)
    except DeadlineError as exc:
        attempt.fail(str(exc), exc)
    except Exception as exc:  # NOTE: a bug (even after StopDeployment): the record keeps what was done
        attempt.error = exc
        attempt.actions.append(
            Action(kind=ActionKind.NO_ACTION, ok=False, detail=f"stopped by an error ({type(exc).__name__})")
        )
        if attempt.read_environments is not None:  # the crash's message is not DeployGuard's sentence
            with contextlib.suppress(Exception):
                _take_redactor(attempt, deadline)
    finally:
        attempt.finished = True


def _out_of_scope(
    name: str, alarm: VerifiedAlarm, policy: Policy, attempt: _Attempt, *, tags: Tags, deadline: Deadline
) -> bool:
    """The function is not tagged ``deployguard:stage=<stage>`` (or its tags cannot be read): it is
    left alone, and the attempt says why. NOTE: StopDeployment is allowed on "*" (it supports no
    resource-level permissions): this check is what keeps the rollback to its stage's functions.
    With tags from a deployment record (which CodeDeploy does not confirm), AWS bounds it too: the
    alias is read (GetAlias, allowed only on functions tagged for the stage) before anything stops."""
    try:
        finding = scope_finding(policy, name, tags.result(timeout=deadline.remaining()))
    except TimeoutError:
        deadline.check(f"the tags of {name} were read")
        raise
    except DeployGuardError as exc:
        attempt.fail(f"{alarm.name} in ALARM, but the tags of {name} could not be read: {exc}", exc)
        return True
    if finding is not None:
        attempt.no_action(f"{alarm.name} in ALARM, left alone: {finding.message}", warn=True)
        return True
    return False


def _roll_back(
    function: GuardedFunction,
    alarm: VerifiedAlarm,
    policy: Policy,
    ports: RollbackPorts,
    attempt: _Attempt,
    *,
    scope: Tags | None,
    deadline: Deadline,
    clock: Clock,
) -> None:
    name = function.function_name
    # NOTE: the lookup (reads only) runs while the tags are read; the scope still decides first
    found = _lookup(function, alarm, policy, ports, clock=clock)
    scope = _scope_of(found, ports, name, scope)
    if _out_of_scope(name, alarm, policy, attempt, tags=scope, deadline=deadline):
        return
    located = _settle(found, name, alarm, policy, attempt)
    if located is None:
        return
    deployment = located.deployment
    target = deployment.target
    attempt.record = replace(
        attempt.record, deployment_id=deployment.deployment_id, **asdict(target) | {"function_name": name}
    )
    attempt.read_environments = lambda: _read_ahead(ports.functions, name, deployment, deadline)
    if isinstance(located, Declined):
        _take_redactor(attempt, deadline, needed=False)
        attempt.no_action(_summary(alarm, deployment, f"left alone: {located.reason}"), warn=True)
        return
    bypass = bypass_for(function.entry, deployment.deployment_id, name)
    if bypass is not None:
        attempt.record = replace(attempt.record, bypass=bypass)
        _take_redactor(attempt, deadline)  # NOTE: the bypass's reason is a person's text, from the policy
        attempt.no_action(bypass_reason(bypass, skipped="rollback"))
        return
    executed = alarm.dimensions.get("ExecutedVersion")
    if executed is not None and executed != target.target_version:
        reason = (
            f"the alarm concerns version {executed}, not version {target.target_version} that deployment "
            f"{deployment.deployment_id} shifts to: left alone"
        )
        _take_redactor(attempt, deadline, needed=False)
        attempt.no_action(_summary(alarm, deployment, reason))
        return
    try:
        state = ports.functions.alias(name, target.alias)
    except DeployGuardError as exc:
        _alias_unreadable(attempt, exc, alarm=alarm, deployment=deployment, deadline=deadline)
        return
    shape = alias_shape(state, target)
    stop = deployment.deployment_id if located.in_flight else None
    if shape in (Shape.SHIFTING, Shape.SHIFTED):
        aim = Aim(state=state, plan=Restore(version=target.current_version, leaving=target.target_version))
    elif shape is Shape.RESTORED:
        aim = Aim(
            state=state,
            plan=None,
            left_alone=f"{target.alias} is already on version {target.current_version} alone",
        )
    else:
        stop = None  # NOTE: an operator's newer change: neither the alias nor the deployment is touched
        carries = {state.function_version, *state.additional_version_weights}
        what = (
            f"no longer carries version {target.target_version}"
            if target.target_version not in carries
            else f"no longer has the shape deployment {deployment.deployment_id} gave it"
        )
        left = (
            f"the alias {target.alias} {what} (it is on {describe_alias(state)}): an operator's newer "
            "change, not overwritten"
        )
        logger.warning(
            "alias changed by someone since the deployment; left alone",
            extra={"deployment_id": deployment.deployment_id, "function_name": name, "alias": target.alias},
        )
        aim = Aim(state=state, plan=None, left_alone=left)
    if not acts(function.entry.mode):
        _observe(attempt, alarm, deployment, stop=stop, aim=aim, deadline=deadline)
        return
    done = stop_and_restore(
        ports.codedeploy,
        ports.functions,
        deployment_id=stop,
        aim=aim,
        actions=attempt.actions,
        before=deadline.check,
    )
    if done.alias_changed:
        logger.warning(
            "alias changed since it was read; not overwritten",
            extra={
                "deployment_id": deployment.deployment_id,
                "function_name": name,
                "alias": target.alias,
                "revision_id": state.revision_id,
            },
        )
    if done.restored:
        attempt.record = replace(
            attempt.record, alarm_to_restore_ms=(clock() - alarm.entered_at).total_seconds() * 1000
        )
    # NOTE: a failed step's detail quotes AWS's error message, which may echo a value
    _take_redactor(attempt, deadline, needed=any(not a.ok for a in done.actions))
    attempt.record = replace(attempt.record, reason=_reason(alarm, deployment, done.actions, located))
    attempt.error = done.error


def _observe(
    attempt: _Attempt,
    alarm: VerifiedAlarm,
    deployment: Deployment,
    *,
    stop: str | None,
    aim: Aim,
    deadline: Deadline,
) -> None:
    """Observe mode: record and alert what the rollback would have done, and do nothing."""
    would = [f"stopped deployment {stop}"] if stop else []
    if aim.plan is not None:
        would.append(f"put alias {deployment.target.alias} back on version {aim.plan.version}")
    _take_redactor(attempt, deadline, needed=False)
    if not would:
        attempt.no_action(_summary(alarm, deployment, f"nothing to roll back ({aim.left_alone})"))
        return
    attempt.record = replace(attempt.record, mode="observe", would_have=Decision.FAILED)
    attempt.no_action(
        _summary(alarm, deployment, f"observe mode: would have {' and '.join(would)}; changed nothing")
    )


def _lookup(
    function: GuardedFunction, alarm: VerifiedAlarm, policy: Policy, ports: RollbackPorts, *, clock: Clock
) -> Located | Declined | DeployGuardError | None:
    """The release to undo, None, or why it could not be looked up (reads only)."""
    recent = policy.rollback.recent_minutes
    try:
        return locate_deployment(
            ports.codedeploy,
            function.function_name,
            function.alias,
            function.entry.deployment_group,
            alarm_at=alarm.entered_at,
            recent_since=clock() - timedelta(minutes=recent) if recent else None,
            records=ports.records,
        )
    except DeployGuardError as exc:
        return exc


def _settle(
    found: Located | Declined | DeployGuardError | None,
    name: str,
    alarm: VerifiedAlarm,
    policy: Policy,
    attempt: _Attempt,
) -> Located | Declined | None:
    """The release to undo; None (the attempt says why) when there is none or it could not be looked up."""
    if isinstance(found, DeployGuardError):
        attempt.fail(
            f"{alarm.name} in ALARM, but the deployment of {name} could not be looked up: {found}", found
        )
        return None
    if found is None:
        recent = policy.rollback.recent_minutes
        window = f" nor finished within {recent} minutes" if recent else ""
        attempt.no_action(f"{alarm.name} in ALARM, but no deployment of {name} was in flight{window}")
    return found


def _alias_unreadable(
    attempt: _Attempt,
    exc: DeployGuardError,
    *,
    alarm: VerifiedAlarm,
    deployment: Deployment,
    deadline: Deadline,
) -> None:
    """GetAlias failed: the deployment names both versions, so their environments redact the error
    the record quotes (an AWS message can echo a value)."""
    _take_redactor(attempt, deadline)
    attempt.fail(_summary(alarm, deployment, f"the alias could not be read: {exc}"), exc)


OUT_OF_TIME_NOTE = "out of time before the versions' environments were read"


def _read_ahead(
    functions: LambdaPort, name: str, deployment: Deployment, deadline: Deadline
) -> Future[tuple[Redactor, str | None]] | None:
    """Start reading the environments of both versions (the record's redactor) on a thread of its
    own, while the rollback reads the alias and acts: reads only, so it changes nothing. None when
    the time is already up."""
    if deadline.remaining() == 0.0:
        return None
    versions = [deployment.target.target_version, deployment.target.current_version]
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="alarm-rollback-redactor")
    try:
        return pool.submit(in_context(redactor_for), functions, name, versions)
    finally:
        pool.shutdown(wait=False)


def _take_redactor(attempt: _Attempt, deadline: Deadline, *, needed: bool = True) -> None:
    """The invocation's redactor. ``needed``: the record will quote text DeployGuard did not write
    (an AWS error message, a policy's bypass reason), so both versions' environments are read now
    (formats only, and a note, when they cannot be read or time is up). Otherwise the record holds
    only DeployGuard's own sentences about identifiers (alarm, deployment, version numbers, alias),
    where no environment value can appear: key formats suffice and nothing is read."""
    if not needed:
        attempt.redactor, attempt.note = Redactor(), None
        return
    reading = attempt.read_environments() if attempt.read_environments is not None else None
    try:
        if reading is None:
            raise TimeoutError
        attempt.redactor, attempt.note = reading.result(timeout=deadline.remaining())
    except TimeoutError:
        attempt.redactor, attempt.note = Redactor(), OUT_OF_TIME_NOTE


def _summary(alarm: VerifiedAlarm, deployment: Deployment, text: str) -> str:
    return f"{alarm.name} in ALARM during deployment {deployment.deployment_id}: {text}"


def _reason(alarm: VerifiedAlarm, deployment: Deployment, actions: list[Action], located: Located) -> str:
    done = [
        a for a in actions if a.ok and a.kind in (ActionKind.DEPLOYMENT_STOPPED, ActionKind.ALIAS_RESTORED)
    ]
    failed = [a for a in actions if not a.ok]
    summary = ", ".join(f"{a.kind.value} ({a.detail})" for a in done) or "nothing to roll back"
    if not located.in_flight:
        summary += f" (the deployment {located.why})"
    reason = _summary(alarm, deployment, summary)
    notes = [a.detail for a in actions if a.ok and a.kind is ActionKind.NO_ACTION]
    if notes:
        reason += "; " + "; ".join(notes)
    if failed:
        reason += "; failed: " + "; ".join(f"{a.kind.value}: {a.detail}" for a in failed)
    return reason


def _write(attempt: _Attempt, claim: AlarmStateChange, *, alerts: AlertPublisher | None) -> OutcomeRecord:
    """Write one attempt's record with its redactor (formats only, and a note, without one)."""
    redactor = attempt.redactor or Redactor()
    record = replace(attempt.record, actions=list(attempt.actions))
    if not record.reason:
        record = replace(record, reason="; ".join(a.detail for a in record.actions))
    if attempt.error is not None and not isinstance(attempt.error, DeployGuardError):
        crash = RedactedError(attempt.error, redactor)
        logger.error(
            "alarm rollback crashed",
            extra={
                "alarm_name": claim.alarm_name,
                "error": str(crash)[:ERROR_MAX],
                "traceback": crash.traceback,
            },
        )
        record = replace(record, reason=f"{record.reason}: {crash}")
    if attempt.note:
        record = replace(record, reason=f"{record.reason} ({attempt.note})")
    elif attempt.redactor is None and record.deployment_id:
        note = "the versions' environments were not read: text redacted by key formats only"
        record = replace(record, reason=f"{record.reason} ({note})")
    if attempt.warn is not None:
        logger.warning(
            "alarm rollback: no action",
            extra={"alarm_name": claim.alarm_name, "reason": redactor.clip(attempt.warn, ERROR_MAX)},
        )
    return finish_record(record, redactor, alerts=alerts)


def record_unrun(failure: Evaluation, *, stage: str | None) -> OutcomeRecord:
    """The record of an alarm rollback that could not run at all (invalid settings): no alarm and
    no deployment known, only why."""
    record = OutcomeRecord(role=Role.ALARM_ROLLBACK, stage=stage, checks=failure.checks)
    action = Action(kind=ActionKind.NO_ACTION, ok=False, detail=failure.reason)
    return finish_record(replace(record, reason=failure.reason, actions=[action]))
