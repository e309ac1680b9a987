"""The embedded AWS behaves as AWS documents it: each test names its source in its docstring or
comment (an AWS documentation page, the Amazon States Language specification, or the botocore
service model that is the API's contract). What remains an approximation is listed, with its
reason, in docs/fidelity.md.

Step Functions executions run on moto's own interpreter (ported from LocalStack), routed onto the
rehearsal's virtual clock and onto in-process functions by ``deployguard_cli.localaws.moto_stepfunctions``;
EventBridge patterns match with moto's ``EventPattern``; CodeDeploy is the rehearsal's engine over
DeployGuard's moto extensions.
"""

from __future__ import annotations

import itertools
import json
import shutil
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import botocore.session
import pytest
from botocore.exceptions import ClientError
from moto.events.exceptions import InvalidEventPatternException

from deployguard_cli.localaws.moto_stepfunctions import DefinitionError, routed, validate_definition
from deployguard_cli.rehearsal.clock import Scheduler, VirtualClock
from deployguard_cli.rehearsal.engine import CodeDeployEngine, EngineEvent, traffic_schedule
from deployguard_cli.rehearsal.wiring import Rule, TemplateError, read_wiring
from tests.support.aws import Version, deployment_group, function_with_versions, put_metric_alarm

ROOT = Path(__file__).resolve().parents[2]
REGION = "us-east-1"
STEP = "step"
STEP_ARN = f"arn:aws:lambda:{REGION}:123456789012:function:{STEP}"
ROLE = "arn:aws:iam::123456789012:role/states"
INVOKE = "arn:aws:states:::lambda:invoke"

# Sources, named once.
ASL_SPEC = "https://states-language.net/spec.html"
SFN_ERRORS = "https://docs.aws.amazon.com/step-functions/latest/dg/concepts-error-handling.html"
SFN_WAIT = "https://docs.aws.amazon.com/step-functions/latest/dg/state-wait.html"
SFN_RESULT_PATH = "https://docs.aws.amazon.com/step-functions/latest/dg/input-output-resultpath.html"
SFN_PATHS = "https://docs.aws.amazon.com/step-functions/latest/dg/amazon-states-language-paths.html"
SFN_CHOICE = "https://docs.aws.amazon.com/step-functions/latest/dg/state-choice.html"
EB_PATTERNS = "https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-create-pattern-operators.html"
CW_DESCRIBE = "https://docs.aws.amazon.com/AmazonCloudWatch/latest/APIReference/API_DescribeAlarms.html"
CW_COMPOSITE = "https://docs.aws.amazon.com/AmazonCloudWatch/latest/APIReference/API_PutCompositeAlarm.html"
CW_QUERY = "https://docs.aws.amazon.com/AmazonCloudWatch/latest/APIReference/API_MetricDataQuery.html"
CD_ALARMS = "https://docs.aws.amazon.com/codedeploy/latest/APIReference/API_AlarmConfiguration.html"
CD_LINEAR = "https://docs.aws.amazon.com/codedeploy/latest/APIReference/API_TimeBasedLinear.html"
LAMBDA_UPDATE_ALIAS = "https://docs.aws.amazon.com/lambda/latest/api/API_UpdateAlias.html"


def seconds(n: float) -> timedelta:
    return timedelta(seconds=n)


# --- Step Functions: moto's interpreter, on the virtual clock ---------------------------------------
@dataclass(frozen=True)
class Reply:
    result: Any = None
    error_type: str | None = None
    error_message: str | None = None


@dataclass
class Functions:
    """In-process Lambda functions by name: each behaviour returns a result or raises."""

    clock: VirtualClock
    behaviours: dict[str, Callable[[Any], Any]]
    calls: list[tuple[str, datetime, Any]] = field(default_factory=list)
    real: list[float] = field(default_factory=list)  # time.monotonic() at each call

    def knows(self, function_name: str) -> bool:
        return function_name in self.behaviours

    def invoke(self, function_name: str, event: Mapping[str, Any]) -> Reply:
        self.calls.append((function_name, self.clock.now(), event))
        self.real.append(time.monotonic())
        try:
            return Reply(result=self.behaviours[function_name](event))
        except Exception as exc:  # a function error, as Lambda reports it
            return Reply(error_type=type(exc).__name__, error_message=str(exc))

    def gaps(self) -> list[int]:
        """The waits between consecutive invocations in whole seconds: the virtual time skipped,
        without the real time each step itself takes (which a loaded machine stretches past 1 s)."""
        virtual = [at for _, at, _ in self.calls]
        return [
            round((b - a).total_seconds() - (real_b - real_a))
            for (a, b), (real_a, real_b) in zip(
                itertools.pairwise(virtual), itertools.pairwise(self.real), strict=True
            )
        ]


@dataclass
class Workflows:
    scheduler: Scheduler

    def run(
        self,
        definition: Mapping[str, Any],
        behaviours: Mapping[str, Callable[[Any], Any]] | None = None,
        document: Any = None,
        *,
        within: timedelta = timedelta(hours=3),
    ) -> tuple[dict[str, Any], Functions]:
        """Create the state machine, start one execution, play it on the clock to its end."""
        functions = Functions(self.scheduler.clock, dict(behaviours or {}))
        sfn = boto3.client("stepfunctions", region_name=REGION)
        machine = sfn.create_state_machine(
            name=f"m{time.monotonic_ns()}", definition=json.dumps(definition), roleArn=ROLE
        )["stateMachineArn"]
        limit = self.scheduler.clock.now() + within
        with routed(self.scheduler, functions) as router:
            self.scheduler.settle = router.settle
            arn = sfn.start_execution(
                stateMachineArn=machine, name=f"e{time.monotonic_ns()}", input=json.dumps(document or {})
            )["executionArn"]
            while router.running and (due := self.scheduler.next_time()) is not None and due <= limit:
                self.scheduler.run_until(due)
            self.scheduler.settle = lambda: None
            return dict(sfn.describe_execution(executionArn=arn)), functions


