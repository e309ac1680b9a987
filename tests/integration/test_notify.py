"""Alerts through SNS on moto, read back from an SQS subscription: one short summary per failed or
rolled-back deployment, published after the status is reported, never failing the guard."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import boto3
import pytest
from moto import mock_aws

from deployguard import entrypoints
from deployguard.appspec import DeploymentTarget
from deployguard.aws.sns import Sns
from deployguard.findings import CheckResult, Decision, Finding, Result, Severity
from deployguard.hook import Evaluation, HookRun
from deployguard.notify import SUBJECT_MAX, Alert, alert_for, notify
from deployguard.outcome import Action, ActionKind, OutcomeRecord, Role
from deployguard.secrets import Redactor
from deployguard.settings import HookSettings, SettingsError
from tests.support.aws import Topic, make_topic
from tests.support.handlers import FakeLambdaContext, load_handler
from tests.support.outcomes import FakeCodeDeploy, captured_output, guard_event, json_lines, rollback_record

TARGET = DeploymentTarget(function_name="orders", alias="live", current_version="1", target_version="2")
SECRET = "hunter2-Sup3rSecret"


@pytest.fixture
def moto(aws_env: None) -> Iterator[None]:
    """SNS and SQS on moto (the CodeDeploy side is a fake here: only the publishing is under test)."""
    with mock_aws():
        entrypoints.reset()
        yield
    entrypoints.reset()


@pytest.fixture
def topic(moto: None) -> Topic:
    return make_topic()


def publisher(topic: Topic) -> Sns:
    return Sns(lambda: boto3.client("sns"), topic.arn)


@dataclass
class Ordered:
    """Wraps a publisher to note when it is called, next to the fake CodeDeploy's reports."""

    inner: Sns
    events: list[str]

    def publish(self, alert: Alert) -> None:
        self.events.append(f"publish {alert.kind}")
        self.inner.publish(alert)


def failing(run: HookRun) -> Evaluation:
    return Evaluation(
        checks=[
            CheckResult(
                name="config",
                result=Result.FAILED,
                message="1 error(s), 0 warning(s)",
                findings=[
                    Finding(
                        code="SEC002",
                        severity=Severity.ERROR,
                        subject="DB_PASSWORD",
                        message=f"DB_PASSWORD holds a plaintext secret ({SECRET})",
                    )
                ],
            )
        ],
        target=TARGET,
        redactor=Redactor.for_environment({"DB_PASSWORD": SECRET}),
    )


def passing(run: HookRun) -> Evaluation:
    return Evaluation(checks=[CheckResult(name="config", result=Result.PASSED)], target=TARGET)


def guard(
    evaluate: Callable[[HookRun], Evaluation], codedeploy: FakeCodeDeploy, alerts: Any
) -> OutcomeRecord:
    return guard_event(evaluate, codedeploy, alerts=alerts)


def test_a_failed_deployment_is_reported_first_then_alerted_once(topic: Topic) -> None:
    codedeploy = FakeCodeDeploy()

    guard(failing, codedeploy, Ordered(publisher(topic), codedeploy.events))

    assert codedeploy.events == ["report Failed", "publish failed"]
    (envelope,) = topic.messages()
    assert (
        envelope["Subject"]
        == "DeployGuard: orders (prod) deployment d-ABCDEF123 failed at BeforeAllowTraffic"
    )
    body = envelope["Message"]
    assert "What failed:\n- config (failed): 1 error(s), 0 warning(s)" in body
    assert "SEC002 DB_PASSWORD: DB_PASSWORD holds a plaintext secret (***)" in body
    assert "- reported Failed to CodeDeploy" in body
    assert "alias live stays on version 1" in body
    assert body.endswith("The whole story: deployguard report d-ABCDEF123")
    assert SECRET not in json.dumps(envelope)
    attributes = {k: v["Value"] for k, v in envelope["MessageAttributes"].items()}
    assert attributes == {
        "deployment_id": "d-ABCDEF123",
        "stage": "prod",
        "function": "orders",
        "outcome": "failed",
    }


def test_a_passing_or_retried_hook_sends_nothing(topic: Topic) -> None:
    guard(passing, FakeCodeDeploy(), publisher(topic))
    guard(failing, FakeCodeDeploy(already="Failed"), publisher(topic))

    assert topic.messages() == []


def test_a_publishing_error_is_logged_and_the_guard_carries_on(moto: None) -> None:
    codedeploy = FakeCodeDeploy()
    missing = Sns(lambda: boto3.client("sns"), "arn:aws:sns:us-east-1:123456789012:no-such-topic")

    with captured_output() as out:
        record = guard(failing, codedeploy, missing)

    assert record.decision is Decision.FAILED
    assert codedeploy.reports == [("d-ABCDEF123", "exec-1", Decision.FAILED)]
    (warning,) = [
        line for line in json_lines(out.getvalue()) if line.get("message") == "outcome alert not published"
    ]
    assert warning["level"] == "WARNING"
    assert warning["error_type"] == "AwsCallError"
    assert warning["deployment_id"] == "d-ABCDEF123"


