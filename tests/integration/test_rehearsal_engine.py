"""The rehearsal engine plays CodeDeploy's part in a Lambda deployment as AWS's CodeDeploy
documentation describes its lifecycle: BeforeAllowTraffic, AllowTraffic, AfterAllowTraffic.

GIVEN a Lambda function with two versions behind an alias and a CodeDeploy deployment between
them (moto, with DeployGuard's CodeDeploy extension), WHEN the engine runs it with hooks that
behave in a given way, THEN the traffic moves, the hooks are awaited, and failures roll back as
CodeDeploy would. Hooks here are small fakes that report through the real CodeDeploy API; the
end-to-end tier (tests/e2e/test_rehearsal.py) runs the real handlers.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import boto3
import pytest

from deployguard_cli.rehearsal.alarms import AlarmEvaluator, evaluate_expression
from deployguard_cli.rehearsal.clock import Scheduler, VirtualClock, human_duration
from deployguard_cli.rehearsal.engine import (
    HOOK_DEADLINE,
    CodeDeployEngine,
    EngineError,
    EngineEvent,
    appspec_hooks,
    traffic_schedule,
)
from deployguard_cli.rehearsal.wiring import Rule, load_template, read_wiring
from tests.support.aws import Version, deployment_group, function_with_versions, put_metric_alarm

if TYPE_CHECKING:
    from mypy_boto3_cloudwatch import CloudWatchClient

ROOT = Path(__file__).resolve().parents[2]
REGION = "us-east-1"
FUNCTION = "deployguard-test-orders"
ALIAS = "live"
PRE, POST = "CodeDeployHook_test-pre-traffic", "CodeDeployHook_test-post-traffic"
ALARM = "deployguard-test-orders-new-version-errors"
ALL_ROLLBACK_EVENTS = ["DEPLOYMENT_FAILURE", "DEPLOYMENT_STOP_ON_ALARM", "DEPLOYMENT_STOP_ON_REQUEST"]


def minutes(n: float) -> timedelta:
    return timedelta(minutes=n)


def new_version_errors(cloudwatch: CloudWatchClient, count: int) -> Callable[[datetime], None]:
    """A scheduler action: version 2's ``Errors`` at the time it runs, as Lambda publishes them."""

    def publish(at: datetime) -> None:
        cloudwatch.put_metric_data(
            Namespace="AWS/Lambda",
            MetricData=[
                {
                    "MetricName": "Errors",
                    "Dimensions": [
                        {"Name": "FunctionName", "Value": FUNCTION},
                        {"Name": "ExecutedVersion", "Value": "2"},
                    ],
                    "Timestamp": at,
                    "Value": count,
                }
            ],
        )

    return publish


# --- the exact schedules ------------------------------------------------------------------------
EXPECTED_SCHEDULES = {
    "AllAtOnce": [(minutes(0), 1.0)],
    **{f"Canary10Percent{n}Minutes": [(minutes(0), 0.1), (minutes(n), 1.0)] for n in (5, 10, 15, 30)},
    **{
        f"Linear10PercentEvery{n}Minute{'s' if n > 1 else ''}": [
            (minutes(n * k), round((k + 1) / 10, 1)) for k in range(10)
        ]
        for n in (1, 2, 3, 10)
    },
}


@pytest.mark.parametrize(("config", "expected"), sorted(EXPECTED_SCHEDULES.items()))
def test_each_predefined_config_has_codedeploys_exact_schedule(
    config: str, expected: list[tuple[timedelta, float]]
) -> None:
    steps = traffic_schedule(f"CodeDeployDefault.Lambda{config}")

    assert [(s.offset, round(s.weight, 4)) for s in steps] == expected


def test_every_deployment_type_the_template_allows_has_a_schedule() -> None:
    allowed = load_template(ROOT / "template.yaml")["Parameters"]["DeploymentType"]["AllowedValues"]

    assert sorted(allowed) == sorted(EXPECTED_SCHEDULES)


def test_an_unknown_config_is_an_error_that_names_the_known_ones() -> None:
    with pytest.raises(EngineError, match="predefined Lambda configs"):
        traffic_schedule("CodeDeployDefault.OneAtATime")


