"""End to end: ``deployguard rehearse`` runs every scenario on an embedded AWS and each ends as its
story says — the real hook handlers, the example application's real code in a subprocess per
invocation, real traffic driving a real alarm, CodeDeploy played by the engine.

The whole rehearsal runs once (``deployguard rehearse --json`` through ``deployguard_cli.main``) and
every scenario's assertions read that document: it is what a CI job or a newcomer would see.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
from pathlib import Path
from typing import Any

import pytest

from deployguard_cli import main as cli
from deployguard_cli.rehearsal import scenarios

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def rehearsal() -> tuple[int, dict[str, Any]]:
    """``deployguard rehearse --json``: its exit code and its document."""
    out = io.StringIO()
    with pytest.MonkeyPatch.context() as patch, contextlib.redirect_stdout(out):
        patch.chdir(ROOT)
        code = cli.main(["rehearse", "--json"])
    return code, json.loads(out.getvalue())


@pytest.fixture(scope="module")
def by_scenario(rehearsal: tuple[int, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {s["scenario"]: s for s in rehearsal[1]["scenarios"]}


def test_every_scenario_ends_as_expected_and_the_command_says_so(
    rehearsal: tuple[int, dict[str, Any]],
) -> None:
    code, document = rehearsal

    assert [s["scenario"] for s in document["scenarios"]] == [s.name for s in scenarios.SCENARIOS]
    assert {s["scenario"]: s["problems"] for s in document["scenarios"]} == {
        s.name: [] for s in scenarios.SCENARIOS
    }
    assert document["all_as_expected"] is True
    assert code == 0


@pytest.mark.parametrize("name", ["env-mixup", "schema-drift", "regression"])
def test_a_release_broken_before_traffic_is_stopped_with_zero_percent_shifted(
    by_scenario: dict[str, dict[str, Any]], name: str
) -> None:
    deployment = by_scenario[name]["deployment"]

    assert deployment["status"] == "Failed"
    assert deployment["failed_lifecycle_event"] == "BeforeAllowTraffic"
    assert deployment["max_weight"] == 0.0
    assert deployment["hook_status"]["BeforeAllowTraffic"] == "Failed"
    assert (
        "AfterAllowTraffic" not in deployment["hook_status"]
        or deployment["hook_status"]["AfterAllowTraffic"] == "Skipped"
    )
    assert (deployment["alias_version"], deployment["alias_weights"]) == (deployment["current_version"], {})
    assert by_scenario[name]["traffic"]["requests"] == 0


def test_the_environment_mixup_is_caught_by_the_config_check_on_database_url(
    by_scenario: dict[str, dict[str, Any]],
) -> None:
    report = by_scenario["env-mixup"]["report"]

    assert report["outcome"] == "failed"
    assert any("DATABASE_URL" in error and "prod" in error for error in report["errors"])


def test_the_schema_drift_is_caught_by_the_smoke_test_hitting_the_missing_column(
    by_scenario: dict[str, dict[str, Any]],
) -> None:
    report = by_scenario["schema-drift"]["report"]

    assert report["outcome"] == "failed"
    assert any("profile_image" in error for error in report["errors"])


def test_the_string_total_regression_is_caught_by_the_smoke_tests_type_expectation(
    by_scenario: dict[str, dict[str, Any]],
) -> None:
    report = by_scenario["regression"]["report"]

    assert report["outcome"] == "failed"
    assert any('"12.00"' in error and "number" in error for error in report["errors"])


def test_a_failure_under_traffic_fires_the_alarm_during_the_canary_and_rolls_back(
    by_scenario: dict[str, dict[str, Any]],
) -> None:
    result = by_scenario["failure-under-traffic"]
    deployment = result["deployment"]

    # the new version really failed on part of the traffic it got …
    assert result["traffic"]["target_version"]["errors"] > 0
    assert result["traffic"]["target_version"]["errors"] < result["traffic"]["target_version"]["invocations"]
    # … its error-rate alarm went to ALARM during the 10 % canary …
    assert deployment["alarm_states"]["deployguard-staging-orders-new-version-error-rate"] == "ALARM"
    assert deployment["max_weight"] == 0.1
    # … and DeployGuard's alarm rollback stopped the deployment and put the alias back
    assert deployment["status"] == "Stopped"
    assert deployment["stopped_by"] == "deployguard-staging-alarm-rollback"
    assert (deployment["alias_version"], deployment["alias_weights"]) == (deployment["current_version"], {})
    assert deployment["rolled_back"] and deployment["rollback_deployment_id"]
    assert result["report"]["outcome"] == "rolled_back"
    assert any("Rollbacks" in metric for metric in result["recorded"]["metrics"])


def test_a_healthy_release_ends_with_all_traffic_on_the_new_version(
    by_scenario: dict[str, dict[str, Any]],
) -> None:
    result = by_scenario["healthy"]
    deployment = result["deployment"]

    assert deployment["status"] == "Succeeded"
    assert deployment["hook_status"] == {"BeforeAllowTraffic": "Succeeded", "AfterAllowTraffic": "Succeeded"}
    assert (deployment["alias_version"], deployment["alias_weights"]) == (deployment["target_version"], {})
    assert deployment["max_weight"] == 1.0
    assert result["traffic"]["errors"] == 0
    assert result["report"]["outcome"] == "succeeded"
    # the post-traffic hook handed over to the bake workflow, whose step reported after the window
    assert "/aws/lambda/deployguard-staging-bake-step" in result["recorded"]["log_groups"]
    assert deployment["virtual_seconds"] >= 10 * 60  # a 5-minute canary and a 5-minute bake


def test_the_timeline_shows_weights_hooks_alarms_and_the_decision(
    by_scenario: dict[str, dict[str, Any]],
) -> None:
    kinds = {event["kind"] for event in by_scenario["failure-under-traffic"]["timeline"]}

    assert {"hook", "shift", "traffic", "alarm", "event", "decision", "rollback"} <= kinds


def test_each_outcome_is_recorded_where_deployguard_users_look(
    by_scenario: dict[str, dict[str, Any]],
) -> None:
    for name, result in by_scenario.items():
        recorded = result["recorded"]
        assert recorded["outcome_records"] >= 1, name
        assert "/aws/lambda/CodeDeployHook_deployguard-staging-pre-traffic" in recorded["log_groups"], name
        assert "DeployGuard/Decisions" in recorded["metrics"], name
        assert recorded["policy"] == "policies/staging/apps/orders.yaml", name
    assert by_scenario["failure-under-traffic"]["recorded"]["lambda_datapoints"] > 0
    assert any("rolled back" in alert for alert in by_scenario["failure-under-traffic"]["recorded"]["alerts"])


def test_the_live_output_prints_the_timeline_the_report_and_the_summary(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(ROOT)

    code = cli.main(["rehearse", "--scenario", "regression"])

    out = capsys.readouterr().out
    assert code == 0
    assert "BeforeAllowTraffic" in out
    assert "ended as expected" in out
    assert "Timeline (UTC)" in out  # the deployment's report
    assert "Rehearsal summary" in out


def test_a_scenario_that_does_not_end_as_expected_fails_the_command(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN the regression scenario wrongly expected to succeed
    wrong = [
        dataclasses.replace(s, expected=dataclasses.replace(s.expected, status="Succeeded"))
        if s.name == "regression"
        else s
        for s in scenarios.SCENARIOS
    ]
    monkeypatch.setattr(scenarios, "SCENARIOS", tuple(wrong))
    monkeypatch.chdir(ROOT)

    code = cli.main(["rehearse", "--scenario", "regression", "--json"])

    document = json.loads(capsys.readouterr().out)
    assert code == 1
    assert document["all_as_expected"] is False
    assert "deployment ended Failed, expected Succeeded" in document["scenarios"][0]["problems"]


def test_list_and_unknown_scenarios(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["rehearse", "--list", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [s["name"] for s in listed] == [s.name for s in scenarios.SCENARIOS]

    assert cli.main(["rehearse", "--scenario", "no-such-thing"]) == 2
    assert "no scenario no-such-thing" in capsys.readouterr().err