@pytest.fixture
def workflows(aws: None, monkeypatch: pytest.MonkeyPatch) -> Iterator[Workflows]:
    from moto.core.config import default_user_config

    monkeypatch.setitem(default_user_config, "stepfunctions", {"execute_state_machine": True})
    yield Workflows(Scheduler(VirtualClock()))


def task(resource: str = INVOKE, *, then: str | None = None, **fields: Any) -> dict[str, Any]:
    """A Task state invoking the function STEP; it ends the execution unless ``then`` names the next."""
    ending: dict[str, Any] = {"Next": then} if then else {"End": True}
    state: dict[str, Any] = {"Type": "Task", "Resource": resource, **ending, **fields}
    if resource == INVOKE:
        state.setdefault("Parameters", {"FunctionName": STEP, "Payload.$": "$"})
        state.setdefault("OutputPath", "$.Payload")
    return state


def machine(**states: Mapping[str, Any]) -> dict[str, Any]:
    return {"StartAt": next(iter(states)), "States": states}


class ErrorA(Exception):
    pass


class ErrorB(Exception):
    pass


class ErrorC(Exception):
    pass


def raises_then_returns(*errors: type[Exception]) -> Callable[[Any], Any]:
    remaining = list(errors)

    def behave(event: Any) -> Any:
        if remaining:
            raise remaining.pop(0)("boom")
        return {"ok": True}

    return behave


def test_each_retrier_counts_its_own_attempts(workflows: Workflows) -> None:
    # Source: the States Language spec's Retry example (ASL_SPEC, "Retrying after error"): ErrorA and
    # ErrorB share the first retrier (1 s, then 2 s); ErrorC's own retrier waits its 5 s.
    retry = [
        {"ErrorEquals": ["ErrorA", "ErrorB"], "IntervalSeconds": 1, "BackoffRate": 2.0, "MaxAttempts": 2},
        {"ErrorEquals": ["ErrorC"], "IntervalSeconds": 5},
    ]
    behave = raises_then_returns(ErrorA, ErrorB, ErrorC)

    execution, functions = workflows.run(machine(Work=task(Retry=retry)), {STEP: behave})

    assert execution["status"] == "SUCCEEDED"
    assert functions.gaps() == [1, 2, 5]


def test_max_delay_seconds_caps_the_backoff(workflows: Workflows) -> None:
    # Source: SFN_ERRORS, "Retrier fields": MaxDelaySeconds is the most a retry interval can grow to.
    retry = [
        {"ErrorEquals": ["States.ALL"], "IntervalSeconds": 10, "BackoffRate": 10.0, "MaxDelaySeconds": 50}
    ]

    execution, functions = workflows.run(
        machine(Work=task(Retry=retry)), {STEP: raises_then_returns(ErrorA, ErrorA, ErrorA)}
    )

    assert execution["status"] == "SUCCEEDED"
    assert functions.gaps() == [10, 50, 50]


def test_states_task_failed_matches_a_functions_error(workflows: Workflows) -> None:
    # Source: SFN_ERRORS, "States.TaskFailed": a Task state failed; in a Catch it matches any known
    # error (except States.Timeout). The function's errorType becomes the error name.
    definition = machine(
        Work=task(then="Done", Catch=[{"ErrorEquals": ["States.TaskFailed"], "Next": "Caught"}]),
        Caught={"Type": "Pass", "End": True},
        Done={"Type": "Succeed"},
    )

    execution, _ = workflows.run(definition, {STEP: raises_then_returns(ErrorA)})

    assert execution["status"] == "SUCCEEDED"
    assert json.loads(execution["output"])["Error"] == "ErrorA"


def test_states_runtime_is_neither_retried_nor_caught_by_states_all(workflows: Workflows) -> None:
    # Source: SFN_ERRORS, "States.Runtime": not retriable; a Retry or Catch on States.ALL does not
    # catch it. An InputPath that matches nothing is such an error.
    state = task(
        InputPath="$.missing",
        Retry=[{"ErrorEquals": ["States.ALL"], "MaxAttempts": 3}],
        Catch=[{"ErrorEquals": ["States.ALL"], "Next": "Caught"}],
    )

    execution, functions = workflows.run(
        machine(Work=state, Caught={"Type": "Succeed"}), {STEP: lambda e: e}, {"present": 1}
    )

    assert execution["status"] == "FAILED"
    assert execution["error"] == "States.Runtime"
    assert functions.calls == []


def test_a_seconds_path_that_is_not_an_integer_fails_the_execution(workflows: Workflows) -> None:
    # Source: SFN_WAIT, "SecondsPath": the value must be an integer.
    wait = {"Type": "Wait", "SecondsPath": "$.wait", "End": True}

    execution, _ = workflows.run(machine(Wait=wait), document={"wait": 1.5})

    assert execution["status"] == "FAILED"
    assert execution["error"] == "States.Runtime"