def test_an_alarm_rollback_alert(topic: Topic) -> None:
    record = rollback_record(alarm_to_restore_ms=2300)

    notify(record, publisher(topic))

    (envelope,) = topic.messages()
    assert envelope["Subject"] == "DeployGuard: orders (prod) deployment d-ABCDEF123 rolled back"
    assert "Alarm: orders-errors went to ALARM." in envelope["Message"]
    assert "Result: alias live is back on version 1, 2.3 s after the alarm." in envelope["Message"]


def test_a_fifo_topic_gets_a_group_and_a_deduplication_id(moto: None) -> None:
    topic = make_topic("deployguard-alerts", fifo=True)
    record = OutcomeRecord(
        role=Role.POST_TRAFFIC,
        hook="AfterAllowTraffic",
        deployment_id="d-ABCDEF123",
        decision=Decision.FAILED,
        actions=[Action(kind=ActionKind.STATUS_REPORTED, detail="Failed")],
    )

    notify(record, publisher(topic))
    notify(record, publisher(topic))  # a duplicate is dropped by the topic

    assert [e["Subject"] for e in topic.messages()] == [
        "DeployGuard: function deployment d-ABCDEF123 rolled back"
    ]


def test_the_subject_fits_sns_whatever_the_function_name() -> None:
    record = OutcomeRecord(
        role=Role.POST_TRAFFIC,
        hook="AfterAllowTraffic",
        stage="staging",
        deployment_id="d-ABCDEF123",
        function_name="arn:aws:lambda:us-east-1:123456789012:function:"
        + "very-long-function-name-" * 3
        + "\u00e9",
        decision=Decision.FAILED,
        actions=[Action(kind=ActionKind.STATUS_REPORTED, detail="Failed")],
    )

    alert = alert_for(record)

    assert alert is not None
    assert len(alert.subject) <= SUBJECT_MAX < 100
    assert alert.subject.isascii() and "\n" not in alert.subject
    assert alert.subject.endswith("... (staging) deployment d-ABCDEF123 rolled back")
    assert alert.subject.startswith("DeployGuard: very-long-function-name-very-long")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, None),
        ("", None),
        (
            "arn:aws:sns:eu-west-1:123456789012:deployguard-alerts",
            "arn:aws:sns:eu-west-1:123456789012:deployguard-alerts",
        ),
        ("arn:aws:sns:eu-west-1:123456789012:alerts.fifo", "arn:aws:sns:eu-west-1:123456789012:alerts.fifo"),
    ],
)
def test_the_topic_setting_is_optional(value: str | None, expected: str | None) -> None:
    environ = {
        "DEPLOYGUARD_STAGE": "prod",
        "DEPLOYGUARD_POLICY_BUCKET": "deployguard-prod-policies-123456789012-us-east-1",
    }
    if value is not None:
        environ["DEPLOYGUARD_ALERT_TOPIC_ARN"] = value

    assert HookSettings.from_environ(environ).alert_topic_arn == expected
    assert (entrypoints.alerts_for(HookSettings.from_environ(environ)) is None) is (expected is None)


def test_a_malformed_topic_setting_names_the_variable() -> None:
    environ = {
        "DEPLOYGUARD_STAGE": "prod",
        "DEPLOYGUARD_POLICY_BUCKET": "deployguard-prod-policies-123456789012-us-east-1",
        "DEPLOYGUARD_ALERT_TOPIC_ARN": "deployguard-alerts",
    }

    with pytest.raises(SettingsError, match="DEPLOYGUARD_ALERT_TOPIC_ARN"):
        HookSettings.from_environ(environ)


# --- the real pre-traffic handler (moto CodeDeploy extension) ------------------------------------


@pytest.mark.usefixtures("aws")
def test_the_pre_traffic_handler_alerts_a_failed_deployment(
    monkeypatch: pytest.MonkeyPatch, lambda_context: FakeLambdaContext
) -> None:
    from tests.support.release import GOOD_ENV, HOOK_ENV, Release

    topic = make_topic()
    for key, value in {**HOOK_ENV, "DEPLOYGUARD_ALERT_TOPIC_ARN": topic.arn}.items():
        monkeypatch.setenv(key, value)
    release = Release(target_env={**GOOD_ENV, "STAGE": "prod", "DB_PASSWORD": SECRET}).create()

    with captured_output():
        answer = load_handler("pre_traffic").handler(release.event, lambda_context)

    assert answer["decision"] == "Failed"
    assert release.reports() == ["Failed"]
    (envelope,) = topic.messages()
    assert envelope["Subject"].startswith(
        f"DeployGuard: orders (staging) deployment {release.deployment_id} failed"
    )
    assert f"deployguard report {release.deployment_id}" in envelope["Message"]
    assert "CFG002" in envelope["Message"]
    assert SECRET not in json.dumps(envelope)
