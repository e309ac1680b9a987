"""Observe or enforce (deployguard.mode): what a verdict does, and where the mode comes from."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from deployguard.findings import Decision
from deployguard.mode import acts, apply_mode
from deployguard.notify import alert_for
from deployguard.outcome import Action, ActionKind, OutcomeRecord, Role
from deployguard.policy import InvalidPolicyError, effective_policy, load_baseline, value_origins


def record(reason: str = "config: 1 error(s)") -> OutcomeRecord:
    return OutcomeRecord(
        role=Role.PRE_TRAFFIC,
        hook="BeforeAllowTraffic",
        stage="staging",
        deployment_id="d-ABCDEF123",
        lifecycle_event_hook_execution_id="exec",
        function_name="orders",
        reason=reason,
    )


def test_enforce_reports_the_verdict_as_it_is() -> None:
    original = record()
    assert apply_mode(original, Decision.FAILED, "enforce") == (original, Decision.FAILED)
    assert acts("enforce")


def test_observe_reports_succeeded_and_keeps_the_verdict_in_the_record() -> None:
    observed, reported = apply_mode(record(), Decision.FAILED, "observe")

    assert reported is Decision.SUCCEEDED
    assert (observed.mode, observed.would_have) == ("observe", Decision.FAILED)
    assert observed.reason == "observe mode: would have failed (config: 1 error(s)); reported Succeeded"
    assert not acts("observe")


def test_a_reported_release_that_would_have_failed_alerts_as_such() -> None:
    observed, reported = apply_mode(record(), Decision.FAILED, "observe")
    reported_record = replace(
        observed, decision=reported, actions=[Action(kind=ActionKind.STATUS_REPORTED, detail="Succeeded")]
    )

    alert = alert_for(reported_record)

    assert alert is not None and alert.kind == "would_have_failed"
    assert alert.subject == "DeployGuard: orders (staging) deployment d-ABCDEF123 would have failed (observe)"
    assert "observe mode: nothing was stopped or rolled back" in alert.message


BASELINE = {"version": 1, "stage": "staging"}


def application(**extra: object) -> dict[str, object]:
    return {"version": 1, "stage": "staging", "application": "orders", **extra, "functions": {"orders": {}}}


@pytest.mark.parametrize(
    ("defaults", "document", "entry", "expected", "origin"),
    [
        ({}, {}, {}, "enforce", "built-in default"),
        ({"mode": "observe"}, {}, {}, "observe", "baseline default"),
        ({"mode": "observe"}, {"mode": "enforce"}, {}, "enforce", "application"),
        ({}, {"mode": "observe"}, {"mode": "enforce"}, "enforce", "application"),
    ],
)
def test_the_mode_comes_from_the_baseline_the_application_or_the_entry(
    defaults: dict[str, str], document: dict[str, str], entry: dict[str, str], expected: str, origin: str
) -> None:
    baseline = load_baseline(json.dumps({**BASELINE, "defaults": defaults}))
    raw = application(**document)
    raw["functions"] = {"orders": entry}

    policy = effective_policy(baseline, raw, "orders.yaml")

    assert policy.functions["orders"].mode == expected
    assert value_origins(baseline, raw, policy)["orders"]["mode"] == origin


def test_an_enforce_floor_refuses_observe_and_the_defaults_must_meet_it() -> None:
    baseline = load_baseline(json.dumps({**BASELINE, "floors": {"mode": "enforce"}}))

    with pytest.raises(
        InvalidPolicyError, match="'observe' is weaker than the baseline's floor mode: 'enforce'"
    ):
        effective_policy(baseline, application(mode="observe"), "orders.yaml")
    with pytest.raises(InvalidPolicyError, match=r"defaults\.mode"):
        load_baseline(
            json.dumps({**BASELINE, "defaults": {"mode": "observe"}, "floors": {"mode": "enforce"}})
        )