def test_a_fail_state_takes_its_error_and_cause_from_paths(workflows: Workflows) -> None:
    # Source: https://docs.aws.amazon.com/step-functions/latest/dg/state-fail.html (ErrorPath, CausePath)
    fail = {"Type": "Fail", "ErrorPath": "$.code", "CausePath": "$.why"}

    execution, _ = workflows.run(machine(Stop=fail), document={"code": "Bake.Failed", "why": "alarm"})

    assert (execution["status"], execution["error"], execution["cause"]) == ("FAILED", "Bake.Failed", "alarm")


def test_input_path_null_gives_the_state_an_empty_object(workflows: Workflows) -> None:
    # Source: ASL_SPEC, "Filters": if InputPath is null the effective input is {}.
    execution, functions = workflows.run(
        machine(Work=task(STEP_ARN, InputPath=None)), {STEP: lambda e: e}, {"secret": "kept out"}
    )

    assert execution["status"] == "SUCCEEDED"
    assert [event for _, _, event in functions.calls] == [{}]


@pytest.mark.parametrize(
    ("result_path", "output"),
    [
        ("$.checks[0]", {"checks": ["passed", {"name": "smoke"}], "id": 7}),
        ("$.checks[1].verdict", {"checks": ["pending", {"name": "smoke", "verdict": "passed"}], "id": 7}),
    ],
    ids=["array-element", "field-of-an-array-element"],
)
def test_a_result_path_with_an_array_index_overwrites_that_node(
    workflows: Workflows, result_path: str, output: dict[str, Any]
) -> None:
    # Source: SFN_RESULT_PATH, "Use ResultPath to update a node in the input with the result": the
    # result overwrites the one node ResultPath names; SFN_PATHS, "Reference paths": a reference path
    # reaches that node with dot and square-bracket notation (an index, not a key named "checks[0]").
    document = {"checks": ["pending", {"name": "smoke"}], "id": 7}

    execution, _ = workflows.run(
        machine(Check=task(STEP_ARN, ResultPath=result_path)), {STEP: lambda e: "passed"}, document
    )

    assert execution["status"] == "SUCCEEDED"
    assert json.loads(execution["output"]) == output


@pytest.mark.parametrize(
    ("value", "rule", "matches"),
    [
        ("2001-01-01T12:00:00.000Z", {"TimestampEquals": "2001-01-01T12:00:00Z"}, True),
        ("2001-01-01T12:00:00Z", {"TimestampEquals": "2001-01-01T12:00:00.000Z"}, True),
        ("2001-01-01T12:00:01Z", {"TimestampEquals": "2001-01-01T12:00:00Z"}, False),
        ("2001-01-01T12:00:00.000Z", {"TimestampEqualsPath": "$.other"}, True),
        ("2001-01-01T12:00:00Z", {"TimestampLessThan": "2001-01-01T12:00:01.000Z"}, True),
        ("2001-01-01T12:00:00.000Z", {"TimestampGreaterThanEquals": "2001-01-01T12:00:00Z"}, True),
        ("2001-01-01T12:00:00.000Z", {"StringEquals": "2001-01-01T12:00:00Z"}, False),
    ],
    ids=[
        "equals-with-fraction",
        "equals-literal-with-fraction",
        "equals-other-second",
        "equals-path",
        "less-than-literal-with-fraction",
        "greater-than-equals",
        "string-equals-compares-text",
    ],
)
def test_timestamp_rules_compare_instants_not_strings(
    workflows: Workflows, value: str, rule: dict[str, str], matches: bool
) -> None:
    # Source: SFN_CHOICE, "Choice Rules": Timestamp* operators compare timestamps, which "must conform
    # to RFC3339 profile ISO 8601" (whose seconds may carry a fraction: the context object's own
    # times do); the same instant written two ways is equal. StringEquals compares the text ("a
    # field considered to be a timestamp can be matched by a StringEquals comparator").
    choice = {"Type": "Choice", "Choices": [{"Variable": "$.at", **rule, "Next": "Yes"}], "Default": "No"}
    definition = machine(
        Pick=choice,
        Yes={"Type": "Pass", "Result": True, "End": True},
        No={"Type": "Pass", "Result": False, "End": True},
    )

    execution, _ = workflows.run(definition, document={"at": value, "other": "2001-01-01T12:00:00Z"})

    assert execution["status"] == "SUCCEEDED"
    assert json.loads(execution["output"]) is matches


def test_waits_pass_on_the_virtual_clock_not_in_real_time(workflows: Workflows) -> None:
    # Source: SFN_WAIT: Seconds and Timestamp waits; the rehearsal skips them on its clock (were they
    # real sleeps, this test would take two hours).
    clock = workflows.scheduler.clock
    until = (clock.now() + timedelta(hours=2)).replace(microsecond=0)
    definition = machine(
        Hour={"Type": "Wait", "Seconds": 3600, "Next": "Mark"},
        Mark=task(STEP_ARN, then="Until", ResultPath=None),
        Until={"Type": "Wait", "Timestamp": until.strftime("%Y-%m-%dT%H:%M:%SZ"), "Next": "Last"},
        Last=task(),
    )
    started = clock.now()

    execution, functions = workflows.run(definition, {STEP: lambda e: e})

    assert execution["status"] == "SUCCEEDED"
    (_, hour_later, _), (_, at_the_timestamp, _) = functions.calls
    assert seconds(3600) <= hour_later - started < seconds(3610)
    # moto counts whole seconds to the timestamp (truncated): up to a second early
    assert seconds(-1) <= at_the_timestamp - until < seconds(10)


