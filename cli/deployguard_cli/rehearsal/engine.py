"""CodeDeploy's part in a Lambda deployment, played against moto on the virtual clock.

:class:`CodeDeployEngine` runs one deployment through a Lambda deployment's lifecycle: the
BeforeAllowTraffic hook (invoked asynchronously with only ``DeploymentId`` and
``LifecycleEventHookExecutionId``, awaited until it reports, for at most an hour), AllowTraffic by
the deployment config, the AfterAllowTraffic hook. Once a minute, alarms are evaluated (their state
changes go to the EventBridge rules), traffic flows and CodeDeploy polls the group's alarms. A
failure ends it ``Failed`` or ``Stopped``; per ``autoRollbackConfiguration`` a rollback deployment
puts the alias back. Every step is an :class:`EngineEvent`; the result a :class:`DeploymentOutcome`.
What it plays, step by step: docs/rehearsal.md; where it approximates CodeDeploy: docs/fidelity.md.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal, Protocol

from botocore.exceptions import BotoCoreError, ClientError

from deployguard.appspec import DeploymentTarget, lower_keys, parse_appspec, render_appspec, revision_content
from deployguard.documents import DocumentSyntaxError, parse_json_or_yaml
from deployguard.errors import DeployGuardError
from deployguard_cli.localaws import moto_codedeploy
from deployguard_cli.localaws.lambda_names import qualified_function_name
from deployguard_cli.rehearsal.alarms import AlarmEvaluator
from deployguard_cli.rehearsal.clock import Scheduler, floor_to, human_duration
from deployguard_cli.rehearsal.wiring import Rule

if TYPE_CHECKING:
    from mypy_boto3_cloudwatch import CloudWatchClient
    from mypy_boto3_codedeploy import CodeDeployClient
    from mypy_boto3_lambda import LambdaClient

    from deployguard_cli.localaws.moto_stepfunctions import Router
    from deployguard_cli.rehearsal.traffic import MinuteOfTraffic, Traffic

__all__ = [
    "HOOK_DEADLINE",
    "CodeDeployEngine",
    "DeploymentOutcome",
    "EngineEvent",
    "TrafficStep",
    "traffic_schedule",
]

HOOK_DEADLINE = timedelta(hours=1)
"""A hook must report within an hour of its lifecycle event's start, or the deployment fails."""
ASYNC_RETRY_DELAYS = (timedelta(minutes=1), timedelta(minutes=2))
"""Lambda retries a failed asynchronous invocation after about one, then two minutes."""
TICK = timedelta(minutes=1)
ALL_AT_ONCE = "CodeDeployDefault.LambdaAllAtOnce"

_CANARY = re.compile(r"^CodeDeployDefault\.LambdaCanary(\d+)Percent(\d+)Minutes?$")
_LINEAR = re.compile(r"^CodeDeployDefault\.LambdaLinear(\d+)PercentEvery(\d+)Minutes?$")
_ROLLBACK_EVENT = {
    "hook_failed": "DEPLOYMENT_FAILURE",
    "hook_timed_out": "DEPLOYMENT_FAILURE",
    "alarm": "DEPLOYMENT_STOP_ON_ALARM",
    "stopped": "DEPLOYMENT_STOP_ON_REQUEST",
}

EventKind = Literal[
    "deployment", "hook", "shift", "traffic", "alarm", "event", "workflow", "rollback", "decision"
]
FailureKind = Literal["hook_failed", "hook_timed_out", "alarm", "stopped"]


class EngineError(DeployGuardError):
    code = "REHEARSAL"


@dataclass(frozen=True)
class TrafficStep:
    """At ``offset`` after AllowTraffic starts, the target version gets ``weight`` of the traffic."""

    offset: timedelta
    weight: float


