"""The 'orders' release under CodeDeploy, as the integration tests and the benchmarks deploy it:
function 'orders' with version 1 live and version 2 the candidate, its CodeDeploy application and
group, the staging guard policy in SSM, alarms and metrics on the versions, alarm state change
events; and a guarded release in a given phase of its deployment (canary mid-shift, or 100% at
AfterAllowTraffic)."""

from __future__ import annotations

import copy
import textwrap
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

import boto3

from deployguard.appspec import DeploymentTarget, render_appspec
from deployguard.aws import clients
from tests.support.aws import (
    Version,
    deployment_group,
    function_with_versions,
    publish_policy,
    put_metric_alarm,
    start_deployment,
)
from tests.support.handlers import load_event

APPLICATION, GROUP = "orders-app", "orders-group"
ALIAS = "live"

# The guarded function: it answers a quote from its environment, so each version's config
# really changes what it does. TOTAL_AS is how the version returns its total.
APP_CODE = textwrap.dedent(
    """
    import os, time

    def handler(event, context):
        if event.get("action") == "sleep":
            time.sleep(float(event["seconds"]))
        if event.get("action") == "boom":
            raise RuntimeError("boom on purpose")
        custom = getattr(getattr(context, "client_context", None), "custom", None) or {}
        total = 12 if os.environ.get("TOTAL_AS", "number") == "number" else "12.00"
        return {"total": total, "currency": "EUR", "stage": os.environ.get("STAGE"),
                "synthetic": custom.get("deployguard-synthetic") == "true"}
    """
)


GOOD_ENV = {
    "STAGE": "staging",
    "DATABASE_URL": "postgres://db.staging.example.com/orders",
    "DB_PASSWORD_PARAM": "/orders/staging/db-password",
}

POLICY: dict[str, Any] = {
    "version": 1,
    "stage": "staging",
    "functions": {
        "orders": {
            "config": {
                "stage_variable": "STAGE",
                "required": ["DATABASE_URL"],
                "rules": [
                    {
                        "variable": "DATABASE_URL",
                        "part": "host",
                        "allow": [r"\.staging\."],
                        "deny": [r"\.prod\."],
                    }
                ],
                "references": {"required": ["DB_PASSWORD_PARAM"]},
            },
            "smoke": [
                {
                    "name": "quote",
                    "payload": {"action": "quote"},
                    "expect": [
                        {"path": "$.total", "equals": 12},
                        {"path": "$.currency", "equals": "EUR"},
                        {"path": "$.synthetic", "equals": True},
                    ],
                    "max_latency_ms": 5000,
                },
                {
                    "name": "stage",
                    "payload": {"action": "ping"},
                    "expect": [{"path": "$.stage", "equals": "staging"}],
                },
            ],
        }
    },
}

POLICY_BUCKET = "deployguard-staging-policies-123456789012-us-east-1"
HOOK_ENV = {"DEPLOYGUARD_STAGE": "staging", "DEPLOYGUARD_POLICY_BUCKET": POLICY_BUCKET}


@dataclass
class Release:
    """A function 'orders' with versions 1 (live) and 2 (candidate) and a CodeDeploy deployment."""

    target_env: dict[str, str] = field(default_factory=lambda: dict(GOOD_ENV))
    target_code: str = APP_CODE
    policy: dict[str, Any] | None = field(default_factory=lambda: copy.deepcopy(POLICY))
    function_name: str = "orders"
    function_stage: str | None = "staging"  # its deployguard:stage tag (None: untagged, out of scope)
    deployment_id: str = ""
    execution_id: str = ""

    def create(self) -> Release:
        from deployguard_cli.localaws import moto_codedeploy

        function_with_versions(
            self.function_name,
            [Version(APP_CODE, GOOD_ENV), Version(self.target_code, self.target_env)],
            alias=ALIAS,
            timeout=10,
            stage=self.function_stage,
        )
        boto3.client("ssm").put_parameter(
            Name="/orders/staging/db-password", Value="not-read", Type="SecureString"
        )
        if self.policy is not None:
            publish_policy(POLICY_BUCKET, self.policy)
        deployment_group(
            APPLICATION, GROUP, deploymentConfigName="CodeDeployDefault.LambdaCanary10Percent5Minutes"
        )
        target = DeploymentTarget(
            function_name=self.function_name, alias=ALIAS, current_version="1", target_version="2"
        )
        self.deployment_id = start_deployment(APPLICATION, GROUP, render_appspec(target))
        self.execution_id = moto_codedeploy.start_lifecycle_event(self.deployment_id, "BeforeAllowTraffic")
        return self

    @property
    def event(self) -> dict[str, str]:
        return {"DeploymentId": self.deployment_id, "LifecycleEventHookExecutionId": self.execution_id}

    def reports(self) -> list[str]:
        from deployguard_cli.localaws import moto_codedeploy

        return [r.status for r in moto_codedeploy.hook_reports(self.deployment_id)]


# --- the benchmarks' release: an empty handler, alarms picked by name ---------------------------
def empty_release() -> None:
    """'orders' (an empty handler) with versions 1 and 2, alias live on 1, and its CodeDeploy
    application and group; no deployment yet."""
    function_with_versions("orders", [Version(), Version(description="release 2")], alias=ALIAS)
    deployment_group(APPLICATION, GROUP)


def watch_policy(alarm_names: list[str]) -> dict[str, Any]:
    """The staging policy of 'orders' that watches ``alarm_names`` through a 30-minute bake (no
    config rules, no smoke test)."""
    return {
        "version": 1,
        "stage": "staging",
        "functions": {
            "orders": {
                "config": {"stage_variable": None},
                "alarms": {"select": {"names": alarm_names}},
                "version_health": {"min_invocations": 10},
                "bake": {"minutes": 30, "poll_seconds": 60},
                "deployment_group": {"application": APPLICATION, "name": GROUP},
            }
        },
    }


# --- after traffic shifts: alarms, metrics, the post-traffic policy --------------------------------
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
    orders["deployment_group"] = {"application": APPLICATION, "name": GROUP}
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
    put_metric_alarm(
        name,
        metric=metric,
        dimensions={"FunctionName": "orders", "Resource": "orders:live", "ExecutedVersion": version},
        tags=tags or {},
        treat_missing_data="notBreaching",
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
        publish_policy(POLICY_BUCKET, policy)

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

    clients.lambda_client().meta.events.register_first("before-call.lambda.UpdateAlias", move)
