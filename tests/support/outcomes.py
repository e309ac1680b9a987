"""What DeployGuard writes, read back: the log lines and EMF metrics ``record_outcome`` emits
captured; a CodeDeploy fake for the hook runner and a recording alert publisher; an alarm rollback's
outcome record to start from. No AWS: the unit tier uses it too."""

from __future__ import annotations

import contextlib
import io
import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from aws_lambda_powertools.metrics.provider.cloudwatch_emf.types import CloudWatchEMFOutput

from deployguard.findings import Decision
from deployguard.hook import Evaluate, guard_lifecycle_event
from deployguard.notify import Alert
from deployguard.observability import logger
from deployguard.outcome import LOG_MESSAGE, Action, ActionKind, OutcomeRecord, Role


@contextlib.contextmanager
def captured_output() -> Iterator[io.StringIO]:
    """Everything written while inside: Powertools Logger lines and EMF lines (printed), in order.

    NOTE: the Logger's handler keeps the stdout it found at import, so capsys cannot see it; its
    stream is swapped here instead.
    """
    buffer = io.StringIO()
    handler = logger.logger_handler
    assert isinstance(handler, logging.StreamHandler)
    previous = handler.setStream(buffer)
    try:
        with contextlib.redirect_stdout(buffer):
            yield buffer
    finally:
        handler.setStream(previous)


def json_lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


def outcome_lines(text: str) -> list[dict[str, Any]]:
    return [line for line in json_lines(text) if line.get("message") == LOG_MESSAGE]


def emf_lines(text: str) -> list[CloudWatchEMFOutput]:
    return [line for line in json_lines(text) if "_aws" in line]  # type: ignore[misc]


@dataclass
class FakeCodeDeploy:
    """The hook runner's port (``deployguard.ports.HookStatusPort``), recorded; ``fail_report``
    makes the report raise."""

    reports: list[tuple[str, str, Decision]] = field(default_factory=list)
    already: str | None = None
    events: list[str] = field(default_factory=list)  # shared with the publisher: the order of things
    fail_report: Exception | None = None

    def lifecycle_event_status(self, deployment_id: str, lifecycle_event: str) -> str | None:
        return self.already

    def report(self, deployment_id: str, lifecycle_event_hook_execution_id: str, decision: Decision) -> bool:
        if self.fail_report is not None:
            raise self.fail_report
        self.reports.append((deployment_id, lifecycle_event_hook_execution_id, decision))
        self.events.append(f"report {decision.value}")
        return True


HOOK_EVENT = {"DeploymentId": "d-ABCDEF123", "LifecycleEventHookExecutionId": "exec-1"}


def guard_event(
    evaluate: Evaluate,
    codedeploy: FakeCodeDeploy,
    *,
    alerts: Any = None,
    remaining_ms: int = 60_000,
) -> OutcomeRecord:
    """The hook protocol run on :data:`HOOK_EVENT` as a prod pre-traffic hook, with 1 s reserve."""
    return guard_lifecycle_event(
        HOOK_EVENT,
        hook="BeforeAllowTraffic",
        role=Role.PRE_TRAFFIC,
        stage="prod",
        codedeploy=codedeploy,
        evaluate=evaluate,
        remaining_ms=lambda: remaining_ms,
        reserve_seconds=1,
        alerts=alerts,
    )


@dataclass
class RecordingPublisher:
    alerts: list[Alert] = field(default_factory=list)
    events: list[str] = field(default_factory=list)
    error: Exception | None = None

    def publish(self, alert: Alert) -> None:
        self.events.append(f"publish {alert.kind}")
        if self.error is not None:
            raise self.error
        self.alerts.append(alert)


DEPLOYMENT_ID = "d-ABCDEF123"


def rollback_record(**fields: Any) -> OutcomeRecord:
    """The alarm rollback of a prod canary of 'orders' (alias live, version 1 -> 2): orders-errors
    went to ALARM, the deployment was stopped and the alias restored; ``fields`` change or add to it."""
    story: dict[str, Any] = {
        "role": Role.ALARM_ROLLBACK,
        "stage": "prod",
        "deployment_id": DEPLOYMENT_ID,
        "function_name": "orders",
        "alias": "live",
        "current_version": "1",
        "target_version": "2",
        "reason": "orders-errors went to ALARM during the deployment",
        "alarm_name": "orders-errors",
        "actions": [
            Action(kind=ActionKind.DEPLOYMENT_STOPPED, detail=fields.get("deployment_id", DEPLOYMENT_ID)),
            Action(kind=ActionKind.ALIAS_RESTORED, detail="live -> 1"),
        ],
    }
    return OutcomeRecord(**(story | fields))