def test_the_executions_timeout_seconds_is_virtual_time(workflows: Workflows) -> None:
    # Source: ASL_SPEC, "Top-level fields": TimeoutSeconds ends a running execution (States.Timeout).
    definition = {**machine(Long={"Type": "Wait", "Seconds": 600, "End": True}), "TimeoutSeconds": 60}
    started = workflows.scheduler.clock.now()

    execution, _ = workflows.run(definition)

    assert execution["status"] == "TIMED_OUT"
    assert seconds(60) <= workflows.scheduler.clock.now() - started < seconds(70)


@pytest.mark.parametrize(
    ("state", "reason"),
    [
        (
            {"Type": "Parallel", "Branches": [machine(P={"Type": "Pass", "End": True})], "End": True},
            "Parallel",
        ),
        ({"Type": "Map", "ItemProcessor": machine(P={"Type": "Pass", "End": True}), "End": True}, "Map"),
        (task("arn:aws:states:::sqs:sendMessage", Parameters={"QueueUrl": "q", "MessageBody": "m"}), "sqs"),
        (task(INVOKE + ".waitForTaskToken"), "waitForTaskToken"),
        ({"Type": "Pass", "Parameters": {"x.$": "States.Formatt('{}', $.a)"}, "End": True}, "parse"),
        ({"Type": "Pass", "QueryLanguage": "JSONata", "Output": "{% 1 %}", "End": True}, "JSONata"),
    ],
    ids=["parallel", "map", "sqs-task", "callback-task", "unknown-intrinsic", "jsonata"],
)
def test_what_the_rehearsal_cannot_run_fails_when_the_definition_is_read(state: Any, reason: str) -> None:
    # Source: CreateStateMachine validates a definition (InvalidDefinition), ASL_SPEC's intrinsic
    # functions; the rest are the rehearsal's own limits (docs/fidelity.md).
    with pytest.raises(DefinitionError, match=reason if reason != "parse" else "not"):
        validate_definition(machine(S=state))


def test_the_bake_definition_of_the_template_is_valid() -> None:
    wiring = read_wiring(ROOT / "template.yaml", stage="staging")

    assert wiring.state_machines, "statemachine/bake.asl.json is read with the template"


def test_a_bake_definition_the_rehearsal_cannot_run_fails_when_the_template_is_read(tmp_path: Path) -> None:
    # GIVEN the template with a bake definition that polls in a Parallel state
    shutil.copy(ROOT / "template.yaml", tmp_path / "template.yaml")
    (tmp_path / "statemachine").mkdir()
    branch = machine(Poll={"Type": "Pass", "End": True})
    parallel = {"Type": "Parallel", "Branches": [branch], "End": True}
    (tmp_path / "statemachine" / "bake.asl.json").write_text(json.dumps(machine(Bake=parallel)))

    # THEN reading the wiring fails at once, naming the state machine, the state and why
    with pytest.raises(
        TemplateError, match=r"state machine \w+: state Bake: Parallel states are not supported"
    ):
        read_wiring(tmp_path / "template.yaml", stage="staging")


def _bake(
    workflows: Workflows, behave: Callable[[Any], Any], document: Any
) -> tuple[dict[str, Any], Functions]:
    (spec,) = read_wiring(ROOT / "template.yaml", stage="staging").state_machines.values()
    name = spec.definition["States"]["Poll"]["Parameters"]["FunctionName"].rsplit(":", 1)[-1]
    return workflows.run(spec.definition, {name: behave}, document)


def test_the_templates_bake_workflow_polls_on_the_clock_until_done(workflows: Workflows) -> None:
    # GIVEN a bake step that says "continue" twice, then "done"
    polls: list[int] = []

    def step(event: Any) -> Any:
        polls.append(1)
        return {**event["input"], "verdict": "continue" if len(polls) < 3 else "done"}

    execution, functions = _bake(workflows, step, {"wait_seconds": 60, "verdict": "continue"})

    # THEN it polled once a (virtual) minute and the execution succeeded
    assert execution["status"] == "SUCCEEDED"
    assert functions.gaps() == [60, 60]


def test_the_templates_bake_workflow_reports_failed_when_its_step_fails(workflows: Workflows) -> None:
    # GIVEN a bake step that raises unless asked to report the failure
    def step(event: Any) -> Any:
        if event.get("action") != "fail":
            raise RuntimeError("boom")
        return {"verdict": "done"}

    execution, functions = _bake(workflows, step, {"wait_seconds": 1})

    # THEN Catch on States.ALL hands the error to ReportFailed, with the execution's name ($$)
    last = functions.calls[-1][2]
    assert last["action"] == "fail"
    assert last["input"]["error"]["Error"] == "RuntimeError"
    assert last["execution_name"] == execution["name"]
    assert execution["status"] == "SUCCEEDED"


# --- EventBridge: moto's EventPattern ---------------------------------------------------------------
ALARM_EVENT = {
    "source": "aws.cloudwatch",
    "detail-type": "CloudWatch Alarm State Change",
    "detail": {"alarmName": "prod-orders-errors", "state": {"value": "ALARM"}, "count": 7, "ip": "10.0.0.5"},
}


