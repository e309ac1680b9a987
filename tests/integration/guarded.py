"""Builders for the post-traffic, bake and rollback tests: a guarded release in a given phase of
its deployment (canary mid-shift, or 100% at AfterAllowTraffic), its alarms and metrics, alarm
state change events, and AWS failures injected into DeployGuard's own clients."""

from __future__ import annotations

import copy
import json
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

import boto3
from botocore.exceptions import ClientError, ReadTimeoutError

from deployguard.aws import clients
from tests.conftest import load_event
from tests.integration.fixtures import POLICY, Release

AlarmValue = Literal["OK", "ALARM", "INSUFFICIENT_DATA"]
ERRORS_ALARM = "orders-new-version-errors"
THROTTLES_ALARM = "orders-new-version-throttles"
COMPOSITE_ALARM = "orders-health"
TEAM_TAG = {"team": "orders"}


def post_traffic_policy(**entry: Any) -> dict[str, Any]:
    """The staging policy guarding 'orders' after traffic shifts: one smoke case on the alias, the
    'orders-' alarms, per-version health, no bake; ``entry`` overrides keys of the function entry."""
    policy = copy.deepcopy(POLICY)
    orders = policy["functions"]["orders"]
    orders["smoke"] = orders["smoke"][:1]
    orders["alarms"] = {"select": {"prefixes": ["orders-new-version-"]}, "pre_existing": "report"}
    orders["version_health"] = {
        "max_error_rate": 0.05,
        "max_throttles": 0,
        "min_invocations": 10,
        "inconclusive": "pass",
    }
    orders["bake"] = {"minutes": 0, "poll_seconds": 60}
    orders["deployment_group"] = {"application": "orders-app", "name": "orders-group"}
    orders.update(entry)
    return policy


def put_alarm(
    name: str,
    *,
    version: str = "2",
    state: AlarmValue | None = None,
    tags: dict[str, str] | None = None,
    metric: str = "Errors",
) -> None:
    """A per-version alarm on orders:live (ExecutedVersion ``version``), optionally already in ``state``."""
    cloudwatch = boto3.client("cloudwatch")
    cloudwatch.put_metric_alarm(
        AlarmName=name,
        Namespace="AWS/Lambda",
        MetricName=metric,
        Dimensions=[
            {"Name": "FunctionName", "Value": "orders"},
            {"Name": "Resource", "Value": "orders:live"},
            {"Name": "ExecutedVersion", "Value": version},
        ],
        Statistic="Sum",
        Period=60,
        EvaluationPeriods=1,
        Threshold=0,
        ComparisonOperator="GreaterThanThreshold",
        TreatMissingData="notBreaching",
        Tags=[{"Key": k, "Value": v} for k, v in (tags or {}).items()],
    )
    if state is not None:
        set_alarm(name, state)


def put_composite_alarm(name: str, rule: str, *, tags: dict[str, str] | None = None) -> None:
    boto3.client("cloudwatch").put_composite_alarm(
        AlarmName=name, AlarmRule=rule, Tags=[{"Key": k, "Value": v} for k, v in (tags or {}).items()]
    )


def set_alarm(name: str, state: AlarmValue) -> None:
    boto3.client("cloudwatch").set_alarm_state(AlarmName=name, StateValue=state, StateReason="test")


def put_version_metrics(version: str, *, invocations: float, errors: float = 0, throttles: float = 0) -> None:
    """What Lambda publishes for invocations of ``version`` through orders:live."""
    dimensions: list[Any] = [
        {"Name": "FunctionName", "Value": "orders"},
        {"Name": "Resource", "Value": "orders:live"},
        {"Name": "ExecutedVersion", "Value": version},
    ]
    boto3.client("cloudwatch").put_metric_data(
        Namespace="AWS/Lambda",
        MetricData=[
            {"MetricName": metric, "Dimensions": dimensions, "Value": value, "Unit": "Count"}
            for metric, value in (("Invocations", invocations), ("Errors", errors), ("Throttles", throttles))
        ],
    )


