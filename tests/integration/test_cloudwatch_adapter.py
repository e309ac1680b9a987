"""The CloudWatch adapter on moto: batched DescribeAlarms, the tagging API, and the one
GetMetricData call of per-version health (put_metric_data with the ExecutedVersion dimension)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest

from deployguard.alarms import select_alarms
from deployguard.appspec import DeploymentTarget
from deployguard.aws.cloudwatch import Alarms, Metrics
from deployguard.findings import Result
from deployguard.policy import AlarmSelector, VersionHealth
from deployguard.version_health import check_version_health, health_queries, metric_window
from deployguard_cli.localaws import moto_cloudwatch
from tests.support.aws import put_metric_alarm

POLICY = VersionHealth(max_error_rate=0.05, max_throttles=0, min_invocations=10, inconclusive="pass")
TARGET = DeploymentTarget(function_name="orders", alias="live", current_version="1", target_version="2")


@pytest.fixture
def cloudwatch(aws: None) -> Alarms:
    moto_cloudwatch.install()
    return Alarms(boto3.client("cloudwatch"), lambda: boto3.client("resourcegroupstaggingapi"))


def calls_of(adapter: Alarms) -> list[str]:
    calls: list[str] = []
    adapter._client.meta.events.register("before-call.*.*", lambda model, **_: calls.append(model.name))
    return calls


@pytest.mark.parametrize(("count", "calls"), [(1, 1), (100, 1), (101, 2), (250, 3)])
def test_k_named_alarms_cost_k_over_100_describe_calls(cloudwatch: Alarms, count: int, calls: int) -> None:
    names = [f"orders-{i:03d}" for i in range(count)]
    for name in names:
        put_metric_alarm(name)
    made = calls_of(cloudwatch)

    alarms = cloudwatch.describe(names)

    assert made == ["DescribeAlarms"] * calls
    assert [alarm.name for alarm in alarms] == names


def test_metric_and_composite_alarms_by_name_prefix_and_tag(cloudwatch: Alarms) -> None:
    put_metric_alarm("orders-errors")
    put_metric_alarm("payments-errors", tags={"team": "orders"})
    put_metric_alarm("other")
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


@pytest.mark.usefixtures("aws")
def test_one_get_metric_data_call_reads_only_the_target_versions_series() -> None:
    # GIVEN Lambda's per-version metrics for both versions behind the alias
    cloudwatch = boto3.client("cloudwatch")
    for version, invocations, errors in (("1", 500, 400), ("2", 40, 1)):
        dimensions: list[Any] = [
            {"Name": "FunctionName", "Value": "orders"},
            {"Name": "Resource", "Value": "orders:live"},
            {"Name": "ExecutedVersion", "Value": version},
        ]
        cloudwatch.put_metric_data(
            Namespace="AWS/Lambda",
            MetricData=[
                {"MetricName": "Invocations", "Dimensions": dimensions, "Value": invocations},
                {"MetricName": "Errors", "Dimensions": dimensions, "Value": errors},
            ],
        )
    calls: list[str] = []
    cloudwatch.meta.events.register("before-call.*.*", lambda model, **_: calls.append(model.name))
    now = datetime.now(UTC)

    # WHEN the target version's series are read
    sums = Metrics(cloudwatch).sums(health_queries(TARGET), *metric_window(now - timedelta(minutes=5), now))

    # THEN one call answers all three, with version 2's numbers only
    assert calls == ["GetMetricData"]
    assert sums == {"invocations": 40.0, "errors": 1.0, "throttles": 0.0}
    assert check_version_health(sums, POLICY, target_version="2", final=True).result is Result.PASSED
