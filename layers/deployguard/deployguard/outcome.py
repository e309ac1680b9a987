"""The outcome record: one structured record of every decision DeployGuard makes.

Every function (pre-traffic, post-traffic, alarm rollback) and the CLI write this one schema, so
Logs Insights, ``deployguard report`` and the dashboard read a single shape. Bump
``SCHEMA_VERSION`` on any incompatible change.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, Field

from deployguard.findings import CheckResult, Decision
from deployguard.secrets import Redactor

SCHEMA_VERSION = "deployguard.outcome/1"
LOG_MESSAGE = "deployguard outcome"


class Role(StrEnum):
    PRE_TRAFFIC = "pre_traffic"
    POST_TRAFFIC = "post_traffic"
    BAKE = "bake"
    ALARM_ROLLBACK = "alarm_rollback"
    CLI = "cli"


class ActionKind(StrEnum):
    STATUS_REPORTED = "status_reported"
    STATUS_ALREADY_REPORTED = "status_already_reported"
    DEPLOYMENT_STOPPED = "deployment_stopped"
    ALIAS_RESTORED = "alias_restored"
    BAKE_STARTED = "bake_started"
    NO_ACTION = "no_action"


class Action(BaseModel):
    kind: ActionKind
    ok: bool = True
    detail: str = ""
    at: datetime = Field(default_factory=lambda: datetime.now(UTC))


class Bypassed(BaseModel):
    reason: str
    approved_by: str


class OutcomeRecord(BaseModel):
    schema_version: Literal["deployguard.outcome/1"] = "deployguard.outcome/1"
    record_type: Literal["outcome"] = "outcome"
    role: Role
    hook: Literal["BeforeAllowTraffic", "AfterAllowTraffic"] | None = None
    stage: str | None = None
    deployment_id: str | None = None
    lifecycle_event_hook_execution_id: str | None = None
    function_name: str | None = None
    alias: str | None = None
    current_version: str | None = None
    target_version: str | None = None
    decision: Decision | None = None
    reason: str = ""
    checks: list[CheckResult] = Field(default_factory=list)
    actions: list[Action] = Field(default_factory=list)
    bypass: Bypassed | None = None
    started_at: datetime = Field(default_factory=lambda: datetime.now(UTC))
    finished_at: datetime | None = None
    duration_ms: float | None = None

    def finish(self) -> OutcomeRecord:
        now = datetime.now(UTC)
        return self.model_copy(
            update={"finished_at": now, "duration_ms": (now - self.started_at).total_seconds() * 1000}
        )

    def redacted(self, redactor: Redactor) -> OutcomeRecord:
        """The record with every known secret value and key format masked, in every field."""
        return OutcomeRecord.model_validate(json.loads(redactor(self.model_dump_json())))

    @property
    def failed_checks(self) -> list[CheckResult]:
        return [c for c in self.checks if c.blocking]
