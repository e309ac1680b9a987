"""Per-version health: Errors / Invocations and Throttles of exactly the target version.

AWS/Lambda publishes invocations through an alias with the dimensions ``FunctionName``,
``Resource`` (``function:alias``) and ``ExecutedVersion``, so the new version is judged on its
own numbers, never diluted by the old version's traffic. All series go into one GetMetricData
call per poll. Too few invocations to judge is 'inconclusive'; when the bake window ends the
policy decides whether that passes.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import field
from datetime import datetime, timedelta

from deployguard.appspec import DeploymentTarget
from deployguard.findings import CheckResult, Finding, Result, Severity
from deployguard.policy import VersionHealth
from deployguard.records import datarecord

NAMESPACE = "AWS/Lambda"
CHECK_NAME = "version-health"
PERIOD_SECONDS = 60  # Lambda's metrics have 1-minute granularity
SERIES = {"invocations": "Invocations", "errors": "Errors", "throttles": "Throttles"}


@datarecord
class MetricQuery:
    """One series: ``id`` names it in the answer (lower-case first letter, as GetMetricData wants)."""

    id: str
    namespace: str
    metric_name: str
    dimensions: Mapping[str, str] = field(default_factory=dict)
    stat: str = "Sum"


def health_queries(target: DeploymentTarget) -> list[MetricQuery]:
    """The target version's Invocations, Errors and Throttles through the deployment's alias."""
    dimensions = {
        "FunctionName": target.function_name,
        "Resource": f"{target.function_name}:{target.alias}",
        "ExecutedVersion": target.target_version,
    }
    return [
        MetricQuery(id=query_id, namespace=NAMESPACE, metric_name=metric, dimensions=dimensions)
        for query_id, metric in SERIES.items()
    ]


def metric_window(started_at: datetime, now: datetime) -> tuple[datetime, datetime]:
    """[start of the deployment's minute, end of now's minute): whole periods, never empty."""
    start = started_at.replace(second=0, microsecond=0)
    minutes = max(1, math.ceil((now - start).total_seconds() / PERIOD_SECONDS))
    return start, start + timedelta(seconds=minutes * PERIOD_SECONDS)


def check_version_health(
    sums: Mapping[str, float],
    policy: VersionHealth,
    *,
    target_version: str,
    final: bool,
    duration_ms: float = 0.0,
) -> CheckResult:
    """Judge the sums. ``final``: the bake window is over, so 'inconclusive' is settled by the policy."""
    invocations, errors, throttles = (sums.get(key, 0.0) for key in SERIES)
    findings: list[Finding] = []
    if throttles > policy.max_throttles:
        findings.append(
            Finding(
                code="VH002",
                severity=Severity.ERROR,
                subject="Throttles",
                message=f"version {target_version} was throttled {throttles:.0f} time(s); the policy allows {policy.max_throttles}",
            )
        )
    judged = invocations > 0 and invocations >= policy.min_invocations
    rate = errors / invocations if invocations else 0.0
    if judged and rate > policy.max_error_rate:
        findings.append(
            Finding(
                code="VH001",
                severity=Severity.ERROR,
                subject="Errors",
                message=(
                    f"version {target_version} error rate {rate:.1%} ({errors:.0f} of {invocations:.0f} "
                    f"invocations) is above max_error_rate {policy.max_error_rate:.1%}"
                ),
            )
        )
    if findings:
        return _result(Result.FAILED, "; ".join(f.message for f in findings), findings, duration_ms)
    if judged:
        message = (
            f"version {target_version}: error rate {rate:.1%} ({errors:.0f} of {invocations:.0f}), "
            f"{throttles:.0f} throttle(s): within the policy"
        )
        return _result(Result.PASSED, message, [], duration_ms)
    too_few = (
        f"version {target_version} had {invocations:.0f} invocation(s), fewer than min_invocations "
        f"{policy.min_invocations}: too few to judge"
    )
    if not final:
        return _result(Result.INCONCLUSIVE, f"{too_few} yet", [], duration_ms)
    if policy.inconclusive == "fail":
        finding = Finding(
            code="VH003",
            severity=Severity.ERROR,
            subject="Invocations",
            message=f"{too_few} (inconclusive: fail); send traffic during the bake or lower min_invocations",
        )
        return _result(Result.FAILED, finding.message, [finding], duration_ms)
    return _result(Result.INCONCLUSIVE, f"{too_few}; passes (inconclusive: pass)", [], duration_ms)


def _result(result: Result, message: str, findings: list[Finding], duration_ms: float) -> CheckResult:
    return CheckResult(
        name=CHECK_NAME, result=result, message=message, findings=findings, duration_ms=duration_ms
    )
