"""EMF metrics: what ``record_outcome`` prints is exactly what ``METRICS`` documents — names, units,
dimensions, one namespace — whatever the environment sets."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from deployguard.findings import CheckResult, Decision, Finding, Result, Severity
from deployguard.observability import COMMON_DIMENSIONS, METRICS, NAMESPACE, record_outcome
from deployguard.outcome import Action, ActionKind, OutcomeRecord, Role
from deployguard.schema import parse_outcome
from tests.support.outcomes import captured_output, emf_lines, outcome_lines

STARTED = datetime(2026, 11, 28, 9, 0, tzinfo=UTC)
REPORTED = Action(kind=ActionKind.STATUS_REPORTED, detail="Failed")


def record(**fields: object) -> OutcomeRecord:
    base: dict[str, object] = {
        "role": Role.PRE_TRAFFIC,
        "hook": "BeforeAllowTraffic",
        "stage": "prod",
        "deployment_id": "d-ABCDEF123",
        "function_name": "orders",
        "alias": "live",
        "current_version": "1",
        "target_version": "2",
        "started_at": STARTED,
        "finished_at": STARTED + timedelta(milliseconds=420),
        "duration_ms": 420.0,
    }
    return parse_outcome({**base, **fields})


FAILED_CONFIG = CheckResult(
    name="config",
    result=Result.FAILED,
    findings=[
        Finding(code="CFG002", severity=Severity.ERROR, subject="STAGE", message="wrong stage"),
        Finding(code="CFG003", severity=Severity.ERROR, subject="DATABASE_URL", message="prod host"),
        Finding(code="DRF004", severity=Severity.WARNING, subject="MemorySize", message="changed"),
    ],
)
DEADLINE = CheckResult(name="deadline", result=Result.ERROR, message="checks did not finish")
WARNED = CheckResult(
    name="config",
    result=Result.WARNED,
    findings=[Finding(code="DRF004", severity=Severity.WARNING, subject="MemorySize", message="changed")],
)


def emitted(outcome: OutcomeRecord) -> list[tuple[str, float, dict[str, str]]]:
    """(name, value, dimensions) of every EMF line, after checking each against METRICS."""
    with captured_output() as out:
        record_outcome(outcome)
    metrics = []
    for line in emf_lines(out.getvalue()):
        (directive,) = line["_aws"]["CloudWatchMetrics"]
        (metric,) = directive["Metrics"]
        name = metric["Name"]
        unit, dimensions = METRICS[name]
        assert directive["Namespace"] == NAMESPACE
        assert metric["Unit"] == unit.value
        (dimension_set,) = directive["Dimensions"]
        assert sorted(dimension_set) == sorted([*dimensions, *COMMON_DIMENSIONS])
        values = {key: str(line[key]) for key in dimension_set}  # type: ignore[literal-required]
        value = line[name]  # type: ignore[literal-required]
        (value,) = value if isinstance(value, list) else [value]  # EMF allows an array of values
        metrics.append((name, float(value), values))
    return metrics


def test_a_failed_pre_traffic_decision() -> None:
    metrics = emitted(record(decision=Decision.FAILED, checks=[FAILED_CONFIG, DEADLINE], actions=[REPORTED]))

    base = {"Stage": "prod", "Function": "orders", "Hook": "BeforeAllowTraffic", "service": "deployguard"}
    assert metrics == [
        ("Decisions", 1.0, {**base, "Result": "Failed"}),
        ("HookDuration", 420.0, base),
        ("FailedChecks", 1.0, {**base, "Check": "CFG002", "Result": "failed"}),
        ("FailedChecks", 1.0, {**base, "Check": "CFG003", "Result": "failed"}),
        ("FailedChecks", 1.0, {**base, "Check": "deadline", "Result": "error"}),
    ]


def test_a_passing_decision_with_warnings_counts_no_failed_check() -> None:
    metrics = emitted(record(decision=Decision.SUCCEEDED, checks=[WARNED]))

    assert [(name, dims.get("Result")) for name, _, dims in metrics] == [
        ("Decisions", "Succeeded"),
        ("HookDuration", None),
    ]


def test_an_observed_failure_is_counted_apart_from_the_succeeded_it_reported() -> None:
    # GIVEN observe mode: the checks failed, the hook reported Succeeded
    outcome = record(
        decision=Decision.SUCCEEDED, mode="observe", would_have=Decision.FAILED, checks=[FAILED_CONFIG]
    )

    metrics = emitted(outcome)

    # THEN the dashboard can tell it from a release that passed: ObservedFailures, and the failed
    # check by its code; Decisions counts what CodeDeploy was told
    base = {"Stage": "prod", "Function": "orders", "Hook": "BeforeAllowTraffic", "service": "deployguard"}
    assert metrics == [
        ("Decisions", 1.0, {**base, "Result": "Succeeded"}),
        ("HookDuration", 420.0, base),
        ("FailedChecks", 1.0, {**base, "Check": "CFG002", "Result": "failed"}),
        ("FailedChecks", 1.0, {**base, "Check": "CFG003", "Result": "failed"}),
        ("ObservedFailures", 1.0, base),
    ]


def test_an_alarm_rollback_counts_a_rollback_and_the_time_to_restore() -> None:
    outcome = record(
        role=Role.ALARM_ROLLBACK,
        hook=None,
        actions=[
            Action(kind=ActionKind.DEPLOYMENT_STOPPED),
            Action(kind=ActionKind.ALIAS_RESTORED, detail="1"),
        ],
        alarm_name="orders-errors",
        alarm_to_restore_ms=1500.0,
    )

    metrics = emitted(outcome)

    base = {"Stage": "prod", "Function": "orders", "service": "deployguard"}
    assert metrics == [("Rollbacks", 1.0, base), ("AlarmToRestoreTime", 1500.0, base)]


def test_the_time_to_restore_travels_in_the_record_to_its_log_line_and_its_metric() -> None:
    outcome = record(
        role=Role.ALARM_ROLLBACK,
        hook=None,
        actions=[Action(kind=ActionKind.ALIAS_RESTORED)],
        alarm_to_restore_ms=900.0,
    )

    with captured_output() as out:
        record_outcome(outcome)

    (line,) = outcome_lines(out.getvalue())
    assert line["alarm_to_restore_ms"] == 900.0
    assert [(name, value) for name, value, _ in emitted(outcome)] == [
        ("Rollbacks", 1.0),
        ("AlarmToRestoreTime", 900.0),
    ]


def test_a_failed_post_traffic_report_is_a_rollback_but_a_failed_restore_is_not() -> None:
    post = record(
        hook="AfterAllowTraffic", role=Role.POST_TRAFFIC, decision=Decision.FAILED, actions=[REPORTED]
    )
    not_restored = record(
        role=Role.ALARM_ROLLBACK, hook=None, actions=[Action(kind=ActionKind.ALIAS_RESTORED, ok=False)]
    )
    retried = record(
        hook="AfterAllowTraffic",
        role=Role.POST_TRAFFIC,
        decision=Decision.FAILED,
        actions=[Action(kind=ActionKind.STATUS_ALREADY_REPORTED, detail="Failed")],
    )

    assert "Rollbacks" in [name for name, _, _ in emitted(post)]
    assert "Rollbacks" not in [name for name, _, _ in emitted(not_restored)]
    assert "Rollbacks" not in [name for name, _, _ in emitted(retried)]


def test_a_record_without_stage_or_function_still_has_every_dimension() -> None:
    metrics = emitted(
        OutcomeRecord(role=Role.PRE_TRAFFIC, hook="BeforeAllowTraffic", decision=Decision.FAILED)
    )

    assert metrics[0] == (
        "Decisions",
        1.0,
        {
            "Stage": "unknown",
            "Function": "unknown",
            "Hook": "BeforeAllowTraffic",
            "Result": "Failed",
            "service": "deployguard",
        },
    )


@pytest.mark.parametrize("service", [None, "something-else"])
def test_the_dimension_set_does_not_depend_on_the_environment(
    monkeypatch: pytest.MonkeyPatch, service: str | None
) -> None:
    """Powertools adds a 'service' dimension only when POWERTOOLS_SERVICE_NAME is set; a dashboard
    SEARCH matches one exact dimension set, so DeployGuard always sets it itself."""
    if service is None:
        monkeypatch.delenv("POWERTOOLS_SERVICE_NAME", raising=False)
    else:
        monkeypatch.setenv("POWERTOOLS_SERVICE_NAME", service)
    monkeypatch.setenv("POWERTOOLS_METRICS_NAMESPACE", "SomethingElse")

    metrics = emitted(record(decision=Decision.SUCCEEDED))  # checks namespace and dimension set

    assert {dims["service"] for _, _, dims in metrics} == {"deployguard"}


def test_every_documented_metric_is_emitted_by_some_outcome() -> None:
    outcomes = [
        record(decision=Decision.FAILED, checks=[FAILED_CONFIG], actions=[REPORTED]),
        record(
            role=Role.ALARM_ROLLBACK,
            hook=None,
            actions=[Action(kind=ActionKind.ALIAS_RESTORED)],
            alarm_to_restore_ms=1.0,
        ),
        record(decision=Decision.SUCCEEDED, mode="observe", would_have=Decision.FAILED),
    ]

    names = {name for outcome in outcomes for name, _, _ in emitted(outcome)}

    assert names == set(METRICS)