def traffic_schedule(deployment_config_name: str) -> tuple[TrafficStep, ...]:
    """CodeDeploy's predefined Lambda configs: the weight of the target version over time."""
    if deployment_config_name == ALL_AT_ONCE:
        return (TrafficStep(timedelta(0), 1.0),)
    if match := _CANARY.match(deployment_config_name):
        percent, minutes = int(match.group(1)), int(match.group(2))
        return (TrafficStep(timedelta(0), percent / 100), TrafficStep(timedelta(minutes=minutes), 1.0))
    if match := _LINEAR.match(deployment_config_name):  # the percentage comes at the start of each increment
        percent, minutes = int(match.group(1)), int(match.group(2))
        return tuple(
            TrafficStep(timedelta(minutes=minutes * k), min(percent * (k + 1), 100) / 100)
            for k in range(math.ceil(100 / percent))
        )
    raise EngineError(
        f"deployment config {deployment_config_name!r} is not one of CodeDeploy's predefined Lambda "
        "configs (CodeDeployDefault.LambdaCanary10Percent5Minutes, …Linear10PercentEvery1Minute, …AllAtOnce)"
    )


@dataclass(frozen=True)
class EngineEvent:
    at: datetime
    kind: EventKind
    message: str
    detail: dict[str, Any] = field(default_factory=dict)


class Invocation(Protocol):
    """An asynchronous invocation in flight."""

    def wait(self, timeout: float | None = None) -> bool: ...

    @property
    def error(self) -> str | None: ...  # the function error's type once done; None if it succeeded


class Invoker(Protocol):
    """Lambda's asynchronous Invoke, for the functions the engine calls (hooks, rule targets)."""

    def knows(self, function_name: str) -> bool: ...

    def invoke_async(self, function_name: str, event: Mapping[str, Any]) -> Invocation: ...

    def max_retry_attempts(self, function_name: str) -> int: ...


@dataclass(frozen=True)
class _Failure:
    kind: FailureKind
    message: str
    lifecycle_event: str | None = None
    auto_rollback: bool | None = None  # StopDeployment's autoRollbackEnabled, when it said


@dataclass(frozen=True)
class _Deployment:
    deployment_id: str
    application: str
    group: str
    config: str
    target: DeploymentTarget
    hooks: dict[str, str]
    alarm_names: list[str]
    alarms_enabled: bool
    ignore_poll_alarm_failure: bool
    rollback_events: frozenset[str]


@dataclass
class DeploymentOutcome:
    deployment_id: str
    status: str  # Succeeded | Failed | Stopped
    function_name: str
    alias: str
    current_version: str
    target_version: str
    deployment_config: str
    reason: str
    failure: FailureKind | None
    failed_lifecycle_event: str | None
    max_weight: float
    alias_version: str  # where the alias points at the end
    alias_weights: dict[str, float]
    rolled_back: bool
    rollback_deployment_id: str | None
    stopped_by: str | None
    hook_status: dict[str, str]
    alarm_states: dict[str, str]
    started_at: datetime
    ended_at: datetime
    events: list[EngineEvent]
    traffic: list[MinuteOfTraffic] = field(default_factory=list)

    @property
    def virtual_duration(self) -> timedelta:
        return self.ended_at - self.started_at


def appspec_hooks(content: str) -> dict[str, str]:
    """The AppSpec's ``Hooks``: lifecycle event → function (a list of one-key mappings, any case)."""
    try:
        document = lower_keys(parse_json_or_yaml(content))
    except DocumentSyntaxError as exc:
        raise EngineError(f"AppSpec content is neither JSON nor YAML ({exc})") from exc
    names = {"beforeallowtraffic": "BeforeAllowTraffic", "afterallowtraffic": "AfterAllowTraffic"}
    entries = document.get("hooks") if isinstance(document, dict) else None
    if isinstance(entries, dict):
        entries = [entries]
    hooks: dict[str, str] = {}
    for entry in entries or []:
        for key, function in (entry or {}).items():
            if key in names and function:
                hooks[names[key]] = qualified_function_name(str(function))
    return hooks


