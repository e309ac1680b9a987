"""Test helpers for what DeployGuard writes: capture the log lines and EMF metrics that
``record_outcome`` emits, a CodeDeploy fake for the hook runner, and a recording alert publisher."""

from __future__ import annotations

import contextlib
import io
import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from aws_lambda_powertools.metrics.provider.cloudwatch_emf.types import CloudWatchEMFOutput

from deployguard.aws.codedeploy import CodeDeploy
from deployguard.findings import Decision
from deployguard.notify import Alert
from deployguard.observability import logger
from deployguard.outcome import LOG_MESSAGE


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
class FakeCodeDeploy(CodeDeploy):
    """The two calls the hook runner makes, recorded; ``fail_report`` makes the report raise."""

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
