"""Benchmarks of the post-traffic watch and the alarm rollback, on moto, printed as counts and ratios
(never asserted in tests: timing is the machine's). API calls are counted with a botocore
``before-call.*.*`` hook on the clients DeployGuard's adapters use, not by hand.

(a) The rollback hot path for a canary, from the alarm event to the alias restored: the AWS calls
    (target ≤ 4) and its time in moto relative to one UpdateAlias call in moto.
(b) One bake poll watching K alarms (K = 1, 100, 250): DescribeAlarms calls (⌈K/100⌉) and
    GetMetricData calls (1, for every per-version series).

Run: .venv/bin/python scripts/bench_rollback.py
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import logging
import math
import os
import statistics
import time
import zipfile
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

RUNS = 15
FUNCTION, ALIAS, APPLICATION, GROUP = "orders", "live", "orders-app", "orders-group"
PARAMETER = "/deployguard/staging/policy"
ROLE = "arn:aws:iam::123456789012:role/bench"


def environment() -> None:
    for key, value in {
        "AWS_ACCESS_KEY_ID": "bench",
        "AWS_SECRET_ACCESS_KEY": "bench",
        "AWS_DEFAULT_REGION": "us-east-1",
        "DEPLOYGUARD_STAGE": "staging",
        "DEPLOYGUARD_POLICY_PARAMETER": PARAMETER,
    }.items():
        os.environ[key] = value
    os.environ.pop("AWS_ENDPOINT_URL", None)
    os.environ.pop("AWS_PROFILE", None)


def policy(alarm_names: list[str]) -> dict[str, Any]:
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


def code() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("app.py", "def handler(event, context):\n    return {}\n")
    return buffer.getvalue()


def setup_release() -> None:
    import boto3

    trust = {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}
        ],
    }
    role = boto3.client("iam").create_role(RoleName="bench", AssumeRolePolicyDocument=json.dumps(trust))[
        "Role"
    ]["Arn"]
    lam = boto3.client("lambda")
    lam.create_function(
        FunctionName=FUNCTION,
        Runtime="python3.12",
        Role=role,
        Handler="app.handler",
        Code={"ZipFile": code()},
    )
    lam.publish_version(FunctionName=FUNCTION)
    lam.publish_version(FunctionName=FUNCTION)
    lam.create_alias(FunctionName=FUNCTION, Name=ALIAS, FunctionVersion="1")
    codedeploy = boto3.client("codedeploy")
    codedeploy.create_application(applicationName=APPLICATION, computePlatform="Lambda")
    codedeploy.create_deployment_group(
        applicationName=APPLICATION,
        deploymentGroupName=GROUP,
        serviceRoleArn=ROLE,
        deploymentStyle={"deploymentType": "BLUE_GREEN", "deploymentOption": "WITH_TRAFFIC_CONTROL"},
    )


def put_policy(document: dict[str, Any]) -> None:
    import boto3

    boto3.client("ssm").put_parameter(
        Name=PARAMETER, Value=json.dumps(document), Type="String", Overwrite=True
    )


def start_canary() -> str:
    """A new deployment 1 → 2 in flight, the alias serving 1 with 10% on 2."""
    import boto3

    from deployguard.appspec import DeploymentTarget, render_appspec
    from deployguard_cli.localaws import moto_codedeploy

    content = render_appspec(
        DeploymentTarget(function_name=FUNCTION, alias=ALIAS, current_version="1", target_version="2")
    )
    deployment_id: str = boto3.client("codedeploy").create_deployment(
        applicationName=APPLICATION,
        deploymentGroupName=GROUP,
        revision={
            "revisionType": "AppSpecContent",
            "appSpecContent": {"content": content, "sha256": hashlib.sha256(content.encode()).hexdigest()},
        },
    )["deploymentId"]
    moto_codedeploy.start_lifecycle_event(deployment_id, "BeforeAllowTraffic")
    boto3.client("lambda").update_alias(
        FunctionName=FUNCTION,
        Name=ALIAS,
        FunctionVersion="1",
        RoutingConfig={"AdditionalVersionWeights": {"2": 0.1}},
    )
    return deployment_id


def alarm_event(name: str) -> dict[str, Any]:
    when = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "+0000"
    return {
        "version": "0",
        "id": "bench",
        "detail-type": "CloudWatch Alarm State Change",
        "source": "aws.cloudwatch",
        "time": when,
        "resources": [f"arn:aws:cloudwatch:us-east-1:123456789012:alarm:{name}"],
        "detail": {
            "alarmName": name,
            "state": {"value": "ALARM", "timestamp": when},
            "previousState": {"value": "OK", "timestamp": when},
            "configuration": {
                "metrics": [
                    {
                        "id": "m1",
                        "metricStat": {
                            "metric": {
                                "namespace": "AWS/Lambda",
                                "name": "Errors",
                                "dimensions": {
                                    "FunctionName": FUNCTION,
                                    "Resource": f"{FUNCTION}:{ALIAS}",
                                    "ExecutedVersion": "2",
                                },
                            }
                        },
                    }
                ]
            },
        },
    }


@contextlib.contextmanager
def counted() -> Iterator[list[str]]:
    """Operations called by DeployGuard's own clients inside the block."""
    from deployguard.aws import clients

    calls: list[str] = []

    def count(model: Any, **_kwargs: Any) -> None:
        calls.append(model.name)

    targets: list[Any] = [
        clients.codedeploy(),
        clients.lambda_(),
        clients.ssm(),
        clients.cloudwatch(),
        clients.tagging(),
    ]
    for client in targets:
        client.meta.events.register("before-call.*.*", count)
    try:
        yield calls
    finally:
        for client in targets:
            client.meta.events.unregister("before-call.*.*", count)


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """Discard the outcome log lines and EMF metrics (still produced: they are part of the work)."""
    from deployguard.observability import logger

    handler = logger.logger_handler
    assert isinstance(handler, logging.StreamHandler)
    previous = handler.setStream(io.StringIO())
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            yield
    finally:
        handler.setStream(previous)