@pytest.mark.parametrize(
    ("pattern", "matches"),
    [
        ({"detail": {"alarmName": [{"anything-but": {"prefix": "test-"}}]}}, True),
        ({"detail": {"alarmName": [{"anything-but": {"prefix": "prod-"}}]}}, False),
        ({"detail": {"alarmName": [{"suffix": "-errors"}]}}, True),
        ({"detail": {"alarmName": [{"wildcard": "prod-*-errors"}]}}, True),
        ({"detail": {"count": [{"numeric": [">", 5, "<=", 7]}]}}, True),
        ({"detail": {"count": [{"numeric": [">", 7]}]}}, False),
        ({"detail": {"ip": [{"cidr": "10.0.0.0/24"}]}}, True),
        ({"detail": {"missing": [{"exists": False}]}}, True),
        ({"$or": [{"source": ["aws.ec2"]}, {"detail": {"state": {"value": ["ALARM"]}}}]}, True),
        ({"detail": {"state": {"value": [{"equals-ignore-case": "alarm"}]}}}, True),
    ],
    ids=[
        "anything-but-prefix",
        "anything-but-prefix-excludes",
        "suffix",
        "wildcard",
        "numeric-range",
        "numeric-above",
        "cidr",
        "exists-false",
        "or",
        "equals-ignore-case",
    ],
)
def test_eventbridge_content_filters(pattern: dict[str, Any], matches: bool) -> None:
    # Source: EB_PATTERNS (comparison operators of event patterns)
    rule = Rule(name="r", pattern=pattern, function_name="f")

    assert rule.event_pattern().matches_event(ALARM_EVENT) is matches  # type: ignore[arg-type]


def test_a_pattern_aws_rejects_fails_when_the_rule_is_read() -> None:
    # Source: EB_PATTERNS: the values of an event pattern are arrays (or nested objects).
    with pytest.raises(InvalidEventPatternException):
        Rule(name="r", pattern={"source": "aws.cloudwatch"}, function_name="f").event_pattern()


def test_the_templates_rule_with_alarm_prefixes_is_json_text_and_matches_by_prefix() -> None:
    # Source: template.yaml (GuardedAlarmPrefixes: a CommaDelimitedList, members space-trimmed, per
    # https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/parameters-section-structure.html)
    wiring = read_wiring(
        ROOT / "template.yaml", stage="staging", parameters={"GuardedAlarmPrefixes": "prod-orders-, team-a"}
    )
    (spec,) = wiring.rules
    pattern = spec.event_pattern()
    other = {**ALARM_EVENT, "detail": {**ALARM_EVENT["detail"], "alarmName": "staging-errors"}}  # type: ignore[dict-item]

    assert isinstance(spec.pattern, str)
    assert pattern.matches_event(ALARM_EVENT)  # type: ignore[arg-type]
    assert not pattern.matches_event(other)  # type: ignore[arg-type]


# --- CodeDeploy: the engine -------------------------------------------------------------------------
FUNCTION, ALIAS = "fidelity-orders", "live"
PRE, POST = "CodeDeployHook_fidelity-pre", "CodeDeployHook_fidelity-post"
ERRORS = "fidelity-orders-errors"
COMPOSITE = "fidelity-orders-health"
GROUP = ("fidelity-app", "fidelity-group")


@dataclass
class Call:
    done: threading.Event = field(default_factory=threading.Event)
    raised: str | None = None

    def wait(self, timeout: float | None = None) -> bool:
        return self.done.wait(timeout)

    @property
    def error(self) -> str | None:
        return self.raised if self.done.is_set() else None


class Hooks:
    """Hooks that report Succeeded through the real CodeDeploy API (asynchronous Invoke)."""

    def knows(self, function_name: str) -> bool:
        return function_name in (PRE, POST)

    def max_retry_attempts(self, function_name: str) -> int:
        return 2

    def invoke_async(self, function_name: str, event: Mapping[str, Any]) -> Call:
        call = Call()
        boto3.client("codedeploy", region_name=REGION).put_lifecycle_event_hook_execution_status(
            deploymentId=event["DeploymentId"],
            lifecycleEventHookExecutionId=event["LifecycleEventHookExecutionId"],
            status="Succeeded",
        )
        call.done.set()
        return call


@dataclass
class Deployments:
    scheduler: Scheduler
    events: list[EngineEvent] = field(default_factory=list)

    def run(self, config: str, cloudwatch: Any = None) -> tuple[Any, dict[str, Any]]:
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
            "Hooks": [{"BeforeAllowTraffic": PRE}, {"AfterAllowTraffic": POST}],
        }
        codedeploy = boto3.client("codedeploy", region_name=REGION)
        deployment_id = codedeploy.create_deployment(
            applicationName=GROUP[0],
            deploymentGroupName=GROUP[1],
            deploymentConfigName=f"CodeDeployDefault.Lambda{config}",
            revision={"revisionType": "AppSpecContent", "appSpecContent": {"content": json.dumps(appspec)}},
        )["deploymentId"]
        engine = CodeDeployEngine(
            scheduler=self.scheduler,
            codedeploy=codedeploy,
            lambda_client=boto3.client("lambda", region_name=REGION),
            cloudwatch=cloudwatch or boto3.client("cloudwatch", region_name=REGION),
            invoker=Hooks(),
            observer=self.events.append,
        )
        outcome = engine.run(deployment_id)
        return outcome, dict(codedeploy.get_deployment(deploymentId=deployment_id)["deploymentInfo"])

    def at(self, minutes: float, action: Callable[[], object]) -> None:
        self.scheduler.at(self.scheduler.clock.now() + timedelta(minutes=minutes), "test", lambda _: action())


