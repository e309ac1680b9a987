"""The alarm rollback function end to end on moto: an EventBridge alarm state change event, a
canary mid-shift (alias with routing weights), a real CodeDeploy deployment, the real handler.

The alarm is really in ALARM in CloudWatch (``fire``): the rollback reads it back before it
trusts the event. Forged, stale and malformed events, an operator's newer change, a later
release, failures at every step, a deadline and the redaction of what is written are each tried."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from deployguard import entrypoints
from deployguard.alarm_rollback import RollbackError, RollbackPorts, handle_alarm_event
from deployguard.appspec import DeploymentTarget, render_appspec
from deployguard.errors import DeployGuardError
from deployguard.outcome import OutcomeRecord
from deployguard.stages import Stage
from deployguard_cli.localaws import moto_cloudwatch, moto_codedeploy, moto_lambda_alias
from tests.support.aws import FAILURES, counted_calls, fail, put_metric_alarm, start_deployment
from tests.support.handlers import FakeLambdaContext, load_event, load_handler
from tests.support.outcomes import RecordingPublisher, captured_output, emf_lines, json_lines, outcome_lines
from tests.support.release import (
    APPLICATION,
    COMPOSITE_ALARM,
    ERRORS_ALARM,
    GOOD_ENV,
    GROUP,
    HOOK_ENV,
    TEAM_TAG,
    GuardedRelease,
    alarm_event,
    post_traffic_policy,
    put_alarm,
    put_composite_alarm,
    set_alarm,
    someone_moves_the_alias_first,
)
from tests.tools.transform import load_template, transformed

Handler = Callable[[dict[str, Any], Any], dict[str, Any]]
Invoke = Callable[[dict[str, Any]], tuple[dict[str, Any], str]]
SECRET = "Tr0ub4dor-hunter2-Sup3rSecret-9f8e7d"  # not a known key format: only its value can mask it


@pytest.fixture
def handler(aws: None, monkeypatch: pytest.MonkeyPatch) -> Handler:
    moto_cloudwatch.install()
    moto_lambda_alias.install()
    for key, value in HOOK_ENV.items():
        monkeypatch.setenv(key, value)
    put_alarm(ERRORS_ALARM)
    return load_handler("alarm_rollback").handler  # type: ignore[no-any-return]


@pytest.fixture
def invoke(handler: Handler, lambda_context: FakeLambdaContext) -> Invoke:
    def go(event: dict[str, Any]) -> tuple[dict[str, Any], str]:
        with captured_output() as out:
            answer = handler(event, lambda_context)
        return answer, out.getvalue()

    return go


@dataclass
class Run:
    """One alarm rollback through the use case, with the alerts it published."""

    records: list[OutcomeRecord]
    error: Exception | None
    output: str
    alerts: RecordingPublisher

    def record(self) -> dict[str, Any]:
        (record,) = outcome_lines(self.output)
        return record


Rollback = Callable[..., Run]


@pytest.fixture
def rollback(handler: Handler) -> Rollback:
    """The use case with the real adapters and a recording alert publisher."""

    def go(event: dict[str, Any], *, seconds_left: Callable[[], float] | None = None) -> Run:
        ports = RollbackPorts(
            codedeploy=entrypoints.codedeploy_adapter(),
            functions=entrypoints.lambda_adapter(),
            alarms=entrypoints.alarms_adapter(),
            policy=entrypoints.policy_store(HOOK_ENV["DEPLOYGUARD_POLICY_BUCKET"], 0),
        )
        alerts, records, error = RecordingPublisher(), [], None
        with captured_output() as out:
            try:
                records = handle_alarm_event(
                    event,
                    ports,
                    stage=Stage.STAGING,
                    clock=entrypoints.now,
                    alerts=alerts,
                    **({"seconds_left": seconds_left} if seconds_left is not None else {}),
                )
            except DeployGuardError as exc:
                error = exc
        return Run(records=records, error=error, output=out.getvalue(), alerts=alerts)

    return go


def fire(name: str = ERRORS_ALARM, **event: Any) -> dict[str, Any]:
    """The alarm enters ALARM in CloudWatch now (after what was set up before), and its event."""
    time.sleep(0.01)  # NOTE: CloudWatch's timestamps are in milliseconds: strictly after the deployment
    set_alarm(name, "ALARM")
    return alarm_event(name, **event)


def the_record(output: str) -> dict[str, Any]:
    (record,) = outcome_lines(output)
    return record


def kinds(record: dict[str, Any]) -> list[tuple[str, bool]]:
    return [(a["kind"], a["ok"]) for a in record["actions"]]


def warnings(output: str) -> list[dict[str, Any]]:
    return [line for line in json_lines(output) if line.get("level") == "WARNING"]


def publish_version(description: str) -> str:
    """A new version of orders (its configuration changed)."""
    lam = boto3.client("lambda")
    lam.update_function_configuration(FunctionName="orders", Description=description)
    return str(lam.publish_version(FunctionName="orders")["Version"])


def deploy(current: str, target: str) -> str:
    """Another deployment of orders:live to the same group."""
    appspec = render_appspec(
        DeploymentTarget(function_name="orders", alias="live", current_version=current, target_version=target)
    )
    return start_deployment(APPLICATION, GROUP, appspec)


def point_alias(version: str, weights: dict[str, float] | None = None) -> None:
    boto3.client("lambda").update_alias(
        FunctionName="orders",
        Name="live",
        FunctionVersion=version,
        RoutingConfig={"AdditionalVersionWeights": weights or {}},
    )


# --- the rollback --------------------------------------------------------------------------------


def test_an_alarm_during_a_canary_stops_the_deployment_and_restores_the_alias_at_once(invoke: Invoke) -> None:
    # GIVEN a canary: live serves 1 with 10% on 2, the deployment in flight
    release = GuardedRelease().create().mid_canary(0.1)

    # WHEN the new version's error alarm enters ALARM
    answer, output = invoke(fire())

    # THEN the deployment is stopped with rollback, live is back on 1 alone, and it is recorded
    assert release.stops() == [True]
    alias = release.alias()
    assert alias["FunctionVersion"] == "1"
    assert not alias.get("RoutingConfig", {}).get("AdditionalVersionWeights")
    record = the_record(output)
    assert kinds(record) == [("deployment_stopped", True), ("alias_restored", True)]
    assert record["rolled_back"] is True
    assert (record["alarm_name"], record["deployment_id"], record["function_name"]) == (
        ERRORS_ALARM,
        release.deployment_id,
        "orders",
    )
    assert (record["current_version"], record["target_version"], record["alias"]) == ("1", "2", "live")
    assert 0 <= record["alarm_to_restore_ms"] < 60_000
    metrics = {
        m["Name"] for line in emf_lines(output) for m in line["_aws"]["CloudWatchMetrics"][0]["Metrics"]
    }
    assert {"Rollbacks", "AlarmToRestoreTime"} <= metrics
    assert answer["rolled_back"] == ["orders"]


def test_the_canary_hot_path_reads_the_alarm_and_the_release_before_it_acts(invoke: Invoke) -> None:
    GuardedRelease().create().mid_canary(0.1)
    invoke(alarm_event(at=datetime.now(UTC) - timedelta(days=1)))  # warms the policy cache; no action

    with counted_calls() as calls:
        invoke(fire())

    # NOTE: the function's deployguard:stage tag (its scope: ListTags) is read on a thread of its own
    # while the release is looked up
    assert calls.count("ListTags") == 1 and calls.index("ListTags") < calls.index("GetAlias")
    assert [c for c in calls if c != "ListTags"] == [
        "DescribeAlarms",  # the event is not trusted: the alarm is read back
        "ListDeployments",  # the policy's deployment_group: one group, not the account
        "GetDeployment",  # the release's versions (AppSpec): the alias must still have its shape
        "GetApplicationRevision",
        "GetAlias",
        "StopDeployment",
        "UpdateAlias",
    ]
    # a record of DeployGuard's own sentences needs no version's environment to be redacted
    assert "GetFunctionConfiguration" not in calls


def test_a_duplicate_event_takes_no_second_action(invoke: Invoke) -> None:
    release = GuardedRelease().create().mid_canary(0.1)
    event = fire()
    invoke(event)
    revision = release.alias()["RevisionId"]

    with counted_calls() as calls:
        _answer, output = invoke(event)

    assert release.stops() == [True]
    assert release.alias()["RevisionId"] == revision
    assert "UpdateAlias" not in calls and "StopDeployment" not in calls
    record = the_record(output)
    assert kinds(record) == [("no_action", True)]
    assert "live is already on version 1 alone" in record["reason"]
    assert record["rolled_back"] is False


def test_an_alarm_older_than_the_deployment_touches_nothing(invoke: Invoke) -> None:
    # GIVEN the alarm entered ALARM before this deployment was created (its event delivered late)
    set_alarm(ERRORS_ALARM, "ALARM")
    release = GuardedRelease().create().mid_canary(0.1)

    _answer, output = invoke(alarm_event())  # NOTE: dated now; CloudWatch's own time decides

    assert release.stops() == []
    assert release.alias()["RoutingConfig"]["AdditionalVersionWeights"] == {"2": 0.1}
    assert kinds(the_record(output)) == [("no_action", True)]


def test_an_alarm_back_to_ok_is_ignored(invoke: Invoke) -> None:
    release = GuardedRelease().create().mid_canary(0.1)

    _answer, output = invoke(alarm_event(state="OK"))

    assert release.stops() == []
    assert outcome_lines(output) == []


def test_an_alias_changed_meanwhile_is_not_overwritten(invoke: Invoke) -> None:
    # GIVEN someone moves the alias between DeployGuard's GetAlias and UpdateAlias
    release = GuardedRelease().create().mid_canary(0.1)
    someone_moves_the_alias_first("2")

    # WHEN the alarm fires
    _answer, output = invoke(fire())

    # THEN the newer change stands, and the record and a warning say so
    assert release.alias()["FunctionVersion"] == "2"
    record = the_record(output)
    restore = record["actions"][-1]
    assert (restore["kind"], restore["ok"]) == ("alias_restored", False)
    assert "changed after it was read" in restore["detail"] and "not overwritten" in restore["detail"]
    (warning,) = [
        line
        for line in json_lines(output)
        if line.get("message") == "alias changed since it was read; not overwritten"
    ]
    assert warning["level"] == "WARNING"


def test_an_alarm_unrelated_to_any_guarded_function_takes_no_action(invoke: Invoke) -> None:
    release = GuardedRelease().create().mid_canary(0.1)
    event = alarm_event(
        "payments-errors", dimensions={"FunctionName": "payments", "Resource": "payments:live"}
    )

    with counted_calls() as calls:
        answer, output = invoke(event)

    assert release.stops() == []
    assert outcome_lines(output) == []
    assert answer["rolled_back"] == []
    assert [
        c for c in calls if c not in ("GetObject", "ListObjectsV2")
    ] == []  # not even read back: no policy entry could select it


def test_a_selected_alarm_on_another_function_is_not_this_functions(invoke: Invoke) -> None:
    # GIVEN an alarm whose name the orders prefix selects but whose dimensions name another function
    release = GuardedRelease().create().mid_canary(0.1)
    put_metric_alarm("orders-new-version-payments", dimensions={"FunctionName": "payments"})

    _answer, output = invoke(fire("orders-new-version-payments"))

    assert release.stops() == []
    assert outcome_lines(output) == []


def test_without_a_deployment_in_flight_it_records_no_action(invoke: Invoke) -> None:
    release = GuardedRelease().create()
    moto_codedeploy.set_deployment_status(release.deployment_id, "Succeeded")

    _answer, output = invoke(fire())

    record = the_record(output)
    assert kinds(record) == [("no_action", True)]
    assert record["reason"] == f"{ERRORS_ALARM} in ALARM, but no deployment of orders was in flight"


def test_a_recently_finished_release_is_rolled_back_when_the_policy_allows(invoke: Invoke) -> None:
    # GIVEN the release finished (live on 2 alone) and the policy rolls back releases of the last 10 minutes
    policy = post_traffic_policy()
    policy["rollback"] = {"recent_minutes": 10}
    release = GuardedRelease(policy=policy).create().at_after_allow_traffic()
    moto_codedeploy.set_deployment_status(release.deployment_id, "Succeeded")

    _answer, output = invoke(fire())

    # THEN live goes back to the AppSpec's CurrentVersion; nothing to stop
    assert release.alias()["FunctionVersion"] == "1"
    assert release.stops() == []
    assert kinds(the_record(output)) == [("alias_restored", True)]


def test_at_100_percent_the_previous_version_comes_from_the_appspec(invoke: Invoke) -> None:
    release = GuardedRelease().create().at_after_allow_traffic()

    _answer, output = invoke(fire())

    assert release.stops() == [True]
    assert release.alias()["FunctionVersion"] == "1"
    assert the_record(output)["rolled_back"] is True


def test_without_a_deployment_group_it_searches_the_account(invoke: Invoke) -> None:
    release = GuardedRelease(policy=post_traffic_policy(deployment_group=None)).create().mid_canary(0.2)

    invoke(fire())

    assert release.stops() == [True]
    assert release.alias()["FunctionVersion"] == "1"


def test_a_composite_alarm_selected_by_tag_rolls_back_the_function_it_guards(invoke: Invoke) -> None:
    put_composite_alarm(COMPOSITE_ALARM, f'ALARM("{ERRORS_ALARM}")', tags=TEAM_TAG)
    policy = post_traffic_policy(alarms={"select": {"tags": TEAM_TAG}})
    release = GuardedRelease(policy=policy).create().mid_canary(0.1)

    invoke(fire(COMPOSITE_ALARM, composite=True))

    assert release.stops() == [True]
    assert release.alias()["FunctionVersion"] == "1"


def test_a_bypass_skips_the_rollback_explicitly_is_recorded_and_alerts(rollback: Rollback) -> None:
    release = GuardedRelease().create().mid_canary(0.1)
    release.publish_policy(
        post_traffic_policy(
            bypass={
                "deployment_id": release.deployment_id,
                "reason": "hot fix for INC-7 while the error alarm fires",
                "approved_by": "oncall@example.com",
            }
        )
    )

    run = rollback(fire())

    assert release.stops() == []
    record = run.record()
    assert record["bypass"]["approved_by"] == "oncall@example.com"
    assert "rollback bypassed by policy" in record["reason"]
    assert any(
        line.get("message") == "checks bypassed by policy" and line["level"] == "WARNING"
        for line in json_lines(run.output)
    )
    (alert,) = run.alerts.alerts  # every bypass alerts
    assert alert.kind == "bypassed"
    assert (
        alert.subject
        == f"DeployGuard: orders (staging) deployment {release.deployment_id} bypassed by policy"
    )
    assert (
        "Bypass: hot fix for INC-7 while the error alarm fires (approved by oncall@example.com)"
        in alert.message
    )


def test_the_sample_event_parses() -> None:
    from deployguard.alarm_rollback import parse_alarm_event

    alarm = parse_alarm_event(load_event("alarm_state_change.json"))

    assert (alarm.alarm_name, alarm.state, alarm.composite) == (ERRORS_ALARM, "ALARM", False)
    assert alarm.dimensions == {"FunctionName": "orders", "Resource": "orders:live", "ExecutedVersion": "2"}
    assert alarm.changed_at == datetime(2026, 3, 2, 17, 4, 40, 989000, tzinfo=UTC)


# --- forged, stale and malformed events ------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "dated", "why"),
    [
        ("orders-new-version-ghost", timedelta(0), "no alarm orders-new-version-ghost exists"),
        ("orders-new-version-ghost", timedelta(days=365), "after now"),
        (ERRORS_ALARM, timedelta(days=365), "after now"),
    ],
    ids=["no-such-alarm", "no-such-alarm-a-year-ahead", "real-alarm-a-year-ahead"],
)
def test_a_forged_event_changes_nothing_and_says_why(
    invoke: Invoke, name: str, dated: timedelta, why: str
) -> None:
    # GIVEN a healthy canary: no alarm is in ALARM
    release = GuardedRelease().create().mid_canary(0.1)

    # WHEN someone invokes the function directly with a made-up alarm event
    _answer, output = invoke(alarm_event(name, at=datetime.now(UTC) + dated))

    # THEN the deployment goes on, the alias is untouched, and the record and a WARNING say why
    assert release.stops() == []
    assert release.alias()["RoutingConfig"]["AdditionalVersionWeights"] == {"2": 0.1}
    record = the_record(output)
    assert kinds(record) == [("no_action", True)]
    assert (
        record["reason"].startswith("alarm event not trusted, nothing was changed:")
        and why in record["reason"]
    )
    assert record.get("deployment_id") is None and record["rolled_back"] is False
    assert any(line["message"] == "alarm rollback: no action" for line in warnings(output))


def test_an_event_naming_a_tagged_alarm_in_resources_but_another_alarm_by_name_changes_nothing(
    invoke: Invoke,
) -> None:
    # GIVEN the policy selects alarms by tag, and a tagged alarm that is in ALARM
    put_alarm("orders-latency", tags=TEAM_TAG, state="ALARM")
    release = GuardedRelease(policy=post_traffic_policy(alarms={"select": {"tags": TEAM_TAG}})).create()
    release.mid_canary(0.1)
    # WHEN an event names the tagged alarm's ARN in resources[0] and an unrelated alarm by name
    event = alarm_event("orders-latency")
    event["detail"]["alarmName"] = "unrelated-team-alarm"

    _answer, output = invoke(event)

    assert release.stops() == []
    assert "is not the alarm it names (unrelated-team-alarm)" in the_record(output)["reason"]


def test_a_stale_event_of_an_alarm_back_to_ok_changes_nothing(invoke: Invoke) -> None:
    release = GuardedRelease().create().mid_canary(0.1)
    event = fire()
    set_alarm(ERRORS_ALARM, "OK")  # it recovered before the event was handled

    _answer, output = invoke(event)

    assert release.stops() == []
    assert "is OK now, not in ALARM (the event is stale)" in the_record(output)["reason"]


def test_the_alarms_own_dimensions_decide_not_the_events(invoke: Invoke) -> None:
    # GIVEN an alarm the orders prefix selects, which really watches payments
    release = GuardedRelease().create().mid_canary(0.1)
    put_metric_alarm("orders-new-version-payments", dimensions={"FunctionName": "payments"})

    # WHEN its event claims it watches orders' new version
    _answer, output = invoke(
        fire(
            "orders-new-version-payments",
            dimensions={"FunctionName": "orders", "Resource": "orders:live", "ExecutedVersion": "2"},
        )
    )

    assert release.stops() == []
    assert outcome_lines(output) == []


def test_a_malformed_event_is_recorded_logged_and_not_retried(invoke: Invoke) -> None:
    event = alarm_event()
    event["detail"]["configuration"] = ["not", "an", "object"]

    answer, output = invoke(event)

    assert "detail.configuration must be an object" in answer["error"]
    assert any(
        line.get("message") == "malformed alarm event" and line["level"] == "ERROR"
        for line in json_lines(output)
    )
    assert "detail.configuration must be an object" in the_record(output)["reason"]


def test_an_event_of_another_kind_is_not_an_alarm_event(invoke: Invoke) -> None:
    answer, _output = invoke({"detail-type": "Something Else", "detail": {}})

    assert "not a 'CloudWatch Alarm State Change'" in answer["error"]


def test_invalid_settings_leave_a_record_naming_the_variable_and_raise_for_a_retry(
    handler: Handler, lambda_context: FakeLambdaContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    release = GuardedRelease().create().mid_canary(0.1)
    monkeypatch.setenv("DEPLOYGUARD_POLICY_BUCKET", "Not_A_Bucket")

    with captured_output() as out, pytest.raises(DeployGuardError, match="DEPLOYGUARD_POLICY_BUCKET"):
        handler(fire(), lambda_context)

    assert release.stops() == []
    record = the_record(out.getvalue())
    assert (record["role"], record["stage"]) == ("alarm_rollback", "staging")
    assert "DEPLOYGUARD_POLICY_BUCKET" in record["reason"]
    assert [(c["name"], c["result"]) for c in record["checks"]] == [("SettingsError", "error")]
    assert kinds(record) == [("no_action", False)]


# --- never worse: an operator's change, a later release, the version the alarm concerns -------------


def test_an_operators_newer_change_of_the_alias_is_left_alone(rollback: Rollback) -> None:
    # GIVEN deployment 1 -> 2 in flight (live on 1 + 10% on 2), and an operator's hotfix canary:
    # live on 1 + 20% on 3
    release = GuardedRelease().create().mid_canary(0.1)
    hotfix = publish_version("hotfix")
    point_alias("1", {hotfix: 0.2})

    # WHEN version 2's alarm fires
    run = rollback(fire())

    # THEN neither the alias nor the deployment is touched, and the record says why
    assert release.alias()["RoutingConfig"]["AdditionalVersionWeights"] == {hotfix: 0.2}
    assert release.stops() == []
    record = run.record()
    assert kinds(record) == [("no_action", True)]
    assert "the alias live no longer carries version 2" in record["reason"]
    assert "an operator's newer change, not overwritten" in record["reason"]
    assert run.error is None


def test_a_revert_is_not_undone_by_the_alarm_of_the_release_it_reverted(rollback: Rollback) -> None:
    # GIVEN D1 1 -> 2 (bad) finished, its function-level alarm fired, then D2 2 -> 3 (the revert) finished
    policy = post_traffic_policy()
    policy["rollback"] = {"recent_minutes": 10}
    put_metric_alarm("orders-new-version-function-errors", dimensions={"FunctionName": "orders"})
    release = GuardedRelease(policy=policy).create().at_after_allow_traffic()
    moto_codedeploy.set_deployment_status(release.deployment_id, "Succeeded")
    set_alarm("orders-new-version-function-errors", "ALARM")
    time.sleep(0.01)
    revert = deploy("2", publish_version("the revert"))
    point_alias("3")
    moto_codedeploy.set_deployment_status(revert, "Succeeded")

    # WHEN the still-firing alarm's event arrives (dated now, after the revert)
    run = rollback(alarm_event("orders-new-version-function-errors", dimensions={"FunctionName": "orders"}))

    # THEN live stays on the revert
    assert release.alias()["FunctionVersion"] == "3"
    record = run.record()
    assert kinds(record) == [("no_action", True)]
    assert (
        f"deployment {revert} (version 2 -> 3, Succeeded) came after {release.deployment_id}"
        in record["reason"]
    )


def test_an_alarm_on_another_version_than_the_releases_target_is_left_alone(rollback: Rollback) -> None:
    release = GuardedRelease().create().mid_canary(0.1)
    put_alarm("orders-new-version-v3-errors", version="3")

    run = rollback(fire("orders-new-version-v3-errors"))

    assert release.stops() == []
    assert release.alias()["RoutingConfig"]["AdditionalVersionWeights"] == {"2": 0.1}
    assert "the alarm concerns version 3, not version 2" in run.record()["reason"]


def test_a_duplicate_alarms_rollback_that_got_there_first_is_no_action_not_a_failure(
    rollback: Rollback,
) -> None:
    # GIVEN another rollback puts live on 1 alone between this one's GetAlias and UpdateAlias
    release = GuardedRelease().create().mid_canary(0.1)
    someone_moves_the_alias_first("1")

    run = rollback(fire())

    assert run.error is None and [a.kind for a in run.alerts.alerts] == ["rolled_back"]  # it did stop it
    assert kinds(run.record()) == [("deployment_stopped", True), ("no_action", True)]
    assert "already on version 1 alone" in run.record()["reason"]
    assert release.alias()["FunctionVersion"] == "1"


# --- a record and an alert on every path -------------------------------------------------------------


def test_stop_and_restore_both_failing_is_recorded_alerted_and_raised(rollback: Rollback) -> None:
    release = GuardedRelease().create().mid_canary(0.1)
    fail("codedeploy", "StopDeployment", "Throttling")
    fail("lambda", "UpdateAlias", "Throttling")

    run = rollback(fire())

    assert isinstance(run.error, RollbackError)
    assert kinds(run.record()) == [("deployment_stopped", False), ("alias_restored", False)]
    (alert,) = run.alerts.alerts
    assert alert.kind == "rollback_failed"
    assert (
        alert.subject
        == f"DeployGuard: orders (staging) rollback of deployment {release.deployment_id} FAILED"
    )
    assert "FAILED to act (alias_restored): UpdateAlias failed with ThrottlingException" in alert.message


@pytest.mark.parametrize(
    ("service", "operation", "subject"),
    [
        ("s3", "GetObject", f"DeployGuard: function (staging) alarm rollback FAILED ({ERRORS_ALARM})"),
        (
            "cloudwatch",
            "DescribeAlarms",
            f"DeployGuard: function (staging) alarm rollback FAILED ({ERRORS_ALARM})",
        ),
        (
            "codedeploy",
            "ListDeployments",
            f"DeployGuard: orders (staging) alarm rollback FAILED ({ERRORS_ALARM})",
        ),
    ],
)
def test_a_rollback_that_cannot_find_what_to_do_is_recorded_and_alerted(
    rollback: Rollback, service: str, operation: str, subject: str
) -> None:
    release = GuardedRelease().create().mid_canary(0.1)
    fail(service, operation, "Throttling")

    run = rollback(fire())

    assert isinstance(run.error, RollbackError) and operation in str(run.error)
    assert release.stops() == []
    record = run.record()
    assert kinds(record) == [("no_action", False)] and operation in record["reason"]
    (alert,) = run.alerts.alerts
    assert (alert.kind, alert.subject) == ("rollback_failed", subject)


def test_a_crash_after_the_stop_still_leaves_the_record_of_the_stop_and_an_alert(rollback: Rollback) -> None:
    release = GuardedRelease().create().mid_canary(0.1)
    from deployguard.aws import clients

    def bug(**_kwargs: Any) -> None:
        raise RuntimeError("a bug after the stop")

    clients.lambda_client().meta.events.register("before-call.lambda.UpdateAlias", bug)

    run = rollback(fire())

    assert isinstance(run.error, RollbackError)
    assert release.stops() == [True]
    record = run.record()
    assert kinds(record) == [("deployment_stopped", True), ("no_action", False)]
    assert "internal error (RuntimeError): a bug after the stop" in record["reason"]
    (alert,) = run.alerts.alerts
    assert alert.kind == "rollback_failed"
    (crash,) = [line for line in json_lines(run.output) if line.get("message") == "alarm rollback crashed"]
    assert crash["level"] == "ERROR" and "RuntimeError" in crash["traceback"]


def test_past_the_deadline_nothing_more_is_changed_and_it_is_recorded_and_alerted(
    handler: Handler, lambda_context: FakeLambdaContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN GetAlias hangs, and the function has 1 s left before its reserve
    release = GuardedRelease().create().mid_canary(0.1)
    monkeypatch.setenv("DEPLOYGUARD_TIME_RESERVE_SECONDS", "10")
    lambda_context.remaining_ms = 11_000
    from deployguard.aws import clients

    clients.lambda_client().meta.events.register("before-call.lambda.GetAlias", lambda **_: time.sleep(8))
    published: list[Any] = []
    monkeypatch.setattr(entrypoints, "alerts_for", lambda _settings: RecordingPublisher(alerts=published))

    began = time.monotonic()
    with captured_output() as out, pytest.raises(RollbackError, match="ran out of time"):
        handler(fire(), lambda_context)

    # THEN it answered at the deadline, wrote the record and alerted …
    assert time.monotonic() - began < 6  # not the 8 s GetAlias takes
    record = the_record(out.getvalue())
    assert kinds(record) == [("no_action", False)]
    assert "ran out of time while rolling back orders" in record["reason"]
    assert [a.kind for a in published] == ["rollback_failed"]
    # … and the worker, once GetAlias answered, changed nothing
    time.sleep(3)
    assert release.stops() == []
    assert release.alias()["RoutingConfig"]["AdditionalVersionWeights"] == {"2": 0.1}


def test_a_retry_finishes_the_restore_a_throttled_update_alias_left_undone(
    handler: Handler, lambda_context: FakeLambdaContext
) -> None:
    # GIVEN StopDeployment went through and UpdateAlias was throttled: live still 10% on 2
    release = GuardedRelease().create().mid_canary(0.1)
    event = fire()
    from deployguard.aws import clients

    calls = {"n": 0}

    def throttle_once(**_kwargs: Any) -> None:
        calls["n"] += 1
        if calls["n"] == 1:
            raise FAILURES["Throttling"]("UpdateAlias")

    clients.lambda_client().meta.events.register("before-call.lambda.UpdateAlias", throttle_once)
    with captured_output(), pytest.raises(RollbackError):
        handler(event, lambda_context)
    assert release.alias()["RoutingConfig"]["AdditionalVersionWeights"] == {"2": 0.1}

    # WHEN Lambda retries the same event (the deployment is no longer in flight: it was stopped)
    with captured_output() as out:
        handler(event, lambda_context)

    # THEN the retry finds the deployment it stopped and finishes the restore
    assert release.stops() == [True]
    assert release.alias()["FunctionVersion"] == "1"
    assert release.alias()["RoutingConfig"]["AdditionalVersionWeights"] == {}
    record = the_record(out.getvalue())
    assert kinds(record) == [("alias_restored", True)]
    assert "(the deployment stopped after the alarm)" in record["reason"]


def test_a_retry_after_a_failed_stop_finishes_the_job_without_repeating_the_restore(
    handler: Handler, lambda_context: FakeLambdaContext
) -> None:
    release = GuardedRelease().create().mid_canary(0.1)
    event = fire()
    from deployguard.aws import clients

    calls = {"n": 0}

    def fail_once(**_kwargs: Any) -> None:
        calls["n"] += 1
        if calls["n"] == 1:
            raise FAILURES["Throttling"]("StopDeployment")

    clients.codedeploy_client().meta.events.register("before-call.codedeploy.StopDeployment", fail_once)
    with captured_output(), pytest.raises(DeployGuardError):
        handler(event, lambda_context)
    revision = release.alias()["RevisionId"]

    with captured_output() as out:
        handler(event, lambda_context)  # Lambda's retry of the same event

    assert release.stops() == [True]
    assert release.alias()["RevisionId"] == revision
    assert [a["kind"] for a in the_record(out.getvalue())["actions"]] == ["deployment_stopped", "no_action"]


# --- redaction -----------------------------------------------------------------------------------------


def test_the_records_and_alerts_are_redacted_with_both_versions_environments(rollback: Rollback) -> None:
    # GIVEN the new version holds a secret, and UpdateAlias fails with a message that quotes it
    release = GuardedRelease(target_env={**GOOD_ENV, "DB_PASSWORD": SECRET}).create().mid_canary(0.1)
    from deployguard.aws import clients

    def echo(**_kwargs: Any) -> None:
        error = {"Error": {"Code": "ValidationException", "Message": f"bad value {SECRET} in request"}}
        raise ClientError(error, "UpdateAlias")  # type: ignore[arg-type]

    clients.lambda_client().meta.events.register("before-call.lambda.UpdateAlias", echo)

    run = rollback(fire())

    assert release.stops() == [True]
    written = run.output + json.dumps([(a.subject, a.message) for a in run.alerts.alerts])
    assert run.alerts.alerts and "UpdateAlias failed with ValidationException" in written
    assert not [SECRET[i : i + 8] for i in range(len(SECRET) - 7) if SECRET[i : i + 8] in written]
    assert not [SECRET[i : i + 8] for i in range(len(SECRET) - 7) if SECRET[i : i + 8] in str(run.error)]


def test_a_rollback_that_quotes_no_aws_error_reads_no_environment(rollback: Rollback) -> None:
    release = GuardedRelease(target_env={**GOOD_ENV, "DB_PASSWORD": SECRET}).create().mid_canary(0.1)

    with counted_calls() as calls:
        run = rollback(fire())

    # THEN the record holds DeployGuard's sentences about identifiers only: no environment is read
    assert run.error is None and release.stops() == [True] and release.alias()["FunctionVersion"] == "1"
    assert "GetFunctionConfiguration" not in calls
    assert "formats only" not in run.record()["reason"] and "were not read" not in run.record()["reason"]


def test_unreadable_environments_fall_back_to_key_formats_and_say_so(rollback: Rollback) -> None:
    # GIVEN UpdateAlias fails (its message goes into the record) and the environments cannot be read
    release = GuardedRelease().create().mid_canary(0.1)
    fail("lambda", "UpdateAlias", "Throttling")
    fail("lambda", "GetFunctionConfiguration", "Throttling")

    run = rollback(fire())

    assert run.error is not None and release.stops() == [True]
    assert "the versions' environments could not be read" in run.record()["reason"]
    assert "text redacted by key formats only" in run.record()["reason"]


# --- every AWS call failing in turn ---------------------------------------------------------------

CALLS = [
    ("s3", "GetObject"),
    ("cloudwatch", "DescribeAlarms"),
    ("codedeploy", "ListDeployments"),
    ("codedeploy", "GetDeployment"),
    ("codedeploy", "GetApplicationRevision"),
    ("lambda", "GetAlias"),
    ("codedeploy", "StopDeployment"),
    ("lambda", "UpdateAlias"),
]


@pytest.mark.parametrize("failure", list(FAILURES))
@pytest.mark.parametrize(("service", "operation"), CALLS)
def test_each_aws_call_failing_is_a_clear_logged_recorded_error_and_raised_for_a_retry(
    handler: Handler, lambda_context: FakeLambdaContext, service: str, operation: str, failure: str
) -> None:
    release = GuardedRelease().create().mid_canary(0.1)
    event = fire()
    fail(service, operation, failure)

    with captured_output() as out, pytest.raises(DeployGuardError, match=operation):
        handler(event, lambda_context)

    errors = [line for line in json_lines(out.getvalue()) if line.get("level") == "ERROR"]
    assert errors and operation in str(errors)
    record = the_record(out.getvalue())
    assert any(not ok for _kind, ok in kinds(record)) and operation in record["reason"]
    if operation == "UpdateAlias":  # the stop went through: it is recorded, the failure too
        assert release.stops() == [True]
        assert kinds(record) == [("deployment_stopped", True), ("alias_restored", False)]
    elif operation == "StopDeployment":  # the alias is still restored: that is what stops the harm
        assert release.alias()["FunctionVersion"] == "1"
        assert not release.alias()["RoutingConfig"]["AdditionalVersionWeights"]
    else:  # nothing is changed on what could not be verified
        assert release.stops() == []
        assert release.alias()["RoutingConfig"]["AdditionalVersionWeights"] == {"2": 0.1}


# --- the EventBridge rule of template.yaml, on moto's EventBridge pattern matcher ------------------


@pytest.fixture(scope="module")
def rule() -> dict[str, Any]:
    resources: dict[str, dict[str, Any]] = transformed(load_template())["Resources"]
    (found,) = [r for r in resources.values() if r["Type"] == "AWS::Events::Rule"]
    return found


def pattern_text(rule: dict[str, Any], prefixes: list[str]) -> str:
    """The rule's EventPattern as CloudFormation resolves it for GuardedAlarmPrefixes."""
    _condition, every, narrowed = rule["Properties"]["EventPattern"]["Fn::If"]
    if not prefixes:
        return json.dumps(every)
    separator, (head, inner, tail) = narrowed["Fn::Join"]
    text: str = separator.join([head, inner["Fn::Join"][0].join(prefixes), tail])
    return text


@pytest.mark.parametrize(
    ("prefixes", "alarm", "state", "delivered"),
    [
        ([], "anything-at-all", "ALARM", True),
        ([], ERRORS_ALARM, "OK", False),
        (["orders-new-version-", "payments-"], ERRORS_ALARM, "ALARM", True),
        (["orders-new-version-", "payments-"], "payments-latency", "ALARM", True),
        (["orders-new-version-", "payments-"], "another-teams-alarm", "ALARM", False),
        (["orders-new-version-"], ERRORS_ALARM, "OK", False),
    ],
)
def test_the_rule_delivers_only_alarms_with_a_guarded_prefix_entering_alarm(
    rule: dict[str, Any], prefixes: list[str], alarm: str, state: str, delivered: bool
) -> None:
    from moto.events.models import EventPattern

    pattern = EventPattern.load(pattern_text(rule, prefixes))  # raises on a pattern EventBridge rejects

    assert pattern.matches_event(alarm_event(alarm, state=state)) is delivered  # type: ignore[arg-type]