class CodeDeployEngine:
    """Runs one deployment to its end; see the module docstring for what it plays."""

    def __init__(
        self,
        *,
        scheduler: Scheduler,
        codedeploy: CodeDeployClient,
        lambda_client: LambdaClient,
        cloudwatch: CloudWatchClient,
        invoker: Invoker,
        alarms: AlarmEvaluator | None = None,
        rules: Sequence[Rule] = (),
        traffic: Traffic | None = None,
        workflows: Router | None = None,
        observer: Callable[[EngineEvent], None] | None = None,
        invocation_timeout_seconds: float = 900.0,
    ) -> None:
        self._scheduler = scheduler
        self._clock = scheduler.clock
        self._codedeploy = codedeploy
        self._lambda = lambda_client
        self._cloudwatch = cloudwatch
        self._invoker = invoker
        self._alarms = alarms
        self._rules = [(rule, rule.event_pattern()) for rule in rules]
        self._traffic = traffic
        self._workflows = workflows
        self._observer = observer
        self._invocation_timeout = invocation_timeout_seconds  # Lambda's limit, in real seconds
        self._events: list[EngineEvent] = []
        self._failure: _Failure | None = None
        self._traffic_on = False
        self._max_weight = 0.0
        self._last_actor: str | None = None
        self._hook_status: dict[str, str] = {}
        self._alarm_states: dict[str, str] = {}
        self._minutes: list[MinuteOfTraffic] = []
        self._d: _Deployment  # set by run()
        self._rollback_id: str | None = None

    # --- the deployment -------------------------------------------------------------------------
    def run(self, deployment_id: str) -> DeploymentOutcome:
        started_at = self._clock.now()
        d = self._d = self._load(deployment_id)
        steps = traffic_schedule(d.config)
        self._emit(
            "deployment",
            f"deployment {d.deployment_id} started: {d.target.function_name}:{d.target.alias} "
            f"version {d.target.current_version} → {d.target.target_version}, {d.config.removeprefix('CodeDeployDefault.')}",
        )
        moto_codedeploy.set_deployment_status(d.deployment_id, "InProgress")
        self._scheduler.at(floor_to(self._clock.now(), 60) + TICK, "tick", self._tick)
        try:
            succeeded = (
                self._hook("BeforeAllowTraffic")
                and self._allow_traffic(steps)
                and self._hook("AfterAllowTraffic")
            )
            if succeeded:
                moto_codedeploy.set_deployment_status(d.deployment_id, "Succeeded")
                self._emit(
                    "decision",
                    f"deployment {d.deployment_id} Succeeded: 100% on version {d.target.target_version}",
                )
            else:
                self._roll_back()
        finally:
            self._scheduler.cancel("tick")  # the minute tick ends with the deployment
        self._drain_workflows()
        return self._outcome(started_at)

    def _load(self, deployment_id: str) -> _Deployment:
        info = self._codedeploy.get_deployment(deploymentId=deployment_id)["deploymentInfo"]
        application, group = info["applicationName"], info["deploymentGroupName"]
        revision = dict(info.get("revision", {}))
        answer = self._codedeploy.get_application_revision(applicationName=application, revision=revision)  # type: ignore[arg-type]
        content = revision_content(dict(answer["revision"]))
        if content is None:
            raise EngineError(
                f"deployment {deployment_id} has no inline AppSpec (AppSpecContent or String revision)"
            )
        group_info = self._codedeploy.get_deployment_group(
            applicationName=application, deploymentGroupName=group
        )["deploymentGroupInfo"]
        alarm_config: dict[str, Any] = dict(group_info.get("alarmConfiguration") or {})
        rollback: dict[str, Any] = dict(group_info.get("autoRollbackConfiguration") or {})
        return _Deployment(
            deployment_id=deployment_id,
            application=application,
            group=group,
            config=str(info.get("deploymentConfigName") or ALL_AT_ONCE),
            target=parse_appspec(content),
            hooks=appspec_hooks(content),
            alarm_names=[str(a["name"]) for a in alarm_config.get("alarms", []) if a.get("name")],
            alarms_enabled=bool(alarm_config.get("enabled")),
            ignore_poll_alarm_failure=bool(alarm_config.get("ignorePollAlarmFailure")),
            rollback_events=frozenset(rollback.get("events", [])) if rollback.get("enabled") else frozenset(),
        )

    def _over(self) -> bool:
        if self._failure is None:
            self._observe_stop()
        return self._failure is not None

    # --- hooks ----------------------------------------------------------------------------------
    def _hook(self, lifecycle_event: str) -> bool:
        d = self._d
        function = d.hooks.get(lifecycle_event)
        if not function:
            moto_codedeploy.set_lifecycle_event_status(d.deployment_id, lifecycle_event, "Skipped")
            self._hook_status[lifecycle_event] = "Skipped"
            self._emit("hook", f"{lifecycle_event}: no hook in the AppSpec, skipped")
            return not self._over()
        execution_id = moto_codedeploy.start_lifecycle_event(d.deployment_id, lifecycle_event)
        payload = {"DeploymentId": d.deployment_id, "LifecycleEventHookExecutionId": execution_id}
        started = self._clock.now()
        deadline = started + HOOK_DEADLINE
        self._emit(
            "hook",
            f"{lifecycle_event}: invoked {function} asynchronously; it has until "
            f"{deadline:%H:%M:%S} to report",
        )
        self._invoke(function, payload, lifecycle_event)
        try:
            while (status := self._reported(execution_id)) is None:
                if self._over() or self._clock.now() >= deadline:  # stopped (that stands) or timed out
                    moto_codedeploy.set_lifecycle_event_status(d.deployment_id, lifecycle_event, "Failed")
                    self._hook_status[lifecycle_event] = "Failed"
                    self._fail(
                        "hook_timed_out",
                        f"the {lifecycle_event} hook {function} did not report within {human_duration(HOOK_DEADLINE.total_seconds())}",
                        lifecycle_event,
                        at=deadline,
                    )
                    return False
                self._scheduler.run_until(
                    deadline, stop=lambda: self._over() or self._reported(execution_id) is not None
                )
        finally:
            self._scheduler.cancel(f"retry {function}")  # Lambda's retries end with the lifecycle event
        return self._hook_reported(lifecycle_event, function, status, started)

    def _invoke(
        self, function: str, event: Mapping[str, Any], lifecycle_event: str | None = None, attempt: int = 0
    ) -> None:
        """Lambda's asynchronous Invoke of a hook (for ``lifecycle_event``) or a rule's target, run to
        its end (real time passes, the clock with it). A function error, or a run past Lambda's limit
        (``Sandbox.Timedout``: its thread is abandoned, as Lambda would end the execution
        environment), is retried after one, then two minutes, up to ``MaximumRetryAttempts``."""
        if not self._invoker.knows(function):
            self._emit("hook", f"{function} has no handler here: nothing answers the invocation")
            return
        self._last_actor = function
        call = self._invoker.invoke_async(function, event)
        error = call.error if call.wait(self._invocation_timeout) else "Sandbox.Timedout"
        self._discover_workflows()
        if error is None and lifecycle_event is None:
            self._emit("event", f"{function} handled the event")
            self._observe_stop()
        if error is None:
            return
        kind: EventKind = "event" if lifecycle_event is None else "hook"
        failed = f"{lifecycle_event + ': ' if lifecycle_event else ''}{function} failed ({error})"
        if attempt < self._invoker.max_retry_attempts(function):
            at = self._clock.now() + ASYNC_RETRY_DELAYS[min(attempt, len(ASYNC_RETRY_DELAYS) - 1)]
            self._emit(kind, f"{failed}; Lambda retries it at {at:%H:%M:%S}")
            self._scheduler.at(
                at, f"retry {function}", lambda _: self._invoke(function, event, lifecycle_event, attempt + 1)
            )
        else:
            waits = "; CodeDeploy waits for the deadline" if lifecycle_event else ""
            self._emit(kind, f"{failed}; Lambda gave up retrying{waits}")

    def _reported(self, execution_id: str) -> str | None:
        for report in moto_codedeploy.hook_reports(self._d.deployment_id):
            if report.lifecycle_event_hook_execution_id == execution_id:
                return report.status
        return None

    def _hook_reported(self, lifecycle_event: str, function: str, status: str, started: datetime) -> bool:
        took = (self._clock.now() - started).total_seconds()
        self._hook_status[lifecycle_event] = status
        self._emit("hook", f"{lifecycle_event}: {function} reported {status} after {human_duration(took)}")
        if status == "Succeeded":
            return True
        self._fail("hook_failed", f"the {lifecycle_event} hook {function} reported Failed", lifecycle_event)
        return False

    # --- traffic ----------------------------------------------------------------------------------
    def _allow_traffic(self, steps: Sequence[TrafficStep]) -> bool:
        d = self._d
        moto_codedeploy.set_lifecycle_event_status(d.deployment_id, "AllowTraffic", "InProgress")
        start = self._clock.now()
        self._traffic_on = True
        for step in steps:
            self._scheduler.run_until(start + step.offset, stop=self._over)
            if self._over():
                moto_codedeploy.set_lifecycle_event_status(d.deployment_id, "AllowTraffic", "Failed")
                return False
            self._shift(step.weight, start + step.offset)
        moto_codedeploy.set_lifecycle_event_status(d.deployment_id, "AllowTraffic", "Succeeded")
        return True

    def _shift(self, weight: float, at: datetime) -> None:
        d = self._d
        t = d.target
        if weight >= 1.0:  # all of it: FunctionVersion becomes the target, the routing is cleared
            self._route(t.target_version, {})
        else:
            self._route(t.current_version, {t.target_version: weight})
        moto_codedeploy.set_target_version_weight(d.deployment_id, weight)
        self._max_weight = max(self._max_weight, weight)
        self._emit(
            "shift",
            f"traffic shifted: {weight:.0%} to version {t.target_version}, {1 - weight:.0%} to version {t.current_version}",
            at=at,
            weight=weight,
        )

    # --- the minute tick --------------------------------------------------------------------------
    def _tick(self, when: datetime) -> None:
        self._scheduler.at(when + TICK, "tick", self._tick)
        if self._alarms is not None:
            for change in self._alarms.evaluate(when):
                self._alarm_states[change.alarm_name] = change.state
                self._emit(
                    "alarm",
                    f"alarm {change.alarm_name}: {change.previous} → {change.state} ({change.reason})",
                    at=when,
                    state=change.state,
                )
                self._publish(change.event)
        if not self._over():  # a StopDeployment by anyone is seen here too
            self._poll_alarms(when)
        if self._traffic_on and not self._over() and self._traffic is not None:
            minute = self._traffic.run(when)
            self._minutes.append(minute)
            self._emit("traffic", _traffic_line(minute), at=when)
        self._discover_workflows()

    def _poll_alarms(self, when: datetime) -> None:
        d = self._d
        if not (d.alarms_enabled and d.alarm_names):
            return
        try:  # without AlarmTypes DescribeAlarms answers metric alarms only
            answer = self._cloudwatch.describe_alarms(
                AlarmNames=d.alarm_names, AlarmTypes=["MetricAlarm", "CompositeAlarm"]
            )
        except (ClientError, BotoCoreError) as exc:
            reason = exc.response["Error"]["Code"] if isinstance(exc, ClientError) else type(exc).__name__
            if d.ignore_poll_alarm_failure:
                self._emit(
                    "alarm",
                    f"CodeDeploy could not read the alarms ({reason}); ignorePollAlarmFailure: it goes on",
                    at=when,
                )
                return
            self._stop_on_alarm(
                f"CodeDeploy could not read the alarms ({reason}) and ignorePollAlarmFailure is false",
                [],
                when,
            )
            return
        alarms = [*answer.get("MetricAlarms", []), *answer.get("CompositeAlarms", [])]
        firing = sorted(a["AlarmName"] for a in alarms if a.get("StateValue") == "ALARM")
        if firing:
            self._stop_on_alarm(f"CodeDeploy's alarm poll found {', '.join(firing)} in ALARM", firing, when)

    def _stop_on_alarm(self, message: str, firing: list[str], when: datetime) -> None:
        d = self._d
        moto_codedeploy.set_deployment_status(d.deployment_id, "Stopped")
        moto_codedeploy.set_error_information(
            d.deployment_id,
            "ALARM_ACTIVE",
            "One or more alarms have been activated according to the Amazon CloudWatch metrics you "
            "selected, and the affected deployments have been stopped. Activated alarms: "
            + (" ".join(f"<{name}>" for name in firing) or "(the alarms could not be read)"),
        )
        self._last_actor = "CodeDeploy (alarm poll)"
        self._fail("alarm", message, None, at=when)

    def _observe_stop(self) -> None:
        """A StopDeployment by anyone (the alarm rollback function, an operator) ends the deployment."""
        d = self._d
        requests = moto_codedeploy.stop_requests(d.deployment_id)  # accepted StopDeployment calls
        if self._failure is not None or not requests:
            return
        asked = requests[-1].auto_rollback_enabled
        by = self._last_actor or "StopDeployment"
        self._fail(
            "stopped",
            f"deployment stopped by {by} (StopDeployment, autoRollbackEnabled={asked})",
            None,
            auto_rollback=asked,
        )

    def _publish(self, event: Mapping[str, Any]) -> None:
        """EventBridge: every rule whose pattern matches invokes its function asynchronously."""
        for rule, pattern in self._rules:
            if not pattern.matches_event(dict(event)):  # type: ignore[arg-type]
                continue
            self._emit("event", f"EventBridge rule {rule.name} matched: invoking {rule.function_name}")
            self._invoke(rule.function_name, dict(event))

    def _discover_workflows(self) -> None:
        if self._workflows is not None:
            for execution in self._workflows.discover():
                self._emit("workflow", f"Step Functions execution {execution.name} started")

    def _drain_workflows(self) -> None:
        """Let running workflows play out after the deployment ended (they find it over and stop)."""
        if self._workflows is None:
            return
        limit = self._clock.now() + HOOK_DEADLINE
        while self._workflows.running and (due := self._scheduler.next_time()) is not None and due <= limit:
            self._scheduler.run_until(due)

    # --- failure and rollback -------------------------------------------------------------------
    def _fail(
        self,
        kind: FailureKind,
        message: str,
        lifecycle_event: str | None,
        *,
        at: datetime | None = None,
        auto_rollback: bool | None = None,
    ) -> None:
        if self._failure is not None:
            return
        self._failure = _Failure(
            kind=kind, message=message, lifecycle_event=lifecycle_event, auto_rollback=auto_rollback
        )
        self._emit("decision", message, at=at, failure=kind)

    def _roll_back(self) -> None:
        d = self._d
        failure = self._failure
        if failure is None:
            raise EngineError("rollback without a failure")
        terminal = "Failed" if failure.kind in ("hook_failed", "hook_timed_out") else "Stopped"
        status = self._codedeploy.get_deployment(deploymentId=d.deployment_id)["deploymentInfo"].get("status")
        if status not in ("Failed", "Stopped", "Succeeded"):
            moto_codedeploy.set_deployment_status(d.deployment_id, terminal)
        # the hooks' statuses (AllowTraffic is no hook): one that never ran was skipped
        for lifecycle_event in ("BeforeAllowTraffic", "AfterAllowTraffic"):
            if lifecycle_event != failure.lifecycle_event:
                self._hook_status.setdefault(lifecycle_event, "Skipped")
        wanted = (
            failure.auto_rollback
            if failure.auto_rollback is not None
            else _ROLLBACK_EVENT[failure.kind] in d.rollback_events
        )
        self._emit("decision", f"deployment {d.deployment_id} {terminal} ({_ROLLBACK_EVENT[failure.kind]})")
        if not wanted:
            self._emit(
                "rollback",
                f"automatic rollback is not enabled for {_ROLLBACK_EVENT[failure.kind]}: the alias is left as it is",
            )
            return
        t = d.target
        if self._alias() == (t.current_version, {}):
            restored_by = (
                f" (restored by {self._last_actor})" if self._max_weight and self._last_actor else ""
            )
            self._emit(
                "rollback",
                f"alias {t.alias} stays on version {t.current_version} with no routing{restored_by}",
            )
        else:
            self._route(t.current_version, {})
            self._emit("rollback", f"alias {t.alias} back on version {t.current_version}, routing cleared")
        self._rollback_id = self._rollback_deployment()
        moto_codedeploy.record_rollback(d.deployment_id, self._rollback_id)
        self._emit(
            "rollback",
            f"rollback deployment {self._rollback_id} (AllAtOnce back to version {t.current_version}) Succeeded",
        )

    def _rollback_deployment(self) -> str:
        """CodeDeploy's rollback is a deployment of its own: the previous version, all at once."""
        d = self._d
        t = d.target
        content = render_appspec(
            replace(t, current_version=t.target_version, target_version=t.current_version)
        )
        rollback_id = self._codedeploy.create_deployment(
            applicationName=d.application,
            deploymentGroupName=d.group,
            deploymentConfigName=ALL_AT_ONCE,
            description=f"Rollback of {d.deployment_id}",
            revision={"revisionType": "AppSpecContent", "appSpecContent": {"content": content}},
        )["deploymentId"]
        moto_codedeploy.set_deployment_status(rollback_id, "InProgress")
        for lifecycle_event, status in (
            ("BeforeAllowTraffic", "Skipped"),
            ("AllowTraffic", "Succeeded"),
            ("AfterAllowTraffic", "Skipped"),
        ):
            moto_codedeploy.set_lifecycle_event_status(rollback_id, lifecycle_event, status)
        moto_codedeploy.set_target_version_weight(rollback_id, 1.0)
        moto_codedeploy.set_deployment_status(rollback_id, "Succeeded")
        return str(rollback_id)

    # --- the result -------------------------------------------------------------------------------
    def _outcome(self, started_at: datetime) -> DeploymentOutcome:
        d = self._d
        t = d.target
        info = self._codedeploy.get_deployment(deploymentId=d.deployment_id)["deploymentInfo"]
        alias_version, alias_weights = self._alias()
        failure = self._failure
        stopped_by = None
        if failure is not None and failure.kind in ("stopped", "alarm"):
            stopped_by = self._last_actor if failure.kind == "stopped" else "CodeDeploy (alarm poll)"
        return DeploymentOutcome(
            deployment_id=d.deployment_id,
            status=str(info.get("status")),
            function_name=t.function_name,
            alias=t.alias,
            current_version=t.current_version,
            target_version=t.target_version,
            deployment_config=d.config,
            reason=failure.message if failure else f"100% on version {t.target_version}",
            failure=failure.kind if failure else None,
            failed_lifecycle_event=failure.lifecycle_event if failure else None,
            max_weight=self._max_weight,
            alias_version=alias_version,
            alias_weights=alias_weights,
            rolled_back=self._rollback_id is not None,
            rollback_deployment_id=self._rollback_id,
            stopped_by=stopped_by,
            hook_status=dict(self._hook_status),
            alarm_states=dict(self._alarm_states),
            started_at=started_at,
            ended_at=self._clock.now(),
            events=list(self._events),
            traffic=list(self._minutes),
        )

    def _alias(self) -> tuple[str, dict[str, float]]:
        """Where the alias points: its version and its additional versions' weights."""
        t = self._d.target
        alias = self._lambda.get_alias(FunctionName=t.function_name, Name=t.alias)
        weights = (alias.get("RoutingConfig") or {}).get("AdditionalVersionWeights") or {}
        return str(alias["FunctionVersion"]), {str(k): float(v) for k, v in weights.items()}

    def _route(self, version: str, weights: dict[str, float]) -> None:
        t = self._d.target
        self._lambda.update_alias(
            FunctionName=t.function_name,
            Name=t.alias,
            FunctionVersion=version,
            RoutingConfig={"AdditionalVersionWeights": weights},
        )

    def _emit(self, kind: EventKind, message: str, *, at: datetime | None = None, **detail: Any) -> None:
        event = EngineEvent(at=at or self._clock.now(), kind=kind, message=message, detail=detail)
        self._events.append(event)
        if self._observer is not None:
            self._observer(event)


def _traffic_line(minute: MinuteOfTraffic) -> str:
    parts = []
    for version, stats in sorted(minute.by_version.items()):
        errors = f", {stats.errors} error(s)" if stats.errors else ""
        parts.append(f"version {version}: {stats.invocations}{errors}")
    return f"traffic {minute.start:%H:%M}-{minute.start + TICK:%H:%M}: {minute.invocations} requests ({'; '.join(parts)})"
