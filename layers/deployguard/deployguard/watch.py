"""One poll of a release after traffic shifted: the guarded alarms and the new version's own metrics.

Shared by the post-traffic hook (its first poll) and the bake step (every later one), so a bake of
0 minutes and one of 55 judge a poll with the same code (the verdict: ``deployguard.bake``). Both
pass what CodeDeploy says of the deployment (its target and create time), never a stored copy.
"""

from __future__ import annotations

import time
from datetime import datetime
from functools import partial

from deployguard.alarms import select_alarms, timed_check
from deployguard.deployment import Deployment
from deployguard.errors import ResolutionError
from deployguard.findings import CheckResult
from deployguard.policy import FunctionPolicy
from deployguard.ports import AlarmSource, MetricSource
from deployguard.records import datarecord
from deployguard.version_health import check_version_health, health_queries, metric_window


@datarecord
class WatchPorts:
    alarms: AlarmSource
    metrics: MetricSource


def deployment_started_at(deployment: Deployment) -> datetime:
    """When the deployment was created, as CodeDeploy says: an alarm that entered ALARM before it is
    pre-existing. Without it no alarm could be told new from old, so the poll cannot be judged."""
    if deployment.create_time is None:
        raise ResolutionError(
            f"GetDeployment gave no createTime for deployment {deployment.deployment_id}: new alarms "
            "cannot be told from pre-existing ones"
        )
    return deployment.create_time


def poll_checks(
    entry: FunctionPolicy,
    watch: WatchPorts,
    *,
    deployment: Deployment,
    now: datetime,
    final: bool,
) -> list[CheckResult]:
    """One poll of ``deployment`` (resolved by the caller from CodeDeploy): the alarms the policy
    selects now (⌈K/100⌉ DescribeAlarms for K named alarms; one page per prefix; one tag lookup) and
    per-version health (1 GetMetricData)."""
    started_at = deployment_started_at(deployment)
    checks: list[CheckResult] = []
    if entry.alarms is not None:
        selector = entry.alarms.select
        checks.append(
            timed_check(
                partial(select_alarms, watch.alarms, selector), entry.alarms, deployment_started_at=started_at
            )
        )
    if entry.version_health is not None:
        target = deployment.target
        began = time.perf_counter()
        start, end = metric_window(started_at, now)
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
