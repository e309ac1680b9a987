"""The post-traffic hook (AfterAllowTraffic) end to end on moto: real versions behind the live
alias, a real CodeDeploy deployment, real alarms and per-version metrics, the real handler. Every
path ends in exactly one status, or a started bake workflow that will report it."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from deployguard import entrypoints
from deployguard.bake import execution_name
from deployguard_cli.localaws import lambda_runner, moto_cloudwatch, moto_codedeploy, moto_lambda_alias
from tests.support.aws import FAILURES, fail
from tests.support.handlers import FakeLambdaContext, load_event, load_handler
from tests.support.outcomes import RecordingPublisher, captured_output, emf_lines, json_lines, outcome_lines
from tests.support.release import (
    COMPOSITE_ALARM,
    ERRORS_ALARM,
    GOOD_ENV,
    HOOK_ENV,
    TEAM_TAG,
    THROTTLES_ALARM,
    GuardedRelease,
    post_traffic_policy,
    put_alarm,
    put_composite_alarm,
    put_version_metrics,
    set_alarm,
)

pytestmark = pytest.mark.usefixtures("aws")

Handler = Callable[[dict[str, Any], Any], dict[str, Any]]
BAKE_DEFINITION = json.dumps({"StartAt": "Done", "States": {"Done": {"Type": "Succeed"}}})


@pytest.fixture(autouse=True)
def moto_extensions(aws: None) -> None:
    moto_cloudwatch.install()
    moto_lambda_alias.install()


@pytest.fixture
def state_machine(aws: None, monkeypatch: pytest.MonkeyPatch) -> str:
    """A bake state machine in moto (not executed here: test_bake_workflow runs the real one)."""
    role = boto3.client("iam").create_role(
        RoleName="bake-role", AssumeRolePolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": []})
    )["Role"]["Arn"]
    arn = boto3.client("stepfunctions").create_state_machine(
        name="deployguard-staging-bake", definition=BAKE_DEFINITION, roleArn=role, type="STANDARD"
    )["stateMachineArn"]
    monkeypatch.setenv("DEPLOYGUARD_BAKE_STATE_MACHINE_ARN", arn)
    return arn


@pytest.fixture
def handler(monkeypatch: pytest.MonkeyPatch, state_machine: str) -> Handler:
    for key, value in HOOK_ENV.items():
        monkeypatch.setenv(key, value)
    return load_handler("post_traffic").handler  # type: ignore[no-any-return]


def call(handler: Handler, release: GuardedRelease, context: FakeLambdaContext) -> tuple[dict[str, Any], str]:
    """Run the hook; its one outcome record and everything it logged."""
    with captured_output() as out:
        handler(release.event, context)
    (record,) = outcome_lines(out.getvalue())
    return record, out.getvalue()


def checks_of(record: dict[str, Any]) -> dict[str, str]:
    return {check["name"]: check["result"] for check in record["checks"]}


@pytest.fixture
def alarms(aws: None) -> None:
    put_alarm(ERRORS_ALARM)
    put_alarm(THROTTLES_ALARM, metric="Throttles")


# --- decided at once (bake.minutes: 0) -------------------------------------------------------------


@pytest.mark.usefixtures("alarms")
def test_a_healthy_release_succeeds_after_smoke_alarms_and_version_health(
    handler: Handler, lambda_context: FakeLambdaContext
) -> None:
    # GIVEN traffic on version 2 at 100%, quiet alarms and 40 clean invocations of version 2
    release = GuardedRelease().create().at_after_allow_traffic()
    put_version_metrics("2", invocations=40, errors=1)

    # WHEN CodeDeploy invokes the AfterAllowTraffic hook
    record, _ = call(handler, release, lambda_context)

    # THEN it reports Succeeded once, with every check in the record
    assert release.reports() == ["Succeeded"]
    assert checks_of(record) == {
        "policy": "passed",
        "smoke:quote": "passed",
        "alarms": "passed",
        "version-health": "passed",
    }
    assert record["hook"] == "AfterAllowTraffic" and record["role"] == "post_traffic"
    assert "2 alarm(s) watched" in record["checks"][2]["message"]
    assert "error rate 2.5% (1 of 40)" in record["checks"][3]["message"]


@pytest.mark.usefixtures("alarms")
def test_an_alarm_that_entered_alarm_after_the_deployment_started_fails_it(
    handler: Handler, lambda_context: FakeLambdaContext
) -> None:
    release = GuardedRelease().create().at_after_allow_traffic()
    put_version_metrics("2", invocations=40)
    set_alarm(ERRORS_ALARM, "ALARM")

    record, _ = call(handler, release, lambda_context)

    assert release.reports() == ["Failed"]
    (finding,) = record["checks"][2]["findings"]
    assert (finding["code"], finding["subject"]) == ("ALM001", ERRORS_ALARM)
    assert record["rolled_back"] is True  # Failed after traffic shifted: CodeDeploy rolls back
    assert any(
        line["_aws"]["CloudWatchMetrics"][0]["Metrics"][0]["Name"] == "Rollbacks" for line in emf_lines(_)
    )


@pytest.mark.parametrize(
    ("pre_existing", "reported", "result"), [("report", "Succeeded", "warned"), ("block", "Failed", "failed")]
)
def test_an_alarm_already_in_alarm_before_the_deployment_is_judged_by_the_policy(
    handler: Handler, lambda_context: FakeLambdaContext, pre_existing: str, reported: str, result: str
) -> None:
    # GIVEN an alarm that went to ALARM before the deployment started (the old version's trouble)
    put_alarm(ERRORS_ALARM, state="ALARM")
    policy = post_traffic_policy(alarms={"select": {"names": [ERRORS_ALARM]}, "pre_existing": pre_existing})
    release = GuardedRelease(policy=policy).create().at_after_allow_traffic()
    put_version_metrics("2", invocations=40)

    record, _ = call(handler, release, lambda_context)

    assert release.reports() == [reported]
    alarms = record["checks"][2]
    assert alarms["result"] == result
    assert alarms["findings"][0]["code"] == "ALM002"
    assert f"before the deployment started (pre_existing: {pre_existing})" in alarms["findings"][0]["message"]


def test_a_composite_alarm_selected_by_tag_is_watched(
    handler: Handler, lambda_context: FakeLambdaContext
) -> None:
    put_alarm(ERRORS_ALARM)
    put_composite_alarm(COMPOSITE_ALARM, f'ALARM("{ERRORS_ALARM}")', tags=TEAM_TAG)
    policy = post_traffic_policy(alarms={"select": {"tags": TEAM_TAG}})
    release = GuardedRelease(policy=policy).create().at_after_allow_traffic()
    put_version_metrics("2", invocations=40)
    set_alarm(COMPOSITE_ALARM, "ALARM")

    record, _ = call(handler, release, lambda_context)

    assert release.reports() == ["Failed"]
    assert "composite alarm orders-health entered ALARM" in record["checks"][2]["findings"][0]["message"]


def test_a_named_alarm_that_does_not_exist_fails_with_the_fix(
    handler: Handler, lambda_context: FakeLambdaContext
) -> None:
    policy = post_traffic_policy(alarms={"select": {"names": ["orders-typo"]}})
    release = GuardedRelease(policy=policy).create().at_after_allow_traffic()
    put_version_metrics("2", invocations=40)

    record, _ = call(handler, release, lambda_context)

    assert release.reports() == ["Failed"]
    assert "alarm orders-typo named in alarms.select.names does not exist" in record["reason"]


@pytest.mark.usefixtures("alarms")
@pytest.mark.parametrize(
    ("metrics", "reported", "code"),
    [
        ({"invocations": 40, "errors": 4}, "Failed", "VH001"),
        ({"invocations": 40, "throttles": 2}, "Failed", "VH002"),
        ({"invocations": 40, "errors": 2}, "Succeeded", None),
    ],
)
def test_per_version_errors_and_throttles_against_the_thresholds(
    handler: Handler,
    lambda_context: FakeLambdaContext,
    metrics: dict[str, float],
    reported: str,
    code: str | None,
) -> None:
    release = GuardedRelease().create().at_after_allow_traffic()
    put_version_metrics("2", **metrics)

    record, _ = call(handler, release, lambda_context)

    assert release.reports() == [reported]
    assert [f["code"] for f in record["checks"][3]["findings"]] == ([code] if code else [])


@pytest.mark.usefixtures("alarms")
def test_the_old_versions_errors_do_not_count_against_the_new_one(
    handler: Handler, lambda_context: FakeLambdaContext
) -> None:
    release = GuardedRelease().create().at_after_allow_traffic()
    put_version_metrics("1", invocations=100, errors=100)
    put_version_metrics("2", invocations=40)

    _record, _ = call(handler, release, lambda_context)

    assert release.reports() == ["Succeeded"]


@pytest.mark.usefixtures("alarms")
@pytest.mark.parametrize(
    ("inconclusive", "reported", "result"),
    [("pass", "Succeeded", "inconclusive"), ("fail", "Failed", "failed")],
)
def test_too_few_invocations_is_inconclusive_and_the_policy_decides(
    handler: Handler, lambda_context: FakeLambdaContext, inconclusive: str, reported: str, result: str
) -> None:
    policy = post_traffic_policy()
    policy["functions"]["orders"]["version_health"]["inconclusive"] = inconclusive
    release = GuardedRelease(policy=policy).create().at_after_allow_traffic()
    put_version_metrics("2", invocations=3, errors=1)

    record, _ = call(handler, release, lambda_context)

    assert release.reports() == [reported]
    health = record["checks"][3]
    assert health["result"] == result
    assert "3 invocation(s), fewer than min_invocations 10" in health["message"]


@pytest.mark.usefixtures("alarms")
def test_a_failing_smoke_test_on_the_alias_fails_before_watching(
    handler: Handler, lambda_context: FakeLambdaContext
) -> None:
    policy = post_traffic_policy()
    policy["functions"]["orders"]["smoke"][0]["expect"][0]["equals"] = 13
    release = GuardedRelease(policy=policy).create().at_after_allow_traffic()

    record, _ = call(handler, release, lambda_context)

    assert release.reports() == ["Failed"]
    assert list(checks_of(record)) == ["policy", "smoke:quote"]


@pytest.mark.usefixtures("alarms")
def test_a_bypass_is_explicit_logged_at_warning_and_audited(
    handler: Handler, lambda_context: FakeLambdaContext
) -> None:
    release = GuardedRelease().create().at_after_allow_traffic()
    set_alarm(ERRORS_ALARM, "ALARM")
    policy = post_traffic_policy(
        bypass={
            "deployment_id": release.deployment_id,
            "reason": "hot fix for INC-7 while the error alarm fires",
            "approved_by": "oncall@example.com",
        }
    )
    release.publish_policy(policy)

    record, output = call(handler, release, lambda_context)

    assert release.reports() == ["Succeeded"]
    assert record["bypass"] == {
        "reason": "hot fix for INC-7 while the error alarm fires",
        "approved_by": "oncall@example.com",
    }
    (warning,) = [line for line in json_lines(output) if line.get("message") == "checks bypassed by policy"]
    assert warning["level"] == "WARNING"
    assert warning["correlation_id"] == release.deployment_id
    assert warning["approved_by"] == "oncall@example.com"


# --- a bake window: the workflow is started and reports later ------------------------------------


@pytest.mark.usefixtures("alarms")
def test_a_bake_window_starts_the_workflow_and_reports_nothing_yet(
    handler: Handler, lambda_context: FakeLambdaContext, state_machine: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    publisher = RecordingPublisher()
    monkeypatch.setattr(entrypoints, "alerts_for", lambda _settings: publisher)
    release = GuardedRelease(policy=post_traffic_policy(bake={"minutes": 10, "poll_seconds": 60})).create()
    release.at_after_allow_traffic()

    record, _ = call(handler, release, lambda_context)

    assert release.reports() == []
    assert publisher.alerts == []  # a bake under way is no news
    assert record.get("decision") is None  # the logger leaves out null keys
    (action,) = record["actions"]
    assert action["kind"] == "bake_started"
    sfn = boto3.client("stepfunctions")
    (execution,) = sfn.list_executions(stateMachineArn=state_machine)["executions"]
    assert execution["executionArn"] == action["detail"]
    document = json.loads(sfn.describe_execution(executionArn=execution["executionArn"])["input"])
    assert document["verdict"] == "continue"
    # one poll interval plus the deployment's own phase, so that bakes opened together do not poll in step
    phase = int(hashlib.sha256(release.deployment_id.encode()).hexdigest()[:8], 16) % 60
    assert document["wait_seconds"] == 60 + phase
    # the state carries ids, the window and counters: each poll resolves the rest from CodeDeploy
    state = document["state"]
    assert set(state) == {
        "deployment_id",
        "lifecycle_event_hook_execution_id",
        "window",
        "polls",
        "prior_checks",
    }
    assert (state["deployment_id"], state["lifecycle_event_hook_execution_id"]) == (
        release.deployment_id,
        release.execution_id,
    )
    assert execution["name"] == execution_name(release.deployment_id, release.execution_id)
    assert [c["name"] for c in state["prior_checks"]] == ["smoke:quote"]


@pytest.mark.usefixtures("alarms")
def test_a_retried_hook_finds_the_bake_it_started(
    handler: Handler, lambda_context: FakeLambdaContext, state_machine: str
) -> None:
    release = GuardedRelease(policy=post_traffic_policy(bake={"minutes": 10, "poll_seconds": 60})).create()
    release.at_after_allow_traffic()
    call(handler, release, lambda_context)

    record, _ = call(handler, release, lambda_context)

    assert release.reports() == []
    assert record["actions"][0]["kind"] == "bake_started"
    assert (
        len(boto3.client("stepfunctions").list_executions(stateMachineArn=state_machine)["executions"]) == 1
    )


@pytest.mark.usefixtures("alarms")
def test_a_bake_without_a_state_machine_fails_naming_the_variable(
    handler: Handler, lambda_context: FakeLambdaContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("DEPLOYGUARD_BAKE_STATE_MACHINE_ARN")
    release = GuardedRelease(policy=post_traffic_policy(bake={"minutes": 10, "poll_seconds": 60})).create()
    release.at_after_allow_traffic()

    record, _ = call(handler, release, lambda_context)

    assert release.reports() == ["Failed"]
    assert "DEPLOYGUARD_BAKE_STATE_MACHINE_ARN is not set" in record["reason"]


@pytest.mark.usefixtures("alarms")
def test_a_firing_alarm_fails_at_once_instead_of_baking(
    handler: Handler, lambda_context: FakeLambdaContext
) -> None:
    release = GuardedRelease(policy=post_traffic_policy(bake={"minutes": 10, "poll_seconds": 60})).create()
    release.at_after_allow_traffic()
    set_alarm(THROTTLES_ALARM, "ALARM")

    call(handler, release, lambda_context)

    assert release.reports() == ["Failed"]


# --- a deployment that has already ended ----------------------------------------------------------


@pytest.mark.usefixtures("alarms")
@pytest.mark.parametrize("status", ["Stopped", "Failed"])
def test_a_deployment_already_ended_by_a_rollback_gets_no_status_and_no_checks(
    handler: Handler, lambda_context: FakeLambdaContext, monkeypatch: pytest.MonkeyPatch, status: str
) -> None:
    # GIVEN the alarm rollback stopped the deployment (the alias is back on 1) before the hook ran
    publisher = RecordingPublisher()
    monkeypatch.setattr(entrypoints, "alerts_for", lambda _settings: publisher)
    release = GuardedRelease().create().at_after_allow_traffic()
    put_version_metrics("2", invocations=40)
    moto_codedeploy.set_deployment_status(release.deployment_id, status)
    invocations = len(lambda_runner.invocations())

    with captured_output() as out:
        answer = handler(release.event, lambda_context)

    # THEN nothing is reported (CodeDeploy takes no status now), nothing invoked, and the record
    # says so instead of "Succeeded"
    (record,) = outcome_lines(out.getvalue())
    assert release.reports() == []
    assert answer["decision"] is None and record.get("decision") is None
    assert f"the deployment is {status}: no status reported" in record["reason"]
    assert [(a["kind"], a["detail"]) for a in record["actions"]] == [("no_action", f"deployment {status}")]
    assert len(lambda_runner.invocations()) == invocations
    # AND someone is told: the hook could not do its job
    (alert,) = publisher.alerts
    assert alert.kind == "ended"
    assert f"deployment {release.deployment_id} ended (no status)" in alert.subject
    assert f"the deployment is {status}: no status reported" in alert.message


def test_codedeploy_takes_no_status_for_a_deployment_that_has_ended() -> None:
    release = GuardedRelease(policy=None).create().at_after_allow_traffic()
    boto3.client("codedeploy").stop_deployment(deploymentId=release.deployment_id, autoRollbackEnabled=True)

    with pytest.raises(ClientError, match="LifecycleEventAlreadyCompletedException"):
        boto3.client("codedeploy").put_lifecycle_event_hook_execution_status(
            deploymentId=release.deployment_id,
            lifecycleEventHookExecutionId=release.execution_id,
            status="Succeeded",
        )


# --- the record and the alert of a new version whose error quotes a secret ----------------------

SECRET = "bluebird-orchard-42"  # no key format, low entropy: only its value can find it
QUOTES_ITS_PASSWORD = """
import os

