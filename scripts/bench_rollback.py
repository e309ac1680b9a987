"""Benchmarks of the post-traffic watch and the alarm rollback, on moto, printed as counts and ratios
(never asserted in tests: timing is the machine's). API calls are counted with a botocore
``before-call.*.*`` hook on the clients DeployGuard's adapters use, not by hand.

(a) The rollback hot path for a canary, from the alarm event to the alias restored: the AWS calls
    and its time in moto relative to one UpdateAlias call in moto. Before the event was trusted it
    was 4 calls (ListDeployments, StopDeployment, GetAlias, UpdateAlias); now the alarm is read back
    (DescribeAlarms) and the release's versions (GetDeployment, GetApplicationRevision) before
    anything changes, so the alias is moved only while it still has the deployment's shape, and the
    redactor reads both versions' environments (2 GetFunctionConfiguration) after the restore: 7
    calls until the alias is back, 9 in all.
(b) One bake poll watching K alarms (K = 1, 100, 250): DescribeAlarms calls (⌈K/100⌉) and
    GetMetricData calls (1, for every per-version series), and the poll's other calls (it resolves
    the deployment again: GetDeployment + GetApplicationRevision).

Run from the repository root: .venv/bin/python -m scripts.bench_rollback (its world is built with
tests/support, as the integration tests build theirs).
"""

from __future__ import annotations

import math
import os
import statistics
import time
from datetime import timedelta

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
    set_alarm,
    watch_policy,
)

RUNS = 15
FUNCTION = "orders"
ALARM = "orders-errors"
RESTORED_BY = "UpdateAlias"


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
    put_metric_alarm(ALARM, dimensions={"FunctionName": FUNCTION, "Resource": f"{FUNCTION}:{ALIAS}"})
    publish_policy(POLICY_PARAMETER, watch_policy([ALARM]))
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
        time.sleep(0.002)  # NOTE: CloudWatch's timestamps are in milliseconds: after the deployment
        set_alarm(ALARM, "ALARM")  # the rollback reads the alarm back: it must really be in ALARM
        event = alarm_event(ALARM)
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
    restored = warm.index(RESTORED_BY) + 1
    print(f"    AWS calls (warm): {len(warm)} -> {' -> '.join(warm)}")
    print(f"    until the alias is back: {restored} (was 4 before the event was verified; +1 DescribeAlarms,")
    print("      +2 for the release's versions: the alias moves only while it has the deployment's shape)")
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
    from deployguard.bake import BakeState, BakeWindow, Verdict, decide_poll, execution_name, output
    from deployguard.bake_step import BakePorts, run_bake_step
    from deployguard.settings import HookSettings
    from deployguard.watch import WatchPorts

    made = 0
    print("(b) one bake poll watching K alarms (names selected by policy) that continues the bake")
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
            window=BakeWindow(started_at=now, until=now + timedelta(minutes=30), poll_seconds=60),
        )
        settings = HookSettings.from_environ(os.environ)
        store = entrypoints.policy_store(settings.policy_parameter, settings.policy_cache_seconds)
        store.load(settings.stage)  # warm: the poll's own calls only
        ports = BakePorts(
            codedeploy=entrypoints.codedeploy_adapter(),
            functions=entrypoints.lambda_adapter(),
            watch=WatchPorts(alarms=entrypoints.alarms_adapter(), metrics=entrypoints.metrics_adapter()),
            policy=store,
        )
        event = {
            "input": output(state, decide_poll(state.window, [], now)),
            "execution_name": execution_name(deployment_id, "bench"),
        }
        with counted_calls() as calls, captured_output():
            result = run_bake_step(event, ports, stage=settings.stage, clock=entrypoints.now)
        assert result["verdict"] == Verdict.CONTINUE.value, result
        describe, metric = calls.count("DescribeAlarms"), calls.count("GetMetricData")
        others = [c for c in calls if c not in ("DescribeAlarms", "GetMetricData")]
        print(
            f"    K={k:>3}: DescribeAlarms {describe} (ceil(K/100) = {math.ceil(k / 100)}), "
            f"GetMetricData {metric}; other calls: {', '.join(others) or 'none'}"
        )
        boto3.client("codedeploy").stop_deployment(deploymentId=deployment_id)
    print(
        "    the poll that ends the bake adds GetFunctionConfiguration per version (2) for the record's"
        " redactor, and PutLifecycleEventHookExecutionStatus"
    )


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
