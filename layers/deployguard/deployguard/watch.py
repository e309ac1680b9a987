"""One poll of a release after traffic shifted: the guarded alarms and the new version's own metrics.

Shared by the post-traffic hook (its first poll) and the bake step (every later one), so a bake of
0 minutes and one of 55 judge a poll with the same code (the verdict: ``deployguard.bake``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime

from deployguard.alarms import AlarmSelection, timed_check
from deployguard.appspec import DeploymentTarget
from deployguard.findings import CheckResult
from deployguard.policy import FunctionPolicy
from deployguard.ports import AlarmSource, MetricSource
from deployguard.records import datarecord
from deployguard.version_health import check_version_health, health_queries, metric_window


@datarecord
class WatchPorts:
    alarms: AlarmSource
    metrics: MetricSource


def poll_checks(
    entry: FunctionPolicy,
    watch: WatchPorts,
    *,
    target: DeploymentTarget,
    deployment_started_at: datetime,
    alarms: Callable[[], AlarmSelection],
    now: datetime,
    final: bool,
) -> list[CheckResult]:
    """One poll: the alarm check (⌈K/100⌉ DescribeAlarms) and per-version health (1 GetMetricData).

    ``alarms`` reads the alarms' states: a first selection by the policy's selectors, or a later
    look at the alarms selected before.
    """
    checks: list[CheckResult] = []
    if entry.alarms is not None:
        checks.append(timed_check(alarms, entry.alarms, deployment_started_at=deployment_started_at))
    if entry.version_health is not None:
        began = time.perf_counter()
        start, end = metric_window(deployment_started_at, now)
        sums = watch.metrics.sums(health_queries(target), start, end)
        checks.append(
            check_version_health(
                sums,
                entry.version_health,
                target_version=target.target_version,
                final=final,
                duration_ms=(time.perf_counter() - began) * 1000,
            )
        )
    return checks