def rollback_hot_path() -> None:
    from deployguard import entrypoints
    from deployguard.rollback import RollbackPorts, handle_alarm_event
    from deployguard.settings import HookSettings

    setup_release()
    put_policy(policy(["orders-errors"]))
    settings = HookSettings.from_environ(os.environ)
    store = entrypoints.policy_store(settings.policy_parameter, settings.policy_cache_seconds)
    ports = RollbackPorts(
        codedeploy=entrypoints.codedeploy(),
        lambda_=entrypoints.lambda_adapter(),
        alarms=entrypoints.alarms(),
        load_policy=lambda: store.load(settings.stage),
    )
    durations, counts = [], []
    for run in range(RUNS + 1):
        start_canary()
        event = alarm_event("orders-errors")
        with counted() as calls, quiet():
            began = time.perf_counter()
            records = handle_alarm_event(event, ports, stage="staging", clock=entrypoints.now)
            elapsed = (time.perf_counter() - began) * 1000
        assert records and records[0].rolled_back, records
        if run == 0:
            cold = list(calls)  # the first one also reads the policy (cached while warm)
            continue
        durations.append(elapsed)
        counts.append(list(calls))

    lam = entrypoints.lambda_adapter()._client  # the very client the hot path used
    update_alias = []
    for _ in range(RUNS):
        began = time.perf_counter()
        lam.update_alias(
            FunctionName=FUNCTION,
            Name=ALIAS,
            FunctionVersion="1",
            RoutingConfig={"AdditionalVersionWeights": {}},
        )
        update_alias.append((time.perf_counter() - began) * 1000)

    warm = counts[0]
    assert all(c == warm for c in counts), counts
    hot, one = statistics.median(durations), statistics.median(update_alias)
    print("(a) alarm rollback hot path, canary (alias with routing weights), moto in process")
    print(f"    AWS calls (warm): {len(warm)} -> {' -> '.join(warm)} (target <= 4)")
    extra = [c for c in cold if c not in warm]
    print(
        f"    AWS calls (cold start): {len(cold)} (+ {', '.join(extra) or 'none'}: the policy, then cached)"
    )
    print(
        f"    time: {hot:.1f} ms vs one UpdateAlias {one:.1f} ms -> ratio {hot / one:.1f}x (median of {RUNS})"
    )


def poll_costs() -> None:
    import boto3

    from deployguard import entrypoints
    from deployguard.appspec import DeploymentTarget
    from deployguard.bake import BakeState, BakeWindow
    from deployguard.post_traffic import BakePorts, WatchPorts, run_bake_step
    from deployguard.settings import HookSettings

    cloudwatch = boto3.client("cloudwatch")
    made = 0
    print("(b) one bake poll watching K alarms (names selected by policy)")
    for k in (1, 100, 250):
        names = [f"orders-alarm-{i:03d}" for i in range(k)]
        for name in names[made:]:
            cloudwatch.put_metric_alarm(
                AlarmName=name,
                Namespace="AWS/Lambda",
                MetricName="Errors",
                Statistic="Sum",
                Period=60,
                EvaluationPeriods=1,
                Threshold=0,
                ComparisonOperator="GreaterThanThreshold",
            )
        made = k
        put_policy(policy(names))
        entrypoints.policy_store.cache_clear()
        deployment_id = start_canary()
        now = entrypoints.now()
        state = BakeState(
            deployment_id=deployment_id,
            lifecycle_event_hook_execution_id="bench",
            stage="staging",
            target=DeploymentTarget(
                function_name=FUNCTION, alias=ALIAS, current_version="1", target_version="2"
            ),
            deployment_started_at=now,
            window=BakeWindow(started_at=now, until=now.replace(year=now.year + 1), poll_seconds=60),
            alarm_names=names,
        )
        settings = HookSettings.from_environ(os.environ)
        store = entrypoints.policy_store(settings.policy_parameter, settings.policy_cache_seconds)
        store.load(settings.stage)  # warm: the poll's own calls only
        ports = BakePorts(
            codedeploy=entrypoints.codedeploy(),
            watch=WatchPorts(alarms=entrypoints.alarms(), metrics=entrypoints.metrics()),
            load_policy=lambda store=store, settings=settings: store.load(settings.stage),  # type: ignore[misc]
        )
        with counted() as calls, quiet():
            result = run_bake_step(state.model_dump(mode="json"), ports, clock=entrypoints.now)
        assert result["verdict"] == "continue", result
        describe, metric = calls.count("DescribeAlarms"), calls.count("GetMetricData")
        others = [c for c in calls if c not in ("DescribeAlarms", "GetMetricData")]
        print(
            f"    K={k:>3}: DescribeAlarms {describe} (ceil(K/100) = {math.ceil(k / 100)}), "
            f"GetMetricData {metric}; other calls: {', '.join(others) or 'none'}"
        )
        boto3.client("codedeploy").stop_deployment(deploymentId=deployment_id)


def main() -> None:
    environment()
    from moto import mock_aws

    from deployguard import entrypoints
    from deployguard_cli.localaws import moto_cloudwatch, moto_codedeploy, moto_lambda_alias

    for extension in (moto_codedeploy, moto_cloudwatch, moto_lambda_alias):
        extension.install()
    with mock_aws(config={"lambda": {"use_docker": False}}):
        entrypoints.reset()
        rollback_hot_path()
        poll_costs()
    entrypoints.reset()


if __name__ == "__main__":
    main()