# --- a deployment on moto -----------------------------------------------------------------------
@dataclass
class FakeCall:
    thread: threading.Thread
    raised: str | None = None
    done: threading.Event = field(default_factory=threading.Event)

    def wait(self, timeout: float | None = None) -> bool:
        return self.done.wait(timeout)

    @property
    def error(self) -> str | None:
        return self.raised if self.done.is_set() else None


Behaviour = Callable[[Mapping[str, Any]], None]


class FakeLambda:
    """Asynchronous Invoke of fake functions: each runs its behaviour on a thread."""

    def __init__(self, behaviours: Mapping[str, Behaviour]) -> None:
        self.behaviours = dict(behaviours)
        self.invoked: list[tuple[str, dict[str, Any]]] = []

    def knows(self, function_name: str) -> bool:
        return function_name in self.behaviours

    def max_retry_attempts(self, function_name: str) -> int:
        return 2

    def invoke_async(self, function_name: str, event: Mapping[str, Any]) -> FakeCall:
        self.invoked.append((function_name, dict(event)))
        call = FakeCall(thread=threading.Thread(daemon=True))

        def run() -> None:
            try:
                self.behaviours[function_name](event)
            except Exception as exc:
                call.raised = type(exc).__name__
            finally:
                call.done.set()

        call.thread = threading.Thread(target=run, daemon=True)
        call.thread.start()
        return call


def report(status: str) -> Behaviour:
    def behave(event: Mapping[str, Any]) -> None:
        boto3.client("codedeploy", region_name=REGION).put_lifecycle_event_hook_execution_status(
            deploymentId=event["DeploymentId"],
            lifecycleEventHookExecutionId=event["LifecycleEventHookExecutionId"],
            status=status,  # type: ignore[arg-type]
        )

    return behave


def never_reports(event: Mapping[str, Any]) -> None:
    """A hook that returns without reporting (a bug, or a lost invocation)."""


@dataclass
class Stage:
    """A function with versions 1 (live) and 2, and a deployment group, on moto."""

    scheduler: Scheduler
    events: list[EngineEvent] = field(default_factory=list)
    group: tuple[str, str] = ("deployguard-test-app", "deployguard-test-group")

    @property
    def clock(self) -> VirtualClock:
        return self.scheduler.clock

    def deployment(
        self, config: str = "Canary10Percent5Minutes", *, hooks: Mapping[str, str] | None = None
    ) -> str:
        codedeploy = boto3.client("codedeploy", region_name=REGION)
        appspec = {
            "version": 0.0,
            "Resources": [
                {
                    FUNCTION: {
                        "Type": "AWS::Lambda::Function",
                        "Properties": {
                            "Name": FUNCTION,
                            "Alias": ALIAS,
                            "CurrentVersion": "1",
                            "TargetVersion": "2",
                        },
                    }
                }
            ],
            "Hooks": [{event: function} for event, function in (hooks or {}).items()],
        }
        application, group = self.group
        return codedeploy.create_deployment(
            applicationName=application,
            deploymentGroupName=group,
            deploymentConfigName=f"CodeDeployDefault.Lambda{config}",
            revision={"revisionType": "AppSpecContent", "appSpecContent": {"content": json.dumps(appspec)}},
        )["deploymentId"]

    def engine(self, invoker: FakeLambda, **kwargs: Any) -> CodeDeployEngine:
        return CodeDeployEngine(
            scheduler=self.scheduler,
            codedeploy=boto3.client("codedeploy", region_name=REGION),
            lambda_client=boto3.client("lambda", region_name=REGION),
            cloudwatch=boto3.client("cloudwatch", region_name=REGION),
            invoker=invoker,
            observer=self.events.append,
            **kwargs,
        )

    def alias(self) -> tuple[str, dict[str, float]]:
        alias = boto3.client("lambda", region_name=REGION).get_alias(FunctionName=FUNCTION, Name=ALIAS)
        weights = (alias.get("RoutingConfig") or {}).get("AdditionalVersionWeights") or {}
        return str(alias["FunctionVersion"]), {k: float(v) for k, v in weights.items()}

    def shifts(self) -> list[tuple[datetime, float]]:
        return [(e.at, float(e.detail["weight"])) for e in self.events if e.kind == "shift"]


