"""Observe mode end to end on moto: a release that enforce mode fails is reported Succeeded,
recorded and alerted as "would have failed", and nothing is stopped or rolled back; a baseline
floor can refuse observe mode (prod's does)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import boto3
import pytest

from deployguard.errors import PolicyError
from deployguard.stages import Stage
from deployguard_cli.commands.policy import effective_view, publish_application, publish_baseline
from deployguard_cli.localaws import moto_cloudwatch, moto_codedeploy, moto_lambda_alias
from tests.support.aws import Topic, fail, make_topic
from tests.support.handlers import FakeLambdaContext, load_handler
from tests.support.outcomes import captured_output, outcome_lines
from tests.support.release import (
    ERRORS_ALARM,
    GOOD_ENV,
    HOOK_ENV,
    POLICY,
    GuardedRelease,
    Release,
    alarm_event,
    post_traffic_policy,
    put_alarm,
    put_version_metrics,
    set_alarm,
)

pytestmark = pytest.mark.usefixtures("aws")

Handler = Callable[[dict[str, Any], Any], dict[str, Any]]
SECRET = "Tr0ub4dor-hunter2-Sup3rSecret-9f8e7d"  # not a known key format: only its value can mask it
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def topic(monkeypatch: pytest.MonkeyPatch) -> Topic:
    """The hooks' environment, with an alert topic whose messages the test reads."""
    moto_cloudwatch.install()
    moto_lambda_alias.install()
    topic = make_topic()
    for key, value in {**HOOK_ENV, "DEPLOYGUARD_ALERT_TOPIC_ARN": topic.arn}.items():
        monkeypatch.setenv(key, value)
    return topic


def observing(policy: dict[str, Any]) -> dict[str, Any]:
    """``policy`` with 'orders' in observe mode."""
    policy = json.loads(json.dumps(policy))
    policy["functions"]["orders"]["mode"] = "observe"
    return policy


def invoke(
    name: str, event: dict[str, Any], context: FakeLambdaContext
) -> tuple[dict[str, Any], dict[str, Any]]:
    with captured_output() as out:
        answer = load_handler(name).handler(event, context)
    (record,) = outcome_lines(out.getvalue())
    return answer, record


def the_alert(topic: Topic) -> dict[str, Any]:
    (envelope,) = topic.messages()
    return envelope


def test_an_environment_mixup_is_reported_succeeded_recorded_and_alerted_as_would_have_failed(
    topic: Topic, lambda_context: FakeLambdaContext
) -> None:
    # GIVEN a staging release whose new version points at prod, with a secret in its environment
    env = {**GOOD_ENV, "DATABASE_URL": "postgres://db.prod.example.com/orders", "DB_PASSWORD": SECRET}
    release = Release(target_env=env, policy=observing(POLICY)).create()

    # WHEN the pre-traffic hook runs in observe mode
    answer, record = invoke("pre_traffic", release.event, lambda_context)

    # THEN CodeDeploy hears Succeeded, and the record and the alert keep the real verdict
    assert release.reports() == ["Succeeded"]
    assert answer["decision"] == "Succeeded"
    assert (record["decision"], record["mode"], record["would_have"]) == ("Succeeded", "observe", "Failed")
    assert record["reason"].startswith("observe mode: would have failed (config:")
    assert "CFG003" in json.dumps(record["checks"])
    alert = the_alert(topic)
    # NOTE: moto's deployment ids are UUIDs, longer than CodeDeploy's d-XXXXXXXXX: the subject is clipped
    assert f"deployment {release.deployment_id} would have failed" in alert["Subject"]
    assert "CFG003" in alert["Message"]
    assert "observe mode: nothing was stopped or rolled back" in alert["Message"]
    assert SECRET not in json.dumps(alert) and SECRET not in json.dumps(record)


def test_a_passing_release_in_observe_mode_is_recorded_and_not_alerted(
    topic: Topic, lambda_context: FakeLambdaContext
) -> None:
    release = Release(policy=observing(POLICY)).create()

    _answer, record = invoke("pre_traffic", release.event, lambda_context)

    assert release.reports() == ["Succeeded"]
    assert (record["mode"], record["would_have"]) == ("observe", "Succeeded")
    assert topic.messages() == []


def test_a_failing_smoke_case_and_an_alarm_after_traffic_change_nothing(
    topic: Topic, lambda_context: FakeLambdaContext
) -> None:
    # GIVEN traffic on version 2, a smoke case it fails and its error alarm in ALARM
    put_alarm(ERRORS_ALARM)
    policy = observing(post_traffic_policy())
    policy["functions"]["orders"]["smoke"][0]["expect"] = [{"path": "$.total", "equals": 13}]
    release = GuardedRelease(policy=policy).create().at_after_allow_traffic()
    put_version_metrics("2", invocations=40)
    set_alarm(ERRORS_ALARM, "ALARM")

    # WHEN the post-traffic hook runs in observe mode
    _answer, record = invoke("post_traffic", release.event, lambda_context)

    # THEN Succeeded is reported (CodeDeploy does not roll back), the alias stays, nothing stops
    assert release.reports() == ["Succeeded"]
    assert release.alias()["FunctionVersion"] == "2"
    assert release.stops() == []
    assert (record["decision"], record["would_have"], record["rolled_back"]) == ("Succeeded", "Failed", False)
    assert "smoke:quote" in record["reason"]
    assert "would have failed" in the_alert(topic)["Subject"]