@dataclass
class GuardedRelease(Release):
    """orders 1 → 2 under CodeDeploy, with the post-traffic policy."""

    policy: dict[str, Any] | None = field(default_factory=post_traffic_policy)

    def create(self) -> GuardedRelease:
        time.sleep(0.01)  # NOTE: alarm states set before this are strictly older than the deployment
        super().create()
        return self

    def at_after_allow_traffic(self) -> GuardedRelease:
        """Traffic has shifted: alias live → 2 alone; the AfterAllowTraffic hook is invoked."""
        from deployguard_cli.localaws import moto_codedeploy

        moto_codedeploy.set_lifecycle_event_status(self.deployment_id, "BeforeAllowTraffic", "Succeeded")
        moto_codedeploy.set_lifecycle_event_status(self.deployment_id, "AllowTraffic", "Succeeded")
        moto_codedeploy.set_target_version_weight(self.deployment_id, 1.0)
        boto3.client("lambda").update_alias(
            FunctionName=self.function_name,
            Name="live",
            FunctionVersion="2",
            RoutingConfig={"AdditionalVersionWeights": {}},
        )
        self.execution_id = moto_codedeploy.start_lifecycle_event(self.deployment_id, "AfterAllowTraffic")
        return self

    def mid_canary(self, weight: float = 0.1) -> GuardedRelease:
        """Traffic is shifting: alias live → 1 with ``weight`` of the traffic on 2."""
        from deployguard_cli.localaws import moto_codedeploy

        moto_codedeploy.set_lifecycle_event_status(self.deployment_id, "BeforeAllowTraffic", "Succeeded")
        moto_codedeploy.set_target_version_weight(self.deployment_id, weight)
        boto3.client("lambda").update_alias(
            FunctionName=self.function_name,
            Name="live",
            FunctionVersion="1",
            RoutingConfig={"AdditionalVersionWeights": {"2": weight}},
        )
        return self

    def alias(self) -> dict[str, Any]:
        return dict(boto3.client("lambda").get_alias(FunctionName=self.function_name, Name="live"))

    def publish_policy(self, policy: dict[str, Any]) -> None:
        self.policy = policy
        boto3.client("ssm").put_parameter(
            Name="/deployguard/staging/policy", Value=json.dumps(policy), Type="String", Overwrite=True
        )

    def stops(self) -> list[bool | None]:
        from deployguard_cli.localaws import moto_codedeploy

        return [s.auto_rollback_enabled for s in moto_codedeploy.stop_requests(self.deployment_id)]


def alarm_event(
    name: str = ERRORS_ALARM,
    *,
    at: datetime | None = None,
    state: str = "ALARM",
    dimensions: dict[str, str] | None = None,
    composite: bool = False,
) -> dict[str, Any]:
    """events/alarm_state_change.json for alarm ``name``, changed ``at`` (default now)."""
    event = load_event("alarm_state_change.json")
    when = (at or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "+0000"
    event["resources"] = [f"arn:aws:cloudwatch:us-east-1:123456789012:alarm:{name}"]
    detail = event["detail"]
    detail["alarmName"] = name
    detail["state"]["value"] = state
    detail["state"]["timestamp"] = when
    if composite:
        detail["configuration"] = {"alarmRule": f'ALARM("{ERRORS_ALARM}")', "description": "composite"}
    elif dimensions is not None:
        detail["configuration"]["metrics"][0]["metricStat"]["metric"]["dimensions"] = dimensions
    return event


# --- AWS calls of DeployGuard's own clients: counted, or made to fail ---------------------------

FAILURES: dict[str, Callable[[str], Exception]] = {
    "Throttling": lambda op: ClientError(
        {"Error": {"Code": "ThrottlingException", "Message": "Rate exceeded"}}, op
    ),
    "Timeout": lambda op: ReadTimeoutError(endpoint_url="https://aws.example"),
}


def deployguard_clients() -> list[Any]:
    """The clients DeployGuard's adapters use (cached: the same objects the code under test calls)."""
    return [
        clients.codedeploy(),
        clients.lambda_(),
        clients.lambda_invoke(),
        clients.ssm(),
        clients.cloudwatch(),
        clients.stepfunctions(),
        clients.tagging(),
    ]


def fail(service: str, operation: str, failure: str) -> None:
    """Make DeployGuard's ``operation`` call fail (a botocore before-call handler raising)."""

    def raise_it(**_kwargs: Any) -> None:
        raise FAILURES[failure](operation)

    for client in deployguard_clients():
        client.meta.events.register(f"before-call.{service}.{operation}", raise_it)


@contextmanager
def counted_calls() -> Iterator[list[str]]:
    """The operations DeployGuard's clients call inside the block, in order."""
    calls: list[str] = []

    def count(model: Any, **_kwargs: Any) -> None:
        calls.append(model.name)

    registered = deployguard_clients()
    for client in registered:
        client.meta.events.register("before-call.*.*", count)
    try:
        yield calls
    finally:
        for client in registered:
            client.meta.events.unregister("before-call.*.*", count)


def someone_moves_the_alias_first(version: str = "2") -> None:
    """Between DeployGuard's GetAlias and its UpdateAlias, someone else points 'live' at ``version``."""
    other = boto3.client("lambda")

    def move(**_kwargs: Any) -> None:
        other.update_alias(
            FunctionName="orders",
            Name="live",
            FunctionVersion=version,
            RoutingConfig={"AdditionalVersionWeights": {}},
        )

    clients.lambda_().meta.events.register_first("before-call.lambda.UpdateAlias", move)
