"""One Logger and one Metrics for every DeployGuard function, and the single place that turns an
outcome record into log lines and EMF metrics.

Metric names and dimensions are documented in README ("Outcomes in CloudWatch") and read by the
dashboard test from :data:`METRICS`, so the template and the code cannot drift.
"""

from __future__ import annotations

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit, single_metric

from deployguard.findings import Result
from deployguard.outcome import LOG_MESSAGE, ActionKind, OutcomeRecord

NAMESPACE = "DeployGuard"
SERVICE = "deployguard"

logger = Logger(service=SERVICE)
metrics = Metrics(namespace=NAMESPACE, service=SERVICE)

# name → (unit, dimensions). Every metric also carries Powertools' default "service" dimension.
METRICS: dict[str, tuple[MetricUnit, tuple[str, ...]]] = {
    "Decisions": (MetricUnit.Count, ("Stage", "Function", "Hook", "Result")),
    "HookDuration": (MetricUnit.Milliseconds, ("Stage", "Function", "Hook")),
    "FailedChecks": (MetricUnit.Count, ("Stage", "Function", "Check")),
    "Rollbacks": (MetricUnit.Count, ("Stage", "Function")),
    "AlarmToRestoreTime": (MetricUnit.Milliseconds, ("Stage", "Function")),
}


def _emit(name: str, value: float, dimensions: dict[str, str]) -> None:
    unit, expected = METRICS[name]
    with single_metric(name=name, unit=unit, value=value, namespace=NAMESPACE) as metric:
        for key in expected:
            metric.add_dimension(name=key, value=dimensions.get(key) or "unknown")


def record_outcome(record: OutcomeRecord, *, alarm_to_restore_ms: float | None = None) -> None:
    """Log the record as one structured line and emit its metrics (EMF, flushed immediately)."""
    logger.info(LOG_MESSAGE, extra=record.model_dump(mode="json"))
    base = {
        "Stage": record.stage or "unknown",
        "Function": record.function_name or "unknown",
        "Hook": record.hook or record.role.value,
    }
    if record.decision is not None:
        _emit("Decisions", 1, {**base, "Result": record.decision.value})
        if record.duration_ms is not None:
            _emit("HookDuration", record.duration_ms, base)
    for check in record.checks:
        if check.result in (Result.FAILED, Result.ERROR):
            for code in sorted({f.code for f in check.findings} or {check.name.split(":", 1)[0]}):
                _emit("FailedChecks", 1, {**base, "Check": code})
    if any(a.kind is ActionKind.ALIAS_RESTORED and a.ok for a in record.actions):
        _emit("Rollbacks", 1, base)
        if alarm_to_restore_ms is not None:
            _emit("AlarmToRestoreTime", alarm_to_restore_ms, base)