def handler(event, context):
    raise RuntimeError("cannot connect: password " + os.environ["DB_PASSWORD"] + " was refused")
"""


def test_a_secret_quoted_by_the_new_versions_error_never_leaves_the_hook(
    handler: Handler, lambda_context: FakeLambdaContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN version 2 (live on the alias) fails its smoke test with an error quoting DB_PASSWORD
    publisher = RecordingPublisher()
    monkeypatch.setattr(entrypoints, "alerts_for", lambda _settings: publisher)
    release = GuardedRelease(target_code=QUOTES_ITS_PASSWORD, target_env={**GOOD_ENV, "DB_PASSWORD": SECRET})
    release.create().at_after_allow_traffic()

    with captured_output() as out:
        answer = handler(release.event, lambda_context)

    # THEN it fails, and no 8 characters of the password are in the log, the answer or the alert
    assert release.reports() == ["Failed"]
    assert "the function raised RuntimeError" in outcome_lines(out.getvalue())[0]["reason"]
    (alert,) = publisher.alerts
    for text in (out.getvalue(), json.dumps(answer), alert.subject, alert.message):
        assert not any(SECRET[i : i + 8] in text for i in range(len(SECRET) - 7)), text


# --- every AWS call failing in turn ---------------------------------------------------------------

CALLS = [
    ("codedeploy", "ListDeploymentTargets"),
    ("codedeploy", "GetDeploymentTarget"),
    ("codedeploy", "GetDeployment"),
    ("codedeploy", "GetApplicationRevision"),
    ("s3", "GetObject"),
    ("lambda", "GetFunctionConfiguration"),
    ("lambda", "Invoke"),
    ("cloudwatch", "DescribeAlarms"),
    ("tagging", "GetResources"),
    ("cloudwatch", "GetMetricData"),
    ("stepfunctions", "StartExecution"),
]


@pytest.mark.usefixtures("alarms")
@pytest.mark.parametrize("failure", list(FAILURES))
@pytest.mark.parametrize(("service", "operation"), CALLS)
def test_each_aws_call_failing_still_ends_in_exactly_one_failed(
    handler: Handler, lambda_context: FakeLambdaContext, service: str, operation: str, failure: str
) -> None:
    # GIVEN a bake (so StartExecution runs) over alarms chosen by prefix and by tag
    policy = post_traffic_policy(
        bake={"minutes": 10, "poll_seconds": 60},
        alarms={"select": {"prefixes": ["orders-new-version-"], "tags": TEAM_TAG}},
    )
    release = GuardedRelease(policy=policy).create().at_after_allow_traffic()
    put_version_metrics("2", invocations=40)
    fail("resourcegroupstaggingapi" if service == "tagging" else service, operation, failure)

    record, _ = call(handler, release, lambda_context)

    assert release.reports() == ["Failed"]
    assert operation in record["reason"]


def test_a_status_that_cannot_be_delivered_raises_so_lambda_retries(
    handler: Handler, lambda_context: FakeLambdaContext
) -> None:
    release = GuardedRelease(policy=post_traffic_policy(alarms=None, version_health=None)).create()
    release.at_after_allow_traffic()
    fail("codedeploy", "PutLifecycleEventHookExecutionStatus", "Timeout")

    with (
        captured_output() as out,
        pytest.raises(Exception, match="PutLifecycleEventHookExecutionStatus failed"),
    ):
        handler(release.event, lambda_context)

    (record,) = outcome_lines(out.getvalue())
    assert release.reports() == []
    assert record["actions"][-1]["ok"] is False


def test_the_sample_event_is_a_hook_event() -> None:
    event = load_event("post_traffic_hook.json")
    assert set(event) == {"DeploymentId", "LifecycleEventHookExecutionId"}