def test_an_error_once_the_policy_was_read_follows_the_mode(
    topic: Topic, lambda_context: FakeLambdaContext
) -> None:
    # GIVEN an observed release whose alarms cannot be read (DescribeAlarms fails)
    put_alarm(ERRORS_ALARM)
    release = GuardedRelease(policy=observing(post_traffic_policy())).create().at_after_allow_traffic()
    put_version_metrics("2", invocations=40)
    fail("cloudwatch", "DescribeAlarms", "Timeout")

    _answer, record = invoke("post_traffic", release.event, lambda_context)

    # THEN observe mode decides this failure too: Succeeded, recorded as would have failed
    assert release.reports() == ["Succeeded"]
    assert (record["would_have"], record["checks"][0]["name"]) == ("Failed", "policy")
    assert "DescribeAlarms" in record["reason"]


def test_an_alarm_rollback_in_observe_mode_records_and_alerts_what_it_would_have_done(
    topic: Topic, lambda_context: FakeLambdaContext
) -> None:
    # GIVEN a canary mid-shift: live on 1 with 10% on 2, the deployment in flight
    put_alarm(ERRORS_ALARM)
    release = GuardedRelease(policy=observing(post_traffic_policy())).create().mid_canary(0.1)
    before = release.alias()

    # WHEN the new version's error alarm enters ALARM
    time.sleep(0.01)  # NOTE: CloudWatch's timestamps are in milliseconds: strictly after the deployment
    set_alarm(ERRORS_ALARM, "ALARM")
    answer, record = invoke("alarm_rollback", alarm_event(ERRORS_ALARM), lambda_context)

    # THEN no StopDeployment, the alias as it was, and the record and alert say what it would have done
    assert release.stops() == []
    assert release.alias()["RoutingConfig"] == before["RoutingConfig"]
    assert release.alias()["FunctionVersion"] == "1"
    assert moto_codedeploy.stop_requests(release.deployment_id) == []
    assert answer.get("rolled_back", []) == []
    assert (record["mode"], record["would_have"], record["rolled_back"]) == ("observe", "Failed", False)
    assert [a["kind"] for a in record["actions"]] == ["no_action"]
    assert (
        f"observe mode: would have stopped deployment {release.deployment_id} and put alias live back on "
        "version 1; changed nothing" in record["reason"]
    )
    alert = the_alert(topic)
    assert "would have failed" in alert["Subject"]
    assert "would have stopped deployment" in alert["Message"]


# --- the mode in the policy store: per stage, per application, and a floor -------------------------

BUCKET = "deployguard-prod-policies-123456789012-us-east-1"


def write(folder: Path, name: str, document: object) -> Path:
    path = folder / name
    path.write_text(json.dumps(document))
    return path


def application(**extra: Any) -> dict[str, Any]:
    return {
        "version": 1,
        "stage": "prod",
        "application": "orders",
        **extra,
        "functions": {"orders": {"match": "deployguard-prod-orders"}},
    }


def test_the_prod_baseline_refuses_an_application_in_observe_mode(tmp_path: Path) -> None:
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket=BUCKET)
    publish_baseline(s3, BUCKET, Stage.PROD, REPO / "policies/prod/baseline.yaml")

    with pytest.raises(PolicyError) as caught:
        publish_application(
            s3, BUCKET, Stage.PROD, "orders", write(tmp_path, "o.json", application(mode="observe"))
        )

    assert "functions.orders.mode: 'observe' is weaker than the baseline's floor mode: 'enforce'" in str(
        caught.value
    )
    assert s3.list_objects_v2(Bucket=BUCKET, Prefix="prod/apps/").get("KeyCount") == 0


def test_policy_show_gives_the_mode_and_where_it_comes_from(tmp_path: Path) -> None:
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket=BUCKET)
    baseline = {"version": 1, "stage": "prod", "defaults": {"mode": "observe"}}
    publish_baseline(s3, BUCKET, Stage.PROD, write(tmp_path, "baseline.json", baseline))
    publish_application(s3, BUCKET, Stage.PROD, "orders", write(tmp_path, "o.json", application()))

    shown = effective_view(s3, BUCKET, Stage.PROD, "orders")
    origins = {item["path"]: (item["value"], item["origin"]) for item in shown["values"]}
    assert origins["functions.orders.mode"] == ("observe", "baseline default")

    publish_application(
        s3, BUCKET, Stage.PROD, "orders", write(tmp_path, "o.json", application(mode="enforce"))
    )
    shown = effective_view(s3, BUCKET, Stage.PROD, "orders")
    origins = {item["path"]: (item["value"], item["origin"]) for item in shown["values"]}
    assert origins["functions.orders.mode"] == ("enforce", "application")
