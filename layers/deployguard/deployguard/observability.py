"""One Logger and one Metrics for every DeployGuard function, and the single place that turns an
outcome record into a log line, EMF metrics and (for a failed or rolled-back deployment) an alert.

Metric names, units and dimensions live in :data:`METRICS` only: the dashboard
(``deployguard_cli.dashboard``) and the tests read them from there, so the template and the code
cannot drift. Every metric also carries :data:`COMMON_DIMENSIONS`, set explicitly so the dimension
set never depends on whether ``POWERTOOLS_SERVICE_NAME`` happens to be set.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricUnit, single_metric

from deployguard.findings import Decision
from deployguard.notify import notify
from deployguard.outcome import LOG_MESSAGE, OutcomeRecord, failed_codes
from deployguard.secrets import Redactor

if TYPE_CHECKING:
    from deployguard.ports import AlertPublisher

NAMESPACE = "DeployGuard"
SERVICE = "deployguard"
UNKNOWN = "unknown"
ERROR_MAX = 300  # characters of an error message in a log line, after redaction

logger = Logger(service=SERVICE)
metrics = Metrics(namespace=NAMESPACE, service=SERVICE)

# name → (unit, dimensions), in the namespace NAMESPACE.
METRICS: dict[str, tuple[MetricUnit, tuple[str, ...]]] = {
    "Decisions": (MetricUnit.Count, ("Stage", "Function", "Hook", "Result")),
    "HookDuration": (MetricUnit.Milliseconds, ("Stage", "Function", "Hook")),
    "FailedChecks": (MetricUnit.Count, ("Stage", "Function", "Hook", "Check", "Result")),
    "Rollbacks": (MetricUnit.Count, ("Stage", "Function")),
    "AlarmToRestoreTime": (MetricUnit.Milliseconds, ("Stage", "Function")),
    "ObservedFailures": (MetricUnit.Count, ("Stage", "Function", "Hook")),
}
COMMON_DIMENSIONS: dict[str, str] = {"service": SERVICE}

METRIC_DESCRIPTIONS: dict[str, str] = {
    "Decisions": "1 per status decided by a hook; Result = Succeeded or Failed.",
    "HookDuration": "Wall time of a hook run that reached a decision.",
    "FailedChecks": "1 per code a blocking check failed on (finding code such as CFG002, else the check "
    "kind such as smoke or deadline); Result = failed or error (the check could not run).",
    "Rollbacks": "1 per release rolled back: DeployGuard stopped the deployment or restored the alias, "
    "or reported Failed after traffic shifted.",
    "AlarmToRestoreTime": "From the alarm's state change to the alias back on the previous version.",
    "ObservedFailures": "1 per outcome in observe mode that enforce mode would have failed or rolled "
    "back (reported Succeeded, nothing stopped: Decisions counts it as Succeeded).",
}

DIMENSION_DESCRIPTIONS: dict[str, str] = {
    "Stage": "dev, staging or prod (the hook's DEPLOYGUARD_STAGE)",
    "Function": "the guarded function's name",
    "Hook": "BeforeAllowTraffic, AfterAllowTraffic, or the role (alarm_rollback, bake) outside a hook",
    "Result": "Decisions: Succeeded | Failed; FailedChecks: failed | error",
    "Check": "the code a check failed on",
    "service": f"always {SERVICE}",
}


def _emit(name: str, value: float, dimensions: dict[str, str]) -> None:
    unit, expected = METRICS[name]
    with single_metric(
        name=name, unit=unit, value=value, namespace=NAMESPACE, default_dimensions=COMMON_DIMENSIONS
    ) as metric:
        for key in expected:
            metric.add_dimension(name=key, value=dimensions.get(key) or UNKNOWN)


def finish_record(
    record: OutcomeRecord, redactor: Redactor | None = None, *, alerts: AlertPublisher | None = None
) -> OutcomeRecord:
    """Stamp the record finished, redact it (``redactor`` is the invocation's: it knows the
    versions' secret values; without one, the formats-only ``Redactor()``), and record it
    (:func:`record_outcome`) with the same redactor. Returns the record as written."""
    redactor = redactor or Redactor()
    record = record.finish().redacted(redactor)
    record_outcome(record, alerts=alerts, redactor=redactor)
    return record


def record_outcome(
    record: OutcomeRecord, *, alerts: AlertPublisher | None = None, redactor: Redactor | None = None
) -> None:
    """Log the record as one structured line, emit its metrics (EMF, flushed at once), and alert.

    Call it after the status has been reported to CodeDeploy. The record must already be redacted;
    ``redactor`` (the invocation's) also redacts the alert's lines and a publishing error before
    each is clipped. An alert that cannot be published is logged, never raised: it must not fail a
    guard.
    """
    # NOTE: a failed or rolled-back outcome is a WARNING, so it survives POWERTOOLS_LOG_LEVEL=WARNING
    failed = record.rolled_back or Decision.FAILED in (record.decision, record.would_have)
    (logger.warning if failed else logger.info)(LOG_MESSAGE, extra=record.document())
    _emit_metrics(record)
    if alerts is not None:
        _alert(record, alerts, redactor or Redactor())


def _emit_metrics(record: OutcomeRecord) -> None:
    base = {
        "Stage": record.stage or UNKNOWN,
        "Function": record.function_name or UNKNOWN,
        "Hook": record.hook or record.role.value,
    }
    if record.decision is not None:
        _emit("Decisions", 1, {**base, "Result": record.decision.value})
        if record.duration_ms is not None:
            _emit("HookDuration", record.duration_ms, base)
    for check in record.checks:
        for code in failed_codes(check):
            _emit("FailedChecks", 1, {**base, "Check": code, "Result": check.result.value})
    if record.would_have is Decision.FAILED:
        _emit("ObservedFailures", 1, base)
    if record.rolled_back:
        _emit("Rollbacks", 1, base)
        if record.alarm_to_restore_ms is not None:
            _emit("AlarmToRestoreTime", record.alarm_to_restore_ms, base)


def _alert(record: OutcomeRecord, alerts: AlertPublisher, redactor: Redactor) -> None:
    try:
        alert = notify(record, alerts, redactor=redactor)
    except Exception as exc:  # NOTE: the status is already reported; an alert must never fail the guard
        logger.warning(
            "outcome alert not published",
            extra={
                "deployment_id": record.deployment_id,
                "error_type": type(exc).__name__,
                "error": redactor.clip(str(exc), ERROR_MAX),  # redact first, then clip
            },
        )
        return
    if alert is not None:
        logger.info(
            "outcome alert published", extra={"deployment_id": record.deployment_id, "subject": alert.subject}
        )