def _make_stage(rollback_events: list[str]) -> Stage:
    handler = Version("def handler(event, context):\n    return {'ok': True}\n")
    role = function_with_versions(FUNCTION, [handler, replace(handler, description="release 2")], alias=ALIAS)
    put_metric_alarm(
        ALARM,
        dimensions={"FunctionName": FUNCTION, "ExecutedVersion": "2"},
        treat_missing_data="notBreaching",
    )
    stage = Stage(scheduler=Scheduler(VirtualClock()))
    application, group = stage.group
    deployment_group(
        application,
        group,
        serviceRoleArn=role,
        alarmConfiguration={"enabled": True, "alarms": [{"name": ALARM}]},
        autoRollbackConfiguration={"enabled": bool(rollback_events), "events": rollback_events},
    )
    return stage


@pytest.fixture
def stage(aws: None) -> Stage:
    return _make_stage(ALL_ROLLBACK_EVENTS)


@pytest.fixture
def stage_without_rollback(aws: None) -> Stage:
    return _make_stage([])


def status(deployment_id: str) -> str:
    info = boto3.client("codedeploy", region_name=REGION).get_deployment(deploymentId=deployment_id)
    return str(info["deploymentInfo"]["status"])


def rollback_deployments() -> list[str]:
    codedeploy = boto3.client("codedeploy", region_name=REGION)
    ids = codedeploy.list_deployments()["deployments"]
    return [
        i
        for i in ids
        if codedeploy.get_deployment(deploymentId=i)["deploymentInfo"]
        .get("description", "")
        .startswith("Rollback of")
    ]


HOOKS = {"BeforeAllowTraffic": PRE, "AfterAllowTraffic": POST}


# --- traffic shifting ---------------------------------------------------------------------------
@pytest.mark.parametrize("config", ["Canary10Percent5Minutes", "Linear10PercentEvery3Minutes", "AllAtOnce"])
def test_the_alias_moves_on_the_schedule_and_ends_on_the_target(stage: Stage, config: str) -> None:
    # GIVEN hooks that pass
    invoker = FakeLambda({PRE: report("Succeeded"), POST: report("Succeeded")})
    deployment_id = stage.deployment(config, hooks=HOOKS)

    # WHEN the engine runs the deployment
    outcome = stage.engine(invoker).run(deployment_id)

    # THEN the weights follow the config, at the config's offsets from the first shift
    shifts = stage.shifts()
    expected = traffic_schedule(f"CodeDeployDefault.Lambda{config}")
    assert [w for _, w in shifts] == [s.weight for s in expected]
    first = shifts[0][0]
    assert [at - first for at, _ in shifts] == [s.offset for s in expected]
    # … and the deployment succeeds with the alias wholly on the target, routing cleared
    assert outcome.status == "Succeeded" == status(deployment_id)
    assert stage.alias() == ("2", {})
    assert outcome.max_weight == 1.0
    assert [name for name, _ in invoker.invoked] == [PRE, POST]


def test_while_canarying_the_alias_routes_the_share_to_the_target(stage: Stage) -> None:
    # GIVEN a canary whose routing we look at two minutes in
    seen: list[tuple[str, dict[str, float]]] = []
    invoker = FakeLambda({PRE: report("Succeeded"), POST: report("Succeeded")})
    deployment_id = stage.deployment("Canary10Percent10Minutes", hooks=HOOKS)
    stage.scheduler.at(stage.clock.now() + minutes(2), "look", lambda _: seen.append(stage.alias()))

    stage.engine(invoker).run(deployment_id)

    # THEN FunctionVersion stays the current version with 10 % routed to the target
    assert seen == [("1", {"2": 0.1})]


