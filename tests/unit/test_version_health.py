"""Per-version health: the thresholds and the queries, pure (the GetMetricData call on moto is in
tests/integration/test_cloudwatch_adapter.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from deployguard.appspec import DeploymentTarget
from deployguard.findings import Result
from deployguard.policy import VersionHealth
from deployguard.version_health import check_version_health, health_queries, metric_window

POLICY = VersionHealth(max_error_rate=0.05, max_throttles=0, min_invocations=10, inconclusive="pass")
TARGET = DeploymentTarget(function_name="orders", alias="live", current_version="1", target_version="2")


def judge(
    invocations: float,
    errors: float = 0,
    throttles: float = 0,
    *,
    final: bool = True,
    policy: VersionHealth = POLICY,
) -> tuple[Result, list[str]]:
    check = check_version_health(
        {"invocations": invocations, "errors": errors, "throttles": throttles},
        policy,
        target_version="2",
        final=final,
    )
    return check.result, [f.code for f in check.findings]


@pytest.mark.parametrize(
    ("invocations", "errors", "throttles", "expected"),
    [
        (100, 5, 0, (Result.PASSED, [])),  # exactly at the limit passes
        (100, 6, 0, (Result.FAILED, ["VH001"])),
        (100, 0, 1, (Result.FAILED, ["VH002"])),
        (100, 50, 3, (Result.FAILED, ["VH002", "VH001"])),
        (10, 0, 0, (Result.PASSED, [])),
    ],
)
def test_errors_and_throttles_against_the_policy(
    invocations: float, errors: float, throttles: float, expected: tuple[Result, list[str]]
) -> None:
    assert judge(invocations, errors, throttles) == expected


def test_too_few_invocations_is_inconclusive_until_the_end_then_the_policy_decides() -> None:
    strict = POLICY.model_copy(update={"inconclusive": "fail"})

    assert judge(9, 9, final=False, policy=strict) == (Result.INCONCLUSIVE, [])
    assert judge(9, 9, final=True, policy=POLICY) == (Result.INCONCLUSIVE, [])
    assert judge(9, 9, final=True, policy=strict) == (Result.FAILED, ["VH003"])
    assert judge(0, final=True, policy=strict) == (Result.FAILED, ["VH003"])


def test_throttles_fail_even_when_there_are_too_few_invocations() -> None:
    assert judge(2, throttles=5, final=False) == (Result.FAILED, ["VH002"])


def test_the_metric_window_covers_whole_minutes_since_the_deployment() -> None:
    started = datetime(2026, 3, 2, 17, 0, 42, tzinfo=UTC)

    assert metric_window(started, started) == (
        started.replace(second=0),
        started.replace(second=0) + timedelta(minutes=1),
    )
    assert metric_window(started, started + timedelta(minutes=3))[1] == datetime(
        2026, 3, 2, 17, 4, tzinfo=UTC
    )


def test_the_queries_name_the_target_version_through_the_alias() -> None:
    assert {q.metric_name for q in health_queries(TARGET)} == {"Invocations", "Errors", "Throttles"}
    assert all(
        q.dimensions == {"FunctionName": "orders", "Resource": "orders:live", "ExecutedVersion": "2"}
        for q in health_queries(TARGET)
    )