def _deployments(*, ignore_poll_alarm_failure: bool = False) -> Deployments:
    handler = Version("def handler(event, context):\n    return {}\n")
    role = function_with_versions(FUNCTION, [handler, Version(handler.source, description="2")], alias=ALIAS)
    put_metric_alarm(ERRORS, dimensions={"FunctionName": FUNCTION}, treat_missing_data="notBreaching")
    boto3.client("cloudwatch", region_name=REGION).put_composite_alarm(
        AlarmName=COMPOSITE, AlarmRule=f'ALARM("{ERRORS}")'
    )
    deployment_group(
        *GROUP,
        serviceRoleArn=role,
        alarmConfiguration={
            "enabled": True,
            "ignorePollAlarmFailure": ignore_poll_alarm_failure,
            "alarms": [{"name": ERRORS}, {"name": COMPOSITE}],
        },
        autoRollbackConfiguration={
            "enabled": True,
            "events": ["DEPLOYMENT_FAILURE", "DEPLOYMENT_STOP_ON_ALARM", "DEPLOYMENT_STOP_ON_REQUEST"],
        },
    )
    return Deployments(Scheduler(VirtualClock()))


@pytest.fixture
def deployments(aws: None) -> Deployments:
    return _deployments()


def alias() -> tuple[str, dict[str, float]]:
    answer = boto3.client("lambda", region_name=REGION).get_alias(FunctionName=FUNCTION, Name=ALIAS)
    return str(answer["FunctionVersion"]), dict(
        answer.get("RoutingConfig", {}).get("AdditionalVersionWeights", {})
    )


def failing_describe_alarms() -> Any:
    """A CloudWatch client whose DescribeAlarms fails (throttled), as a poll can on AWS."""
    client = boto3.client("cloudwatch", region_name=REGION)

    def throttle(**_: Any) -> None:
        raise ClientError({"Error": {"Code": "Throttling", "Message": "Rate exceeded"}}, "DescribeAlarms")

    client.meta.events.register("before-call.cloudwatch.DescribeAlarms", throttle)
    return client


CODEDEPLOY_MODEL = botocore.session.get_session().get_service_model("codedeploy")


def model_enum(shape: str) -> list[str]:
    """The values the botocore model allows for a string shape of CodeDeploy."""
    return list(CODEDEPLOY_MODEL.shape_for(shape).enum)  # type: ignore[attr-defined]


def model_members(shape: str) -> set[str]:
    return set(CODEDEPLOY_MODEL.shape_for(shape).members)  # type: ignore[attr-defined]


def off_model(value: Any, shape: Any, path: str = "$") -> list[str]:
    """Where a JSON answer strays from its botocore output shape: unknown members, values outside
    an enum, an object where the model has none."""
    kind = shape.type_name
    if kind == "structure":
        if not isinstance(value, dict):
            return [f"{path} is not an object"]
        return [
            problem
            for key, item in value.items()
            for problem in (
                off_model(item, shape.members[key], f"{path}.{key}")
                if key in shape.members
                else [f"{path}.{key} is not in the model"]
            )
        ]
    if kind == "list":
        return [p for i, item in enumerate(value) for p in off_model(item, shape.member, f"{path}[{i}]")]
    if kind == "map":
        return [p for k, item in value.items() for p in off_model(item, shape.value, f"{path}.{k}")]
    if kind == "string" and shape.enum and value not in shape.enum:
        return [f"{path} = {value!r} is not one of the model's values"]
    return []


def raw_answers(client: Any, operation: str) -> list[Any]:
    """The JSON bodies ``client`` receives for ``operation`` (before botocore drops unknown members)."""
    bodies: list[Any] = []

    def keep(http_response: Any, **_: Any) -> None:
        bodies.append(json.loads(http_response.content))

    client.meta.events.register(f"after-call.codedeploy.{operation}", keep)
    return bodies


def test_a_failing_alarm_poll_stops_the_deployment_when_ignore_poll_alarm_failure_is_false(
    deployments: Deployments,
) -> None:
    # Source: CD_ALARMS, ignorePollAlarmFailure "false: The deployment stops if alarm status
    # information can't be retrieved from Amazon CloudWatch" (the default).
    outcome, info = deployments.run("Canary10Percent5Minutes", failing_describe_alarms())

    assert (outcome.status, info["status"]) == ("Stopped", "Stopped")
    assert outcome.max_weight == 0.1
    assert alias() == ("1", {})  # rolled back, not left at 10 %
    assert info["errorInformation"]["code"] == "ALARM_ACTIVE"


def test_a_failing_alarm_poll_is_ignored_when_ignore_poll_alarm_failure_is_true(aws: None) -> None:
    # Source: CD_ALARMS, ignorePollAlarmFailure "true: The deployment proceeds even if alarm status
    # information can't be retrieved from Amazon CloudWatch".
    deployments = _deployments(ignore_poll_alarm_failure=True)

    outcome, info = deployments.run("Canary10Percent5Minutes", failing_describe_alarms())

    assert (outcome.status, info["status"]) == ("Succeeded", "Succeeded")
    assert alias() == ("2", {})