def test_hooks_get_only_the_deployment_and_execution_ids(stage: Stage) -> None:
    invoker = FakeLambda({PRE: report("Succeeded"), POST: report("Succeeded")})
    deployment_id = stage.deployment("AllAtOnce", hooks=HOOKS)

    stage.engine(invoker).run(deployment_id)

    for _, event in invoker.invoked:
        assert set(event) == {"DeploymentId", "LifecycleEventHookExecutionId"}
        assert event["DeploymentId"] == deployment_id
    assert (
        invoker.invoked[0][1]["LifecycleEventHookExecutionId"]
        != invoker.invoked[1][1]["LifecycleEventHookExecutionId"]
    )


def test_no_hooks_in_the_appspec_means_the_events_are_skipped(stage: Stage) -> None:
    outcome = stage.engine(FakeLambda({})).run(stage.deployment("AllAtOnce"))

    assert outcome.status == "Succeeded"
    assert outcome.hook_status == {"BeforeAllowTraffic": "Skipped", "AfterAllowTraffic": "Skipped"}


# --- the one-hour hook deadline -----------------------------------------------------------------
@pytest.mark.parametrize(
    ("seconds", "words"),
    [(0.04, "0.0 s"), (59.94, "59.9 s"), (60, "1 min"), (125, "2 min 5 s"), (3600, "60 min")],
)
def test_a_span_reads_in_seconds_under_a_minute_then_in_minutes_and_seconds(
    seconds: float, words: str
) -> None:
    # the timeline's "reported after …" and the rehearsal summary's virtual time read this way
    assert human_duration(seconds) == words


def test_a_hook_that_never_reports_fails_the_deployment_at_the_one_hour_deadline(stage: Stage) -> None:
    # GIVEN a pre-traffic hook that returns without ever reporting
    invoker = FakeLambda({PRE: never_reports, POST: report("Succeeded")})
    deployment_id = stage.deployment(hooks=HOOKS)
    started = stage.clock.now()

    # WHEN the engine waits for it
    outcome = stage.engine(invoker).run(deployment_id)

    # THEN the deployment fails exactly when the hour is up (virtual time), before any traffic
    decided = next(e for e in stage.events if e.detail.get("failure") == "hook_timed_out")
    assert HOOK_DEADLINE <= decided.at - started < HOOK_DEADLINE + timedelta(seconds=5)
    assert decided.message.endswith("did not report within 60 min")
    assert outcome.status == "Failed" == status(deployment_id)
    assert outcome.failure == "hook_timed_out"
    assert outcome.failed_lifecycle_event == "BeforeAllowTraffic"
    assert outcome.max_weight == 0.0
    assert stage.alias() == ("1", {})
    assert [name for name, _ in invoker.invoked] == [PRE]  # the post-traffic hook never runs


def test_a_hook_that_reports_just_inside_the_hour_is_waited_for(stage: Stage) -> None:
    # GIVEN a pre-traffic hook that reports after 59 minutes (as a long bake workflow would)
    def later(event: Mapping[str, Any]) -> None:
        when = stage.clock.now() + minutes(59)
        stage.scheduler.at(when, "late report", lambda _: report("Succeeded")(event))

    invoker = FakeLambda({PRE: later, POST: report("Succeeded")})

    outcome = stage.engine(invoker).run(stage.deployment("AllAtOnce", hooks=HOOKS))

    assert outcome.status == "Succeeded"
    assert outcome.virtual_duration >= minutes(59)


def test_a_hook_that_raises_is_retried_by_lambda_and_may_still_report(stage: Stage) -> None:
    # GIVEN a hook that throws twice (Lambda retries async invocations twice), then reports
    attempts: list[datetime] = []

    def flaky(event: Mapping[str, Any]) -> None:
        attempts.append(stage.clock.now())
        if len(attempts) < 3:
            raise RuntimeError("throttled")
        report("Succeeded")(event)

    invoker = FakeLambda({PRE: flaky, POST: report("Succeeded")})

    outcome = stage.engine(invoker).run(stage.deployment("AllAtOnce", hooks=HOOKS))

    # THEN the retries come about one and two minutes apart, and the third attempt's report counts
    assert outcome.status == "Succeeded"
    assert len(attempts) == 3
    assert minutes(1) <= attempts[1] - attempts[0] < minutes(1.1)
    assert minutes(2) <= attempts[2] - attempts[1] < minutes(2.1)


