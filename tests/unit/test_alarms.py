"""Which alarms count against a release: the classification, pure (the adapter on moto is in
tests/integration/test_cloudwatch_adapter.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from deployguard.alarms import (
    AlarmSelection,
    AlarmState,
    check_alarms,
    selects,
)
from deployguard.findings import Result
from deployguard.policy import AlarmRules, AlarmSelector

STARTED = datetime(2026, 3, 2, 17, 0, tzinfo=UTC)
REPORT = AlarmRules(select=AlarmSelector(prefixes=["orders-"]), pre_existing="report")
BLOCK = REPORT.model_copy(update={"pre_existing": "block"})


def alarm(name: str, state: str = "OK", minutes: float = 1) -> AlarmState:
    return AlarmState(name=name, state=state, entered_at=STARTED + timedelta(minutes=minutes))


def check(
    *alarms: AlarmState, rules: AlarmRules = REPORT, missing: list[str] | None = None
) -> tuple[Result, list[str]]:
    result = check_alarms(
        AlarmSelection(alarms=list(alarms), missing=missing or []), rules, deployment_started_at=STARTED
    )
    return result.result, [f.code for f in result.findings]


def test_quiet_alarms_pass() -> None:
    assert check(alarm("orders-errors"), alarm("orders-latency", "INSUFFICIENT_DATA")) == (Result.PASSED, [])


def test_an_alarm_that_entered_alarm_after_the_deployment_started_fails() -> None:
    assert check(alarm("orders-errors", "ALARM", minutes=2)) == (Result.FAILED, ["ALM001"])


@pytest.mark.parametrize(("rules", "expected"), [(REPORT, Result.WARNED), (BLOCK, Result.FAILED)])
def test_a_pre_existing_alarm_is_reported_or_blocks_per_policy(rules: AlarmRules, expected: Result) -> None:
    assert check(alarm("orders-errors", "ALARM", minutes=-30), rules=rules) == (expected, ["ALM002"])


def test_an_alarm_without_a_timestamp_counts_as_new() -> None:
    assert check(AlarmState(name="x", state="ALARM")) == (Result.FAILED, ["ALM001"])


def test_a_missing_named_alarm_or_an_empty_selection_fails_with_the_fix() -> None:
    assert check(missing=["orders-typo"]) == (Result.FAILED, ["ALM003"])
    result = check_alarms(AlarmSelection(alarms=[], missing=[]), REPORT, deployment_started_at=STARTED)
    assert result.blocking and "matches no alarm: fix the names, prefixes or tags" in result.message


def test_the_rollback_fetches_tags_only_when_a_tag_selector_must_decide() -> None:
    fetched: list[str] = []

    def tags() -> dict[str, str]:
        fetched.append("tags")
        return {"team": "orders", "tier": "1"}

    assert selects(AlarmSelector(names=["a"], tags={"team": "orders"}), "a", tags)
    assert fetched == []
    assert selects(AlarmSelector(prefixes=["x-"], tags={"team": "orders"}), "b", tags)
    assert not selects(AlarmSelector(tags={"team": "payments"}), "b", tags)
    assert not selects(AlarmSelector(prefixes=["orders-"]), "payments-errors", tags)
