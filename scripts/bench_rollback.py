"""Benchmarks of the post-traffic watch and the alarm rollback, on moto, printed as counts and ratios
(never asserted in tests: timing is the machine's). API calls are counted with a botocore
``before-call.*.*`` hook on the clients DeployGuard's adapters use, not by hand.

(a) The rollback hot path for a canary, from the alarm event to the alias restored: the AWS calls
    (target ≤ 4) and its time in moto relative to one UpdateAlias call in moto.
(b) One bake poll watching K alarms (K = 1, 100, 250): DescribeAlarms calls (⌈K/100⌉) and
    GetMetricData calls (1, for every per-version series).

Run from the repository root: .venv/bin/python -m scripts.bench_rollback (its world is built with
tests/support, as the integration tests build theirs).
"""

from __future__ import annotations

import math
import os
import statistics
import time

from tests.support.aws import (
    FAKE_CREDENTIALS,
    REAL_AWS_VARIABLES,
    counted_calls,
    local_aws,
    publish_policy,
    put_metric_alarm,
    start_deployment,
)
from tests.support.outcomes import captured_output
from tests.support.release import (
    ALIAS,
    APPLICATION,
    GROUP,
    HOOK_ENV,
    POLICY_PARAMETER,
    alarm_event,
    empty_release,
    watch_policy,
)

RUNS = 15
FUNCTION = "orders"


def environment() -> None:
    os.environ.update({**FAKE_CREDENTIALS, **HOOK_ENV})
    for key in REAL_AWS_VARIABLES:
        os.environ.pop(key, None)


def start_canary() -> str:
    """A new deployment 1 → 2 in flight, the alias serving 1 with 10% on 2."""
    import boto3

    from deployguard.appspec import DeploymentTarget, render_appspec
    from deployguard_cli.localaws import moto_codedeploy

    content = render_appspec(
        DeploymentTarget(function_name=FUNCTION, alias=ALIAS, current_version="1", target_version="2")
    )
    deployment_id = start_deployment(APPLICATION, GROUP, content)
    moto_codedeploy.start_lifecycle_event(deployment_id, "BeforeAllowTraffic")
    boto3.client("lambda").update_alias(
        FunctionName=FUNCTION,
        Name=ALIAS,
        FunctionVersion="1",
        RoutingConfig={"AdditionalVersionWeights": {"2": 0.1}},
    )
    return deployment_id


def rollback_hot_path() -> None:
    from deployguard import entrypoints
    from deployguard.alarm_rollback import RollbackPorts, handle_alarm_event
    from deployguard.settings import HookSettings

    empty_release()
    publish_policy(POLICY_PARAMETER, watch_policy(["orders-errors"]))
    settings = HookSettings.from_environ(os.environ)
    store = entrypoints.policy_store(settings.policy_parameter, settings.policy_cache_seconds)
    ports = RollbackPorts(
        codedeploy=entrypoints.codedeploy_adapter(),
        functions=entrypoints.lambda_adapter(),
        alarms=entrypoints.alarms_adapter(),
        policy=store,
    )
    durations, counts = [], []
    for run in range(RUNS + 1):
        start_canary()
        event = alarm_event("orders-errors")
        with counted_calls() as calls, captured_output():
            began = time.perf_counter()
            records = handle_alarm_event(event, ports, stage=settings.stage, clock=entrypoints.now)
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
    from deployguard.bake_step import BakePorts, run_bake_step
    from deployguard.settings import HookSettings
    from deployguard.watch import WatchPorts

    made = 0
    print("(b) one bake poll watching K alarms (names selected by policy)")
    for k in (1, 100, 250):
        names = [f"orders-alarm-{i:03d}" for i in range(k)]
        for name in names[made:]:
            put_metric_alarm(name)
        made = k
        publish_policy(POLICY_PARAMETER, watch_policy(names))
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
            codedeploy=entrypoints.codedeploy_adapter(),
            watch=WatchPorts(alarms=entrypoints.alarms_adapter(), metrics=entrypoints.metrics_adapter()),
            policy=store,
        )
        with counted_calls() as calls, captured_output():
            result = run_bake_step(
                state.model_dump(mode="json"), ports, stage=settings.stage, clock=entrypoints.now
            )
        assert result["verdict"] == "continue", result
        describe, metric = calls.count("DescribeAlarms"), calls.count("GetMetricData")
        others = [c for c in calls if c not in ("DescribeAlarms", "GetMetricData")]
        print(
            f"    K={k:>3}: DescribeAlarms {describe} (ceil(K/100) = {math.ceil(k / 100)}), "
            f"GetMetricData {metric}; other calls: {', '.join(others) or 'none'}"
        )
        boto3.client("codedeploy").stop_deployment(deploymentId=deployment_id)


def main() -> None:
    from deployguard import entrypoints

    environment()
    with local_aws():
        entrypoints.reset()
        rollback_hot_path()
        poll_costs()
    entrypoints.reset()


if __name__ == "__main__":
    main()