def test_a_hook_that_hangs_is_ended_at_lambdas_limit_and_the_deadline_still_applies(stage: Stage) -> None:
    # GIVEN a hook whose handler never returns (Lambda's limit shrunk to 50 ms for the test)
    release = threading.Event()

    def hangs(event: Mapping[str, Any]) -> None:
        release.wait()

    invoker = FakeLambda({PRE: hangs, POST: report("Succeeded")})
    try:
        outcome = stage.engine(invoker, invocation_timeout_seconds=0.05).run(stage.deployment(hooks=HOOKS))
    finally:
        release.set()

    # THEN each attempt times out, Lambda retries twice, and CodeDeploy fails the hook at the hour
    assert [name for name, _ in invoker.invoked] == [PRE, PRE, PRE]
    assert any("Sandbox.Timedout" in e.message and "gave up" in e.message for e in stage.events)
    assert outcome.failure == "hook_timed_out"


# --- rollback on each failure kind --------------------------------------------------------------
def test_pre_traffic_failed_ends_the_deployment_before_any_traffic(stage: Stage) -> None:
    invoker = FakeLambda({PRE: report("Failed"), POST: report("Succeeded")})
    deployment_id = stage.deployment(hooks=HOOKS)

    outcome = stage.engine(invoker).run(deployment_id)

    assert outcome.status == "Failed" == status(deployment_id)
    assert outcome.failure == "hook_failed"
    assert outcome.failed_lifecycle_event == "BeforeAllowTraffic"
    assert outcome.max_weight == 0.0
    assert stage.shifts() == []
    assert stage.alias() == ("1", {})
    assert outcome.rolled_back
    assert rollback_deployments() == [outcome.rollback_deployment_id]
    assert [name for name, _ in invoker.invoked] == [PRE]


def test_an_alarm_during_the_canary_stops_the_deployment_and_puts_the_alias_back(stage: Stage) -> None:
    # GIVEN the group's alarm goes to ALARM two minutes into a five-minute canary
    invoker = FakeLambda({PRE: report("Succeeded"), POST: report("Succeeded")})
    deployment_id = stage.deployment("Canary10Percent5Minutes", hooks=HOOKS)
    cloudwatch = boto3.client("cloudwatch", region_name=REGION)
    stage.scheduler.at(
        stage.clock.now() + minutes(2),
        "alarm",
        lambda _: cloudwatch.set_alarm_state(AlarmName=ALARM, StateValue="ALARM", StateReason="errors"),
    )

    # WHEN the engine runs it (CodeDeploy polls the group's alarms every minute)
    outcome = stage.engine(invoker).run(deployment_id)

    # THEN it is stopped within the next poll, at 10 %, and rolled back to version 1
    assert outcome.status == "Stopped" == status(deployment_id)
    assert outcome.failure == "alarm"
    assert outcome.max_weight == 0.1
    assert stage.alias() == ("1", {})
    assert outcome.rolled_back and outcome.rollback_deployment_id in rollback_deployments()
    assert outcome.virtual_duration < minutes(4)
    assert [name for name, _ in invoker.invoked] == [PRE]
    # the hooks' statuses only (AllowTraffic is no hook): the post-traffic hook never ran
    assert outcome.hook_status == {"BeforeAllowTraffic": "Succeeded", "AfterAllowTraffic": "Skipped"}


def test_the_alarm_fires_from_the_new_versions_own_errors(stage: Stage) -> None:
    # GIVEN the new version errors one minute into the canary (written as Lambda would publish it)
    cloudwatch = boto3.client("cloudwatch", region_name=REGION)
    stage.scheduler.at(stage.clock.now() + minutes(1), "errors", new_version_errors(cloudwatch, 3))
    invoker = FakeLambda({PRE: report("Succeeded"), POST: report("Succeeded")})

    # WHEN the engine runs with CloudWatch's alarm evaluation
    outcome = stage.engine(invoker, alarms=AlarmEvaluator(cloudwatch, [ALARM])).run(
        stage.deployment("Canary10Percent5Minutes", hooks=HOOKS)
    )

    # THEN the alarm goes to ALARM on its own and the deployment is stopped and rolled back
    assert outcome.alarm_states[ALARM] == "ALARM"
    assert outcome.status == "Stopped"
    assert stage.alias() == ("1", {})