def test_a_composite_alarm_in_the_group_stops_the_deployment(deployments: Deployments) -> None:
    # Source: CW_DESCRIBE ("If you omit [AlarmTypes], only metric alarms are returned") and CD_ALARMS:
    # CodeDeploy stops on any of the group's alarms in ALARM, composite ones included.
    cloudwatch = boto3.client("cloudwatch", region_name=REGION)
    deployments.at(
        2, lambda: cloudwatch.set_alarm_state(AlarmName=COMPOSITE, StateValue="ALARM", StateReason="t")
    )

    outcome, info = deployments.run("Canary10Percent5Minutes")

    assert (outcome.status, outcome.failure, outcome.max_weight) == ("Stopped", "alarm", 0.1)
    # botocore model: ErrorCode ALARM_ACTIVE; the message names the activated alarms
    assert info["errorInformation"]["code"] == "ALARM_ACTIVE"
    assert "ALARM_ACTIVE" in model_enum("ErrorCode")
    assert f"<{COMPOSITE}>" in info["errorInformation"]["message"]
    assert alias() == ("1", {})


def test_a_stop_deployment_is_acted_on_at_once(deployments: Deployments) -> None:
    # Source: https://docs.aws.amazon.com/codedeploy/latest/APIReference/API_StopDeployment.html —
    # once the stop succeeded, no more traffic shifts (the linear config would add 10 % a minute).
    codedeploy = boto3.client("codedeploy", region_name=REGION)
    stopped_at: list[datetime] = []

    def stop() -> None:
        (deployment_id,) = [d for d in codedeploy.list_deployments()["deployments"]]
        codedeploy.stop_deployment(deploymentId=deployment_id, autoRollbackEnabled=True)
        stopped_at.append(deployments.scheduler.clock.now())

    deployments.at(2.5, stop)

    outcome, _ = deployments.run("Linear10PercentEvery1Minute")

    shifts = [e.at for e in deployments.events if e.kind == "shift"]
    assert outcome.status == "Stopped" and outcome.failure == "stopped"
    assert all(at <= stopped_at[0] for at in shifts)
    assert outcome.max_weight == 0.3
    assert alias() == ("1", {})


def test_a_rollback_is_a_deployment_linked_both_ways(deployments: Deployments) -> None:
    # Source: botocore model (DeploymentInfo.rollbackInfo: RollbackInfo rollbackDeploymentId,
    # rollbackTriggeringDeploymentId, rollbackMessage; DeploymentInfo.creator: DeploymentCreator
    # codeDeployRollback) and https://docs.aws.amazon.com/codedeploy/latest/APIReference/API_RollbackInfo.html
    cloudwatch = boto3.client("cloudwatch", region_name=REGION)
    deployments.at(
        2, lambda: cloudwatch.set_alarm_state(AlarmName=ERRORS, StateValue="ALARM", StateReason="t")
    )

    outcome, original = deployments.run("Canary10Percent5Minutes")
    codedeploy = boto3.client("codedeploy", region_name=REGION)
    bodies = raw_answers(codedeploy, "GetDeployment")
    rollback = codedeploy.get_deployment(deploymentId=str(outcome.rollback_deployment_id))["deploymentInfo"]
    codedeploy.get_deployment(deploymentId=original["deploymentId"])

    # both answers, as sent, hold only members of the model's GetDeploymentOutput, with valid values
    output = CODEDEPLOY_MODEL.operation_model("GetDeployment").output_shape
    assert len(bodies) == 2
    assert [problem for body in bodies for problem in off_model(body, output)] == []

    assert original["rollbackInfo"]["rollbackDeploymentId"] == outcome.rollback_deployment_id
    assert rollback["rollbackInfo"]["rollbackTriggeringDeploymentId"] == original["deploymentId"]
    assert rollback["rollbackInfo"]["rollbackMessage"]
    assert rollback["creator"] == "codeDeployRollback"
    assert original["creator"] == "user"
    assert set(original["rollbackInfo"]) | set(rollback["rollbackInfo"]) <= model_members("RollbackInfo")
    assert "codeDeployRollback" in model_enum("DeploymentCreator")


def test_get_deployment_group_answers_the_alarm_configuration_it_was_given(aws: None) -> None:
    # Source: https://docs.aws.amazon.com/codedeploy/latest/APIReference/API_DeploymentGroupInfo.html
    # (alarmConfiguration: the alarms, enabled, ignorePollAlarmFailure); moto answered {}.
    _deployments(ignore_poll_alarm_failure=True)

    info = boto3.client("codedeploy", region_name=REGION).get_deployment_group(
        applicationName=GROUP[0], deploymentGroupName=GROUP[1]
    )["deploymentGroupInfo"]

    assert info["alarmConfiguration"] == {
        "enabled": True,
        "ignorePollAlarmFailure": True,
        "alarms": [{"name": ERRORS}, {"name": COMPOSITE}],
    }


def test_linear_ten_percent_reaches_all_traffic_at_nine_increments() -> None:
    # Source: CD_LINEAR ("The percentage of traffic that is shifted at the start of each increment"):
    # 10 % at once, 100 % after 9 N minutes. The SAM guide's "completes in 100 minutes" for
    # Linear10PercentEvery10Minutes is the other reading (docs/fidelity.md).
    steps = traffic_schedule("CodeDeployDefault.LambdaLinear10PercentEvery10Minutes")

    assert (steps[0].offset, steps[0].weight) == (timedelta(0), 0.1)
    assert (steps[-1].offset, steps[-1].weight) == (timedelta(minutes=90), 1.0)


