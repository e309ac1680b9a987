"""The bake window: the post-traffic hook starts it, the bake step polls until the window ends or a
check blocks, and reports exactly one status.

Two tiers:
- the bake step's handler in process, on moto, with a controllable clock (every poll of a
  10-minute window without waiting 10 minutes);
- statemachine/bake.asl.json executed by moto's Step Functions interpreter behind a threaded moto
  server, its Task invoking the real functions/bake_step code in a subprocess that calls back into
  the same moto (NOTE: an in-process ``mock_aws`` cannot do this: the function's own AWS calls
  would have nowhere to go).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest

from deployguard import entrypoints
from deployguard_cli.localaws import lambda_runner, moto_cloudwatch, moto_codedeploy, moto_lambda_alias
from tests.support.aws import FAILURES, ROLE_POLICY, fail
from tests.support.handlers import ROOT, FakeLambdaContext, load_event, load_handler
from tests.support.outcomes import captured_output, json_lines, outcome_lines
from tests.support.release import (
    ERRORS_ALARM,
    HOOK_ENV,
    GuardedRelease,
    post_traffic_policy,
    put_alarm,
    put_version_metrics,
    set_alarm,
)

Handler = Callable[[dict[str, Any], Any], dict[str, Any]]
BAKE = {"minutes": 10, "poll_seconds": 60}


@dataclass
class Clock:
    """The clock of the hook and the bake step, moved by the test."""

    at: datetime

    def __call__(self) -> datetime:
        return self.at

    def advance(self, seconds: float) -> None:
        self.at += timedelta(seconds=seconds)


# --- tier 1: the bake step in process, with a controllable clock ---------------------------------


@pytest.fixture
def clock(aws: None, monkeypatch: pytest.MonkeyPatch) -> Clock:
    moto_cloudwatch.install()
    moto_lambda_alias.install()
    for key, value in HOOK_ENV.items():
        monkeypatch.setenv(key, value)
    role = boto3.client("iam").create_role(RoleName="bake", AssumeRolePolicyDocument=ROLE_POLICY)["Role"][
        "Arn"
    ]
    machine = boto3.client("stepfunctions").create_state_machine(
        name="deployguard-staging-bake",
        definition=json.dumps({"StartAt": "Done", "States": {"Done": {"Type": "Succeed"}}}),
        roleArn=role,
    )["stateMachineArn"]
    monkeypatch.setenv("DEPLOYGUARD_BAKE_STATE_MACHINE_ARN", machine)
    fake = Clock(datetime.now(UTC))
    monkeypatch.setattr(entrypoints, "now", fake)
    put_alarm(ERRORS_ALARM)
    return fake


@pytest.fixture
def bake_step() -> Handler:
    return load_handler("bake_step").handler  # type: ignore[no-any-return]


def start_bake(release: GuardedRelease, context: FakeLambdaContext) -> dict[str, Any]:
    """Run the post-traffic hook; the input it gave the bake workflow."""
    with captured_output():
        load_handler("post_traffic").handler(release.event, context)
    sfn = boto3.client("stepfunctions")
    (machine,) = sfn.list_state_machines()["stateMachines"]
    (execution,) = sfn.list_executions(stateMachineArn=machine["stateMachineArn"])["executions"]
    state: dict[str, Any] = json.loads(
        sfn.describe_execution(executionArn=execution["executionArn"])["input"]
    )
    return state


def poll(bake_step: Handler, state: dict[str, Any], context: FakeLambdaContext) -> tuple[dict[str, Any], str]:
    with captured_output() as out:
        answer = bake_step(state, context)
    return answer, out.getvalue()


def bake_until_done(
    bake_step: Handler,
    state: dict[str, Any],
    clock: Clock,
    context: FakeLambdaContext,
    *,
    each: Callable[[int], None] | None = None,
) -> tuple[dict[str, Any], str, int]:
    """What the workflow does: wait wait_seconds, poll, until the verdict is done."""
    polls = 0
    while state["verdict"] == "continue":
        clock.advance(state["wait_seconds"])
        if each is not None:
            each(polls)
        state, output = poll(bake_step, state, context)
        polls += 1
        assert polls < 100, "the bake never ends"
    return state, output, polls


@pytest.fixture
def baking(clock: Clock, lambda_context: FakeLambdaContext) -> tuple[GuardedRelease, dict[str, Any]]:
    release = GuardedRelease(policy=post_traffic_policy(bake=BAKE)).create().at_after_allow_traffic()
    put_version_metrics("2", invocations=3)  # too few to judge yet
    return release, start_bake(release, lambda_context)


def test_a_healthy_bake_polls_until_the_window_ends_then_reports_succeeded(
    baking: tuple[GuardedRelease, dict[str, Any]],
    bake_step: Handler,
    clock: Clock,
    lambda_context: FakeLambdaContext,
) -> None:
    # GIVEN a 10-minute bake polled every minute, traffic arriving as it goes
    release, state = baking
    assert release.reports() == []

    # WHEN the workflow polls until the bake step says done
    final, output, polls = bake_until_done(
        bake_step, state, clock, lambda_context, each=lambda n: put_version_metrics("2", invocations=5)
    )

    # THEN it took one poll a minute, reported Succeeded once, and recorded every check
    assert polls == 10
    assert release.reports() == ["Succeeded"]
    assert (final["verdict"], final["decision"], final["polls"]) == ("done", "Succeeded", 10)
    (record,) = outcome_lines(output)
    assert record["role"] == "bake" and record["hook"] == "AfterAllowTraffic"
    assert [c["name"] for c in record["checks"]] == ["smoke:quote", "policy", "alarms", "version-health"]
    assert record["checks"][-1]["result"] == "passed"


def test_inconclusive_polls_keep_baking_and_the_policy_settles_the_last(
    clock: Clock, bake_step: Handler, lambda_context: FakeLambdaContext
) -> None:
    policy = post_traffic_policy(bake=BAKE)
    policy["functions"]["orders"]["version_health"]["inconclusive"] = "fail"
    release = GuardedRelease(policy=policy).create().at_after_allow_traffic()
    state = start_bake(release, lambda_context)

    _final, output, polls = bake_until_done(bake_step, state, clock, lambda_context)

    assert polls == 10  # no traffic: inconclusive until the end, never an early failure
    assert release.reports() == ["Failed"]
    assert "VH003" in json.dumps(outcome_lines(output)[0]["checks"])


def test_an_alarm_mid_bake_fails_at_the_next_poll(
    baking: tuple[GuardedRelease, dict[str, Any]],
    bake_step: Handler,
    clock: Clock,
    lambda_context: FakeLambdaContext,
) -> None:
    release, state = baking

    def fire_at_the_fourth_poll(n: int) -> None:
        if n == 3:
            set_alarm(ERRORS_ALARM, "ALARM")

    final, output, polls = bake_until_done(
        bake_step, state, clock, lambda_context, each=fire_at_the_fourth_poll
    )

    assert polls == 4
    assert release.reports() == ["Failed"]
    assert final["decision"] == "Failed"
    assert "ALM001" in json.dumps(outcome_lines(output)[0]["checks"])


def test_the_polls_cost_a_describe_and_a_metric_call_each(
    baking: tuple[GuardedRelease, dict[str, Any]],
    bake_step: Handler,
    clock: Clock,
    lambda_context: FakeLambdaContext,
) -> None:
    from tests.support.aws import counted_calls

    _release, state = baking
    clock.advance(state["wait_seconds"])
    with counted_calls() as calls:
        poll(bake_step, state, lambda_context)

    assert calls.count("DescribeAlarms") == 1
    assert calls.count("GetMetricData") == 1


def test_a_deployment_stopped_mid_bake_ends_the_bake_without_a_status(
    baking: tuple[GuardedRelease, dict[str, Any]],
    bake_step: Handler,
    clock: Clock,
    lambda_context: FakeLambdaContext,
) -> None:
    release, state = baking
    moto_codedeploy.set_deployment_status(release.deployment_id, "Stopped")

    final, output, polls = bake_until_done(bake_step, state, clock, lambda_context)

    assert (polls, final["verdict"], final["decision"]) == (1, "done", None)
    assert release.reports() == []
    (record,) = outcome_lines(output)
    assert record["actions"][0]["kind"] == "no_action"
    assert "the deployment is Stopped" in record["reason"]


def test_a_bypass_added_mid_bake_reports_succeeded_at_once_and_is_audited(
    baking: tuple[GuardedRelease, dict[str, Any]],
    bake_step: Handler,
    clock: Clock,
    lambda_context: FakeLambdaContext,
) -> None:
    # GIVEN an alarm firing mid-bake, and the on-call adds a bypass for this deployment (a hot fix)
    release, state = baking
    set_alarm(ERRORS_ALARM, "ALARM")
    bypass = {
        "deployment_id": release.deployment_id,
        "reason": "hot fix for INC-9 shipping now",
        "approved_by": "oncall",
    }
    release.publish_policy(post_traffic_policy(bake=BAKE, bypass=bypass))
    entrypoints.policy_store.cache_clear()

    final, output, polls = bake_until_done(bake_step, state, clock, lambda_context)

    assert (polls, final["decision"]) == (1, "Succeeded")
    assert release.reports() == ["Succeeded"]
    (record,) = outcome_lines(output)
    assert record["bypass"] == {"reason": "hot fix for INC-9 shipping now", "approved_by": "oncall"}
    assert any(
        line.get("message") == "checks bypassed by policy" and line["level"] == "WARNING"
        for line in json_lines(output)
    )


def test_the_workflows_catch_reports_failed_once(
    baking: tuple[GuardedRelease, dict[str, Any]], bake_step: Handler, lambda_context: FakeLambdaContext
) -> None:
    release, state = baking
    failing = {"action": "fail", "state": {**state, "error": {"Error": "States.Timeout", "Cause": "…"}}}

    answer, output = poll(bake_step, failing, lambda_context)
    again, _ = poll(bake_step, failing, lambda_context)  # Step Functions retried the Catch's task

    assert release.reports() == ["Failed"]
    assert answer["decision"] == again["decision"] == "Failed"
    (record,) = outcome_lines(output)
    assert "the bake workflow failed (States.Timeout)" in record["reason"]


def test_invalid_settings_still_report_failed(
    baking: tuple[GuardedRelease, dict[str, Any]],
    bake_step: Handler,
    lambda_context: FakeLambdaContext,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    release, state = baking
    monkeypatch.setenv("DEPLOYGUARD_STAGE", "qa")

    answer, output = poll(bake_step, state, lambda_context)

    assert release.reports() == ["Failed"]
    assert answer["decision"] == "Failed"
    (record,) = outcome_lines(output)
    assert "DEPLOYGUARD_STAGE" in record["reason"]
    assert record["checks"][-1]["name"] == "SettingsError"


def test_a_malformed_state_with_its_ids_reports_failed_and_without_is_logged(
    baking: tuple[GuardedRelease, dict[str, Any]], bake_step: Handler, lambda_context: FakeLambdaContext
) -> None:
    release, state = baking

    answer, output = poll(bake_step, {"polls": "many"}, lambda_context)
    assert answer["verdict"] == "done" and release.reports() == []
    assert any(line.get("message") == "malformed bake state" for line in json_lines(output))

    poll(
        bake_step,
        {k: state[k] for k in ("deployment_id", "lifecycle_event_hook_execution_id")},
        lambda_context,
    )
    assert release.reports() == ["Failed"]


@pytest.mark.parametrize("failure", list(FAILURES))
@pytest.mark.parametrize(
    ("service", "operation"),
    [
        ("codedeploy", "GetDeployment"),
        ("ssm", "GetParameter"),
        ("cloudwatch", "DescribeAlarms"),
        ("cloudwatch", "GetMetricData"),
    ],
)
def test_each_aws_call_of_a_poll_failing_ends_in_exactly_one_failed(
    baking: tuple[GuardedRelease, dict[str, Any]],
    bake_step: Handler,
    clock: Clock,
    lambda_context: FakeLambdaContext,
    service: str,
    operation: str,
    failure: str,
) -> None:
    release, state = baking
    entrypoints.policy_store.cache_clear()  # a cold start: the policy is read again
    fail(service, operation, failure)

    _final, output, _ = bake_until_done(bake_step, state, clock, lambda_context)

    assert release.reports() == ["Failed"]
    assert operation in outcome_lines(output)[0]["reason"]


def test_a_report_that_cannot_be_delivered_raises_for_the_workflows_retry_and_catch(
    baking: tuple[GuardedRelease, dict[str, Any]],
    bake_step: Handler,
    clock: Clock,
    lambda_context: FakeLambdaContext,
) -> None:
    release, state = baking
    set_alarm(ERRORS_ALARM, "ALARM")
    fail("codedeploy", "PutLifecycleEventHookExecutionStatus", "Timeout")
    clock.advance(60)

    with captured_output(), pytest.raises(Exception, match="PutLifecycleEventHookExecutionStatus failed"):
        bake_step(state, lambda_context)

    assert release.reports() == []


def test_the_sample_event_is_a_bake_state() -> None:
    from deployguard.bake import BakeState

    state = BakeState.model_validate(load_event("bake_step.json"))
    assert state.window.poll_seconds == 60 and state.target.target_version == "2"


# --- tier 2: the state machine itself, executed by moto, over the real bake step ------------------

DEFINITION = ROOT / "statemachine" / "bake.asl.json"
BAKE_STEP = "deployguard-staging-bake-step"


@dataclass
class Workflow:
    endpoint: str
    state_machine_arn: str

    def run(self, state: dict[str, Any], *, timeout: float = 90) -> dict[str, Any]:
        sfn = boto3.client("stepfunctions")
        arn = sfn.start_execution(stateMachineArn=self.state_machine_arn, input=json.dumps(state))[
            "executionArn"
        ]
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            execution: dict[str, Any] = dict(sfn.describe_execution(executionArn=arn))
            if execution["status"] != "RUNNING":
                return execution
            time.sleep(0.2)
        raise AssertionError("the bake workflow did not finish")


def deploy_workflow(bake_step_zip: bytes) -> str:
    iam, lam = boto3.client("iam"), boto3.client("lambda")
    role = iam.create_role(RoleName="bake-step", AssumeRolePolicyDocument=ROLE_POLICY)["Role"]["Arn"]
    function_arn = lam.create_function(
        FunctionName=BAKE_STEP,
        Runtime="python3.12",
        Role=role,
        Handler="app.handler",
        Code={"ZipFile": bake_step_zip},
        Timeout=60,
        Environment={"Variables": HOOK_ENV},
    )["FunctionArn"]
    definition = DEFINITION.read_text().replace("${BakeStepFunctionArn}", function_arn)
    return str(
        boto3.client("stepfunctions").create_state_machine(
            name="deployguard-staging-bake", definition=definition, roleArn=role, type="STANDARD"
        )["stateMachineArn"]
    )


@pytest.fixture
def moto_server(aws_env: None, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    from moto.core.config import default_user_config
    from moto.server import ThreadedMotoServer

    monkeypatch.setitem(default_user_config, "lambda", {"use_docker": False})
    monkeypatch.setitem(default_user_config, "stepfunctions", {"execute_state_machine": True})
    for extension in (moto_codedeploy, lambda_runner, moto_cloudwatch, moto_lambda_alias):
        extension.install()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    _, port = server.get_host_and_port()
    endpoint = f"http://127.0.0.1:{port}"
    monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint)  # every boto3 client of this process
    monkeypatch.setenv("MOTO_PORT", str(port))  # where moto's Step Functions sends its Lambda calls
    entrypoints.reset()
    try:
        yield endpoint
    finally:
        import urllib.request

        urllib.request.urlopen(urllib.request.Request(f"{endpoint}/moto-api/reset", method="POST"))
        server.stop()
        entrypoints.reset()


def short_bake(release: GuardedRelease, *, seconds: int) -> dict[str, Any]:
    """The input the hook would give the workflow, for a bake of ``seconds`` polled every second."""
    now = datetime.now(UTC)
    started = boto3.client("codedeploy").get_deployment(deploymentId=release.deployment_id)["deploymentInfo"][
        "createTime"
    ]
    return {
        "deployment_id": release.deployment_id,
        "lifecycle_event_hook_execution_id": release.execution_id,
        "stage": "staging",
        "target": {"function_name": "orders", "alias": "live", "current_version": "1", "target_version": "2"},
        "deployment_started_at": started.isoformat(),
        "window": {
            "started_at": now.isoformat(),
            "until": (now + timedelta(seconds=seconds)).isoformat(),
            "poll_seconds": 1,
        },
        "alarm_names": [ERRORS_ALARM],
        "verdict": "continue",
        "wait_seconds": 1,
    }


@pytest.fixture
def workflow(moto_server: str) -> Workflow:
    return Workflow(
        moto_server, deploy_workflow(lambda_runner.zip_directory(ROOT / "functions" / "bake_step"))
    )


@pytest.fixture
def released(moto_server: str) -> GuardedRelease:
    put_alarm(ERRORS_ALARM)
    release = GuardedRelease(policy=post_traffic_policy(bake=BAKE)).create().at_after_allow_traffic()
    put_version_metrics("2", invocations=40)
    return release


def test_the_state_machine_waits_polls_and_the_step_reports_succeeded(
    workflow: Workflow, released: GuardedRelease
) -> None:
    execution = workflow.run(short_bake(released, seconds=3))

    assert execution["status"] == "SUCCEEDED"
    output = json.loads(execution["output"])
    assert (output["verdict"], output["decision"]) == ("done", "Succeeded")
    assert output["polls"] >= 2  # waited and polled more than once
    assert released.reports() == ["Succeeded"]


def test_the_state_machine_stops_at_the_first_poll_that_sees_an_alarm(
    workflow: Workflow, released: GuardedRelease
) -> None:
    set_alarm(ERRORS_ALARM, "ALARM")

    execution = workflow.run(short_bake(released, seconds=30))

    assert json.loads(execution["output"])["polls"] == 1
    assert released.reports() == ["Failed"]


def test_a_crashing_poll_is_caught_and_the_workflow_still_reports_failed(
    moto_server: str, released: GuardedRelease
) -> None:
    # GIVEN a bake step whose poll crashes (one edit of the real code); its 'fail' action works
    crashing = lambda_runner.zip_directory(
        ROOT / "functions" / "bake_step",
        replacements={
            "app.py": (
                "    return bake_step(event, context, os.environ)",
                "    if event.get('action') != 'fail':\n"
                "        raise RuntimeError('the poll crashed')\n"
                "    return bake_step(event, context, os.environ)",
            )
        },
    )
    workflow = Workflow(moto_server, deploy_workflow(crashing))

    execution = workflow.run(short_bake(released, seconds=30))

    assert execution["status"] == "SUCCEEDED"
    assert json.loads(execution["output"])["decision"] == "Failed"
    assert released.reports() == ["Failed"]


def test_the_definition_stays_within_the_hook_deadline() -> None:
    definition = json.loads(DEFINITION.read_text())
    assert definition["TimeoutSeconds"] < 3600
    assert definition["States"]["Poll"]["Catch"][0]["Next"] == "ReportFailed"
    assert definition["States"]["Wait"]["SecondsPath"] == "$.wait_seconds"
    assert Path(DEFINITION).read_text().count("${BakeStepFunctionArn}") == 2