def test_post_traffic_failed_rolls_back_from_full_traffic(stage: Stage) -> None:
    invoker = FakeLambda({PRE: report("Succeeded"), POST: report("Failed")})
    deployment_id = stage.deployment("Linear10PercentEvery1Minute", hooks=HOOKS)

    outcome = stage.engine(invoker).run(deployment_id)

    assert outcome.status == "Failed" == status(deployment_id)
    assert outcome.failed_lifecycle_event == "AfterAllowTraffic"
    assert outcome.max_weight == 1.0
    assert stage.alias() == ("1", {})
    assert outcome.rolled_back


def test_a_stop_by_an_eventbridge_target_is_noticed_and_rolled_back_as_requested(stage: Stage) -> None:
    # GIVEN a rule whose function stops the deployment (as DeployGuard's alarm rollback does)
    deployment_id = stage.deployment("Canary10Percent5Minutes", hooks=HOOKS)

    def stop(event: Mapping[str, Any]) -> None:
        boto3.client("codedeploy", region_name=REGION).stop_deployment(
            deploymentId=deployment_id, autoRollbackEnabled=True
        )

    invoker = FakeLambda({PRE: report("Succeeded"), POST: report("Succeeded"), "rollback-fn": stop})
    rule = Rule(
        name="on-alarm",
        pattern={"source": ["aws.cloudwatch"], "detail": {"state": {"value": ["ALARM"]}}},
        function_name="rollback-fn",
    )
    cloudwatch = boto3.client("cloudwatch", region_name=REGION)
    stage.scheduler.at(stage.clock.now() + minutes(1), "errors", new_version_errors(cloudwatch, 1))

    outcome = stage.engine(invoker, alarms=AlarmEvaluator(cloudwatch, [ALARM]), rules=[rule]).run(
        deployment_id
    )

    # THEN the function got the EventBridge event, the stop ended the deployment, the alias is back
    delivered = [event for name, event in invoker.invoked if name == "rollback-fn"]
    assert delivered and delivered[0]["detail-type"] == "CloudWatch Alarm State Change"
    assert delivered[0]["detail"]["alarmName"] == ALARM
    assert outcome.status == "Stopped"
    assert outcome.failure == "stopped"
    assert outcome.stopped_by == "rollback-fn"
    assert stage.alias() == ("1", {})


def test_without_auto_rollback_the_alias_is_left_where_the_failure_found_it(
    stage_without_rollback: Stage,
) -> None:
    # GIVEN a group without autoRollbackConfiguration and a post-traffic hook that fails
    stage = stage_without_rollback
    invoker = FakeLambda({PRE: report("Succeeded"), POST: report("Failed")})

    outcome = stage.engine(invoker).run(stage.deployment("AllAtOnce", hooks=HOOKS))

    # THEN CodeDeploy does not roll back (the deployment is Failed, the alias stays on the target)
    assert outcome.status == "Failed"
    assert not outcome.rolled_back
    assert stage.alias() == ("2", {})
    assert rollback_deployments() == []


# --- the parts: AppSpec hooks, alarms, EventBridge, the clock -----------------------------------
def test_appspec_hooks_are_read_in_any_key_case_and_as_yaml() -> None:
    yaml_content = (
        "version: 0.0\nresources: []\nhooks:\n  - beforeallowtraffic: pre\n  - AfterAllowTraffic: post\n"
    )

    assert appspec_hooks(yaml_content) == {"BeforeAllowTraffic": "pre", "AfterAllowTraffic": "post"}


def test_metric_math_follows_cloudwatch_for_the_templates_error_rate() -> None:
    at = datetime(2026, 1, 1, tzinfo=UTC)
    expression = "IF(invocations >= 5, 100 * errors / invocations, 0)"

    def rate(invocations: float, errors: float) -> float | None:
        return evaluate_expression(expression, {"invocations": {at: invocations}, "errors": {at: errors}}, at)

    assert rate(5, 2) == 40.0
    assert rate(4, 4) == 0.0  # too few invocations to judge
    assert (
        evaluate_expression("errors / invocations", {"errors": {at: 1}, "invocations": {at: 0}}, at) is None
    )