# --- moto extensions: CloudWatch and Lambda -----------------------------------------------------------
def test_put_composite_alarm_starts_in_insufficient_data_and_keeps_the_suppressor(aws: None) -> None:
    # Source: CW_COMPOSITE ("When this operation creates an alarm, the alarm state is immediately set
    # to INSUFFICIENT_DATA"; ActionsSuppressor, ActionsSuppressorWaitPeriod/ExtensionPeriod)
    cloudwatch = boto3.client("cloudwatch", region_name=REGION)
    put_metric_alarm(ERRORS)
    cloudwatch.put_composite_alarm(
        AlarmName=COMPOSITE,
        AlarmRule=f'ALARM("{ERRORS}") OR AT_LEAST(1, NOT_OK, ({ERRORS}))',
        ActionsSuppressor=ERRORS,
        ActionsSuppressorWaitPeriod=60,
        ActionsSuppressorExtensionPeriod=30,
    )

    (alarm,) = cloudwatch.describe_alarms(AlarmNames=[COMPOSITE], AlarmTypes=["CompositeAlarm"])[
        "CompositeAlarms"
    ]
    assert alarm["StateValue"] == "INSUFFICIENT_DATA"
    assert (alarm["ActionsSuppressor"], alarm["ActionsSuppressorWaitPeriod"]) == (ERRORS, 60)
    assert alarm["ActionsSuppressorExtensionPeriod"] == 30
    # Source: CW_DESCRIBE: without AlarmTypes, only metric alarms are returned
    assert cloudwatch.describe_alarms(AlarmNames=[COMPOSITE])["CompositeAlarms"] == []


@pytest.mark.parametrize("rule", ['ALARM("a"', 'ALARMS("a")', 'ALARM("a") AND', "AT_LEAST(x, ALARM, (a))"])
def test_put_composite_alarm_rejects_a_rule_that_does_not_parse(aws: None, rule: str) -> None:
    # Source: CW_COMPOSITE (AlarmRule syntax; an invalid request is a ValidationError)
    with pytest.raises(ClientError) as caught:
        boto3.client("cloudwatch", region_name=REGION).put_composite_alarm(
            AlarmName=COMPOSITE, AlarmRule=rule
        )

    assert caught.value.response["Error"]["Code"] == "ValidationError"


@pytest.mark.parametrize("returning", [("m1", "e1"), ()], ids=["two", "none"])
def test_put_metric_alarm_needs_exactly_one_query_that_returns_data(
    aws: None, returning: tuple[str, ...]
) -> None:
    # Source: CW_QUERY ("When used in PutMetricAlarm, specify True for the one expression result to
    # use as the alarm. For all other metrics and expressions in the same PutMetricAlarm operation,
    # specify ReturnData as False"); ReturnData's default is True.
    metrics: list[Any] = [
        {
            "Id": "m1",
            "MetricStat": {
                "Metric": {"Namespace": "AWS/Lambda", "MetricName": "Errors"},
                "Period": 60,
                "Stat": "Sum",
            },
        },
        {"Id": "e1", "Expression": "m1 * 100"},
    ]
    for query in metrics:
        query["ReturnData"] = query["Id"] in returning
    cloudwatch = boto3.client("cloudwatch", region_name=REGION)

    with pytest.raises(ClientError) as caught:
        cloudwatch.put_metric_alarm(
            AlarmName="errors-percent",
            Metrics=metrics,
            EvaluationPeriods=1,
            Threshold=50,
            ComparisonOperator="GreaterThanThreshold",
        )

    assert caught.value.response["Error"]["Code"] == "ValidationError"
    assert "Exactly one element of the metrics list should return data" in str(caught.value)
    assert cloudwatch.describe_alarms(AlarmNames=["errors-percent"])["MetricAlarms"] == []


@pytest.fixture
def two_versions(aws: None) -> None:
    handler = Version("def handler(event, context):\n    return {}\n")
    function_with_versions(FUNCTION, [handler, Version(handler.source, description="2")], alias=ALIAS)


@pytest.mark.parametrize(
    ("weights", "code"),
    [
        ({"2": 1.5}, "ValidationException"),  # botocore model: Weight is 0.0-1.0
        ({"1": 0.1}, "InvalidParameterValueException"),  # the primary version itself
        ({"9": 0.1}, "ResourceNotFoundException"),  # no such version
        ({"2": 0.1, "3": 0.1}, "InvalidParameterValueException"),  # one additional version at most
    ],
    ids=["weight-above-1", "primary-version", "missing-version", "two-versions"],
)
def test_update_alias_rejects_routing_lambda_rejects(
    two_versions: None, weights: dict[str, float], code: str
) -> None:
    # Source: LAMBDA_UPDATE_ALIAS (errors) and the botocore model (AliasRoutingConfiguration)
    client = boto3.client("lambda", region_name=REGION)

    with pytest.raises(ClientError) as caught:
        client.update_alias(
            FunctionName=FUNCTION, Name=ALIAS, RoutingConfig={"AdditionalVersionWeights": weights}
        )

    assert caught.value.response["Error"]["Code"] == code
    assert alias() == ("1", {})


def test_get_alias_leaves_routing_config_out_when_there_is_none(two_versions: None) -> None:
    # Source: LAMBDA_UPDATE_ALIAS / GetAlias response syntax: RoutingConfig is an object, never null
    answer = boto3.client("lambda", region_name=REGION).get_alias(FunctionName=FUNCTION, Name=ALIAS)

    assert "RoutingConfig" not in answer
