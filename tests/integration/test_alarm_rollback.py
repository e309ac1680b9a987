"""The alarm rollback function end to end on moto: an EventBridge alarm state change event, a
canary mid-shift (alias with routing weights), a real CodeDeploy deployment, the real handler."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from deployguard.errors import DeployGuardError
from deployguard_cli.localaws import moto_cloudwatch, moto_codedeploy, moto_lambda_alias
from tests.support.aws import FAILURES, counted_calls, fail
from tests.support.handlers import FakeLambdaContext, load_event, load_handler
from tests.support.outcomes import captured_output, emf_lines, json_lines, outcome_lines
from tests.support.release import (
    COMPOSITE_ALARM,
    ERRORS_ALARM,
    HOOK_ENV,
    TEAM_TAG,
    GuardedRelease,
    alarm_event,
    post_traffic_policy,
    put_alarm,
    put_composite_alarm,
    someone_moves_the_alias_first,
)

Handler = Callable[[dict[str, Any], Any], dict[str, Any]]
Invoke = Callable[[dict[str, Any]], tuple[dict[str, Any], str]]


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


def the_record(output: str) -> dict[str, Any]:
    (record,) = outcome_lines(output)
    return record


def test_an_alarm_during_a_canary_stops_the_deployment_and_restores_the_alias_at_once(invoke: Invoke) -> None:
    # GIVEN a canary: live serves 1 with 10% on 2, the deployment in flight
    release = GuardedRelease().create().mid_canary(0.1)

    # WHEN the new version's error alarm enters ALARM
    answer, output = invoke(alarm_event())

    # THEN the deployment is stopped with rollback, live is back on 1 alone, and it is recorded
    assert release.stops() == [True]
    alias = release.alias()
    assert alias["FunctionVersion"] == "1"
    assert not alias.get("RoutingConfig", {}).get("AdditionalVersionWeights")
    record = the_record(output)
    assert [(a["kind"], a["ok"]) for a in record["actions"]] == [
        ("deployment_stopped", True),
        ("alias_restored", True),
    ]
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


def test_the_canary_hot_path_is_four_calls(invoke: Invoke) -> None:
    GuardedRelease().create().mid_canary(0.1)
    invoke(alarm_event(at=datetime.now(UTC) - timedelta(days=1)))  # warms the policy cache; no action

    with counted_calls() as calls:
        invoke(alarm_event())

    assert calls == ["ListDeployments", "StopDeployment", "GetAlias", "UpdateAlias"]


def test_a_duplicate_event_takes_no_second_action(invoke: Invoke) -> None:
    release = GuardedRelease().create().mid_canary(0.1)
    event = alarm_event()
    invoke(event)
    revision = release.alias()["RevisionId"]

    with counted_calls() as calls:
        _answer, output = invoke(event)

    assert release.stops() == [True]
    assert release.alias()["RevisionId"] == revision
    assert "UpdateAlias" not in calls and "StopDeployment" not in calls
    record = the_record(output)
    assert [a["kind"] for a in record["actions"]] == ["no_action"]
    assert "no deployment of orders was in flight" in record["reason"]
    assert record["rolled_back"] is False


def test_an_alarm_older_than_the_deployment_touches_nothing(invoke: Invoke) -> None:
    # GIVEN an ALARM event delivered late: the alarm fired before this deployment was created
    release = GuardedRelease().create().mid_canary(0.1)

    _answer, output = invoke(alarm_event(at=datetime.now(UTC) - timedelta(minutes=5)))

    assert release.stops() == []
    assert release.alias()["RoutingConfig"]["AdditionalVersionWeights"] == {"2": 0.1}
    assert [a["kind"] for a in the_record(output)["actions"]] == ["no_action"]


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
    _answer, output = invoke(alarm_event())

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
    assert [c for c in calls if c != "GetParameter"] == []


def test_a_selected_alarm_on_another_function_is_not_this_functions(invoke: Invoke) -> None:
    # GIVEN an alarm whose name the orders prefix selects but whose dimensions name another function
    release = GuardedRelease().create().mid_canary(0.1)

    _answer, output = invoke(
        alarm_event(dimensions={"FunctionName": "payments", "Resource": "payments:live"})
    )

    assert release.stops() == []
    assert outcome_lines(output) == []


def test_without_a_deployment_in_flight_it_records_no_action(invoke: Invoke) -> None:
    release = GuardedRelease().create()
    moto_codedeploy.set_deployment_status(release.deployment_id, "Succeeded")

    _answer, output = invoke(alarm_event())

    record = the_record(output)
    assert [a["kind"] for a in record["actions"]] == ["no_action"]
    assert record["reason"] == f"{ERRORS_ALARM} in ALARM, but no deployment of orders was in flight"


def test_a_recently_finished_release_is_rolled_back_when_the_policy_allows(invoke: Invoke) -> None:
    # GIVEN the release finished (live on 2 alone) and the policy rolls back releases of the last 10 minutes
    policy = post_traffic_policy()
    policy["rollback"] = {"recent_minutes": 10}
    release = GuardedRelease(policy=policy).create().at_after_allow_traffic()
    moto_codedeploy.set_deployment_status(release.deployment_id, "Succeeded")

    _answer, output = invoke(alarm_event())

    # THEN live goes back to the AppSpec's CurrentVersion; nothing to stop
    assert release.alias()["FunctionVersion"] == "1"
    assert release.stops() == []
    assert [a["kind"] for a in the_record(output)["actions"]] == ["alias_restored"]


def test_at_100_percent_the_previous_version_comes_from_the_appspec(invoke: Invoke) -> None:
    release = GuardedRelease().create().at_after_allow_traffic()

    _answer, output = invoke(alarm_event())

    assert release.stops() == [True]
    assert release.alias()["FunctionVersion"] == "1"
    assert the_record(output)["rolled_back"] is True


def test_without_a_deployment_group_it_searches_the_account(invoke: Invoke) -> None:
    release = GuardedRelease(policy=post_traffic_policy(deployment_group=None)).create().mid_canary(0.2)

    invoke(alarm_event())

    assert release.stops() == [True]
    assert release.alias()["FunctionVersion"] == "1"


def test_a_composite_alarm_selected_by_tag_rolls_back_the_function_it_guards(invoke: Invoke) -> None:
    put_composite_alarm(COMPOSITE_ALARM, f'ALARM("{ERRORS_ALARM}")', tags=TEAM_TAG)
    policy = post_traffic_policy(alarms={"select": {"tags": TEAM_TAG}})
    release = GuardedRelease(policy=policy).create().mid_canary(0.1)

    invoke(alarm_event(COMPOSITE_ALARM, composite=True))

    assert release.stops() == [True]
    assert release.alias()["FunctionVersion"] == "1"


def test_a_bypass_skips_the_rollback_explicitly_and_is_recorded(invoke: Invoke) -> None:
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

    _answer, output = invoke(alarm_event())

    assert release.stops() == []
    record = the_record(output)
    assert record["bypass"]["approved_by"] == "oncall@example.com"
    assert "rollback bypassed by policy" in record["reason"]
    assert any(
        line.get("message") == "checks bypassed by policy" and line["level"] == "WARNING"
        for line in json_lines(output)
    )


def test_a_malformed_event_is_logged_and_not_retried(invoke: Invoke) -> None:
    answer, output = invoke({"detail-type": "Something Else", "detail": {}})

    assert "not a 'CloudWatch Alarm State Change'" in answer["error"]
    assert any(
        line.get("message") == "malformed alarm event" and line["level"] == "ERROR"
        for line in json_lines(output)
    )


def test_invalid_settings_leave_a_record_naming_the_variable_and_raise_for_a_retry(
    handler: Handler, lambda_context: FakeLambdaContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    release = GuardedRelease().create().mid_canary(0.1)
    monkeypatch.setenv("DEPLOYGUARD_POLICY_PARAMETER", "no-leading-slash")

    with captured_output() as out, pytest.raises(DeployGuardError, match="DEPLOYGUARD_POLICY_PARAMETER"):
        handler(alarm_event(), lambda_context)

    assert release.stops() == []
    record = the_record(out.getvalue())
    assert (record["role"], record["stage"]) == ("alarm_rollback", "staging")
    assert "DEPLOYGUARD_POLICY_PARAMETER" in record["reason"]
    assert [(c["name"], c["result"]) for c in record["checks"]] == [("SettingsError", "error")]
    assert [(a["kind"], a["ok"]) for a in record["actions"]] == [("no_action", False)]


def test_the_sample_event_parses() -> None:
    from deployguard.alarm_rollback import parse_alarm_event

    alarm = parse_alarm_event(load_event("alarm_state_change.json"))

    assert (alarm.alarm_name, alarm.state, alarm.composite) == (ERRORS_ALARM, "ALARM", False)
    assert alarm.dimensions == {"FunctionName": "orders", "Resource": "orders:live", "ExecutedVersion": "2"}
    assert alarm.changed_at == datetime(2026, 3, 2, 17, 4, 40, 989000, tzinfo=UTC)


# --- every AWS call failing in turn ---------------------------------------------------------------

CALLS = [
    ("ssm", "GetParameter"),
    ("codedeploy", "ListDeployments"),
    ("codedeploy", "StopDeployment"),
    ("lambda", "GetAlias"),
    ("lambda", "UpdateAlias"),
]


@pytest.mark.parametrize("failure", list(FAILURES))
@pytest.mark.parametrize(("service", "operation"), CALLS)
def test_each_aws_call_failing_is_a_clear_logged_error_and_raised_for_a_retry(
    handler: Handler, lambda_context: FakeLambdaContext, service: str, operation: str, failure: str
) -> None:
    release = GuardedRelease().create().mid_canary(0.1)
    fail(service, operation, failure)

    with captured_output() as out, pytest.raises(DeployGuardError, match=operation):
        handler(alarm_event(), lambda_context)

    errors = [line for line in json_lines(out.getvalue()) if line.get("level") == "ERROR"]
    assert errors and operation in str(errors)
    if operation == "UpdateAlias":  # the stop went through: it is recorded, the failure too
        assert release.stops() == [True]
        assert [(a["kind"], a["ok"]) for a in the_record(out.getvalue())["actions"]] == [
            ("deployment_stopped", True),
            ("alias_restored", False),
        ]
    if operation == "StopDeployment":  # the alias is still restored: that is what stops the harm
        assert release.alias()["FunctionVersion"] == "1"
        assert not release.alias()["RoutingConfig"]["AdditionalVersionWeights"]


def test_a_retry_after_a_failed_stop_finishes_the_job_without_repeating_the_restore(
    handler: Handler, lambda_context: FakeLambdaContext
) -> None:
    release = GuardedRelease().create().mid_canary(0.1)
    event = alarm_event()
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
    kinds = [a["kind"] for a in the_record(out.getvalue())["actions"]]
    assert kinds == ["deployment_stopped", "no_action"]