def test_the_templates_alarm_is_evaluated_m_out_of_n_with_missing_data_not_breaching(aws: None) -> None:
    # GIVEN the error-rate alarm exactly as template.yaml defines it, on version 2
    wiring = read_wiring(ROOT / "template.yaml", stage="staging")
    alarm = next(a for a in wiring.alarms if "error-rate" in a.name)
    cloudwatch = boto3.client("cloudwatch", region_name=REGION)
    cloudwatch.put_metric_alarm(**alarm.for_version("2"))
    cloudwatch.set_alarm_state(AlarmName=alarm.name, StateValue="INSUFFICIENT_DATA", StateReason="new")
    dimensions = next(q for q in alarm.for_version("2")["Metrics"] if q["Id"] == "errors")["MetricStat"][
        "Metric"
    ]["Dimensions"]
    minute = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)

    def publish(start: datetime, invocations: int, errors: int) -> None:
        for name, value in (("Invocations", invocations), ("Errors", errors)):
            cloudwatch.put_metric_data(
                Namespace="AWS/Lambda",
                MetricData=[
                    {
                        "MetricName": name,
                        "Dimensions": dimensions,
                        "Timestamp": start + timedelta(seconds=30),
                        "Value": value,
                    }
                ],
            )

    evaluator = AlarmEvaluator(cloudwatch, [alarm.name])

    # WHEN a minute with 1 error in 10 (10 % > 5 %) closes, after a quiet one
    publish(minute, 10, 0)
    first = evaluator.evaluate(minute + minutes(1))
    publish(minute + minutes(1), 10, 1)
    second = evaluator.evaluate(minute + minutes(2))

    # THEN the alarm is OK, then ALARM (DatapointsToAlarm 1 of EvaluationPeriods 2)
    assert [c.state for c in first] == ["OK"]
    assert [c.state for c in second] == ["ALARM"]
    event = second[0].event
    assert event["detail-type"] == "CloudWatch Alarm State Change"
    assert event["detail"]["state"]["value"] == "ALARM"
    assert event["detail"]["previousState"]["value"] == "OK"
    assert any(
        m.get("metricStat", {}).get("metric", {}).get("name") == "Errors"
        for m in event["detail"]["configuration"]["metrics"]
    )


def test_the_alarm_rollback_rule_of_the_template_matches_only_alarm_state_changes() -> None:
    wiring = read_wiring(ROOT / "template.yaml", stage="staging")
    (rule,) = wiring.rules
    assert rule.function_name == wiring.functions["AlarmRollbackFunction"].name
    assert wiring.hooks == {
        "BeforeAllowTraffic": wiring.functions["PreTrafficHookFunction"].name,
        "AfterAllowTraffic": wiring.functions["PostTrafficHookFunction"].name,
    }
    alarm = {
        "source": "aws.cloudwatch",
        "detail-type": "CloudWatch Alarm State Change",
        "detail": {"state": {"value": "ALARM"}},
    }
    ok = {**alarm, "detail": {"state": {"value": "OK"}}}

    pattern = rule.event_pattern()
    assert pattern.matches_event(alarm)  # type: ignore[arg-type]
    assert not pattern.matches_event(ok)  # type: ignore[arg-type]


def test_the_virtual_clock_skips_waits_but_runs_at_real_speed_between_them() -> None:
    clock = VirtualClock(datetime(2026, 1, 1, tzinfo=UTC))
    scheduler = Scheduler(clock)
    ran: list[datetime] = []
    scheduler.at(clock.now() + minutes(30), "half an hour", ran.append)

    scheduler.run_until(clock.now() + minutes(60))

    assert len(ran) == 1
    assert abs(ran[0] - datetime(2026, 1, 1, 0, 30, tzinfo=UTC)) < timedelta(seconds=1)
    assert minutes(60) <= clock.elapsed() < minutes(60) + timedelta(seconds=5)
