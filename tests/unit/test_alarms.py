"""Which alarms count against a release, and how they are found: the classification is pure; the
selection runs the real CloudWatch adapter on moto (batched DescribeAlarms, the tagging API)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import boto3
import pytest

from deployguard.alarms import (
    AlarmSelection,
    AlarmState,
    check_alarms,
    describe_selected,
    select_alarms,
    selects,
)
from deployguard.aws.cloudwatch import Alarms
from deployguard.findings import Result
from deployguard.policy import AlarmRules, AlarmSelector
from deployguard_cli.localaws import moto_cloudwatch

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


# --- the adapter on moto ----------------------------------------------------------------------------


@pytest.fixture
def cloudwatch(aws: None) -> Alarms:
    moto_cloudwatch.install()
    return Alarms(boto3.client("cloudwatch"), lambda: boto3.client("resourcegroupstaggingapi"))


def put(name: str, tags: dict[str, str] | None = None) -> None:
    boto3.client("cloudwatch").put_metric_alarm(
        AlarmName=name,
        Namespace="AWS/Lambda",
        MetricName="Errors",
        Statistic="Sum",
        Period=60,
        EvaluationPeriods=1,
        Threshold=0,
        ComparisonOperator="GreaterThanThreshold",
        Tags=[{"Key": k, "Value": v} for k, v in (tags or {}).items()],
    )


def calls_of(adapter: Alarms) -> list[str]:
    calls: list[str] = []
    adapter._client.meta.events.register("before-call.*.*", lambda model, **_: calls.append(model.name))
    return calls


@pytest.mark.parametrize(("count", "calls"), [(1, 1), (100, 1), (101, 2), (250, 3)])
def test_k_named_alarms_cost_k_over_100_describe_calls(cloudwatch: Alarms, count: int, calls: int) -> None:
    names = [f"orders-{i:03d}" for i in range(count)]
    for name in names:
        put(name)
    made = calls_of(cloudwatch)

    selection = describe_selected(cloudwatch, names)

    assert made == ["DescribeAlarms"] * calls
    assert selection.names == names and selection.missing == []


def test_metric_and_composite_alarms_by_name_prefix_and_tag(cloudwatch: Alarms) -> None:
    put("orders-errors")
    put("payments-errors", tags={"team": "orders"})
    put("other")
    boto3.client("cloudwatch").put_composite_alarm(
        AlarmName="orders-health",
        AlarmRule='ALARM("orders-errors")',
        Tags=[{"Key": "team", "Value": "orders"}],
    )
    boto3.client("cloudwatch").set_alarm_state(AlarmName="orders-health", StateValue="ALARM", StateReason="t")

    selection = select_alarms(
        cloudwatch,
        AlarmSelector(names=["orders-errors", "gone"], prefixes=["orders-"], tags={"team": "orders"}),
    )

    assert selection.names == ["orders-errors", "orders-health", "payments-errors"]
    assert selection.missing == ["gone"]
    health = next(a for a in selection.alarms if a.name == "orders-health")
    assert (health.kind, health.state) == ("composite", "ALARM")
    assert health.entered_at is not None and health.entered_at > datetime.now(UTC) - timedelta(minutes=1)
    assert cloudwatch.tags(health.arn) == {"team": "orders"}
