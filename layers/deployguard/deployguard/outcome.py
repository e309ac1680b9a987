"""The outcome record: one structured record of every decision DeployGuard makes.

Every function (pre-traffic, post-traffic, alarm rollback) and the CLI write this one schema, so
Logs Insights, ``deployguard report``, the alerts and the dashboard read a single shape. It is
logged as one JSON line (message ``deployguard outcome``) whose top-level keys are the fields
below. Bump ``SCHEMA_VERSION`` on any incompatible change; adding an optional field is compatible.
``docs/outcome-record.schema.json`` is its JSON Schema (``deployguard.schema``).

A record never carries a secret value: :meth:`OutcomeRecord.redacted` masks every known secret
value and well-known key format in every free-text field before the record leaves the process.
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, computed_field, field_serializer

from deployguard.findings import CheckResult, Decision, Severity
from deployguard.secrets import Redactor

SCHEMA_VERSION = "deployguard.outcome/1"
RECORD_TYPE = "outcome"
LOG_MESSAGE = "deployguard outcome"
REASON_MAX = 2000


class Role(StrEnum):
    """Which DeployGuard part wrote the record."""

    PRE_TRAFFIC = "pre_traffic"
    POST_TRAFFIC = "post_traffic"
    BAKE = "bake"
    ALARM_ROLLBACK = "alarm_rollback"
    CLI = "cli"


class ActionKind(StrEnum):
    """What DeployGuard did about its decision."""

    STATUS_REPORTED = "status_reported"
    STATUS_ALREADY_REPORTED = "status_already_reported"
    DEPLOYMENT_STOPPED = "deployment_stopped"
    ALIAS_RESTORED = "alias_restored"
    BAKE_STARTED = "bake_started"
    NO_ACTION = "no_action"


ROLLBACK_ACTIONS = frozenset({ActionKind.DEPLOYMENT_STOPPED, ActionKind.ALIAS_RESTORED})

# Every field is always written, defaults included: the schema says so (serialization mode).
_WRITTEN = ConfigDict(json_schema_serialization_defaults_required=True)


class Action(BaseModel):
    model_config = _WRITTEN

    kind: ActionKind
    ok: bool = Field(True, description="False when the action was attempted and failed.")
    detail: str = Field("", description="The status reported, the version restored, or why it failed.")
    at: datetime = Field(default_factory=lambda: datetime.now(UTC))


class Bypassed(BaseModel):
    model_config = _WRITTEN

    reason: str
    approved_by: str


class CheckRecord(CheckResult):
    """A check as the record writes it: the check's result plus its stable ``code``."""

    model_config = _WRITTEN

    code: str = Field(
        description="The kind of check: its name up to the first ':' (config, smoke, policy, alarms, …)."
    )

    @classmethod
    def of(cls, check: CheckResult) -> CheckRecord:
        if isinstance(check, CheckRecord):
            return check
        return cls(
            name=check.name,
            result=check.result,
            duration_ms=check.duration_ms,
            message=check.message,
            findings=check.findings,
            code=check_code(check),
        )


def check_code(check: CheckResult) -> str:
    return check.name.split(":", 1)[0]


def failed_codes(check: CheckResult) -> list[str]:
    """What a blocking check failed on: its error findings' codes, else the check's own code."""
    if not check.blocking:
        return []
    codes = sorted({f.code for f in check.findings if f.severity is Severity.ERROR})
    return codes or [check_code(check)]


class OutcomeRecord(BaseModel):
    model_config = _WRITTEN

    schema_version: Literal["deployguard.outcome/1"] = "deployguard.outcome/1"
    record_type: Literal["outcome"] = "outcome"
    role: Role
    hook: Literal["BeforeAllowTraffic", "AfterAllowTraffic"] | None = Field(
        None, description="The CodeDeploy lifecycle hook, when the record comes from one."
    )
    stage: str | None = Field(None, description="dev, staging or prod.")
    deployment_id: str | None = Field(None, description="The CodeDeploy deployment (d-…).")
    lifecycle_event_hook_execution_id: str | None = None
    function_name: str | None = Field(None, description="The guarded function (not the hook's own).")
    alias: str | None = None
    current_version: str | None = Field(None, description="The version the alias served before.")
    target_version: str | None = Field(None, description="The version being deployed.")
    decision: Decision | None = Field(
        None, description="The status for CodeDeploy; null when none was decided (bake started, bad event)."
    )
    reason: str = Field("", description="Why, in one line: the blocking checks and their messages.")
    checks: list[CheckResult] = Field(default_factory=list)
    actions: list[Action] = Field(default_factory=list)
    bypass: Bypassed | None = None
    alarm_name: str | None = Field(None, description="The alarm that triggered a rollback.")
    alarm_at: datetime | None = Field(None, description="When that alarm went to ALARM.")
    alarm_to_restore_ms: float | None = Field(
        None, description="From the alarm's state change to the alias back on the previous version."
    )
    started_at: datetime = Field(default_factory=lambda: datetime.now(UTC))
    finished_at: datetime | None = None
    duration_ms: float | None = None

    @field_serializer("checks")
    def _checks_with_codes(self, checks: list[CheckResult]) -> list[CheckRecord]:
        return [CheckRecord.of(check) for check in checks]

    @computed_field(  # type: ignore[prop-decorator]
        description=(
            "True when the release was rolled back: DeployGuard stopped the deployment or restored "
            "the alias, or it reported Failed after traffic shifted (CodeDeploy then rolls back)."
        )
    )
    @property
    def rolled_back(self) -> bool:
        if any(a.kind in ROLLBACK_ACTIONS and a.ok for a in self.actions):
            return True
        return self.hook == "AfterAllowTraffic" and self.decision is Decision.FAILED and self.status_reported

    @property
    def status_reported(self) -> bool:
        """This record's decision reached CodeDeploy (not a failed report, not a retried one)."""
        return any(a.kind is ActionKind.STATUS_REPORTED and a.ok for a in self.actions)

    @property
    def failed_checks(self) -> list[CheckResult]:
        return [c for c in self.checks if c.blocking]

    def finish(self) -> OutcomeRecord:
        now = datetime.now(UTC)
        return self.model_copy(
            update={"finished_at": now, "duration_ms": (now - self.started_at).total_seconds() * 1000}
        )

    def redacted(self, redactor: Redactor) -> OutcomeRecord:
        """The record with every known secret value and key format masked, in every free-text field.

        The reason is clipped to REASON_MAX only after redaction, so a clip cannot split a secret.
        """
        record = OutcomeRecord.model_validate(_redact(self.model_dump(mode="json"), redactor))
        if len(record.reason) > REASON_MAX:
            record.reason = record.reason[: REASON_MAX - 3] + "..."
        return record


# Fields that hold enumerations, flags or timestamps, never free text: redacting them could only
# corrupt the record (a 4-character secret "2026" must not mask a year).
_STRUCTURAL = frozenset(
    {
        "schema_version",
        "record_type",
        "role",
        "hook",
        "decision",
        "result",
        "kind",
        "severity",
        "ok",
        "at",
        "alarm_at",
        "started_at",
        "finished_at",
    }
)


def _redact(value: Any, redactor: Redactor) -> Any:
    """Redact each string of a dumped record on its own: no JSON escaping can hide a secret."""
    if isinstance(value, dict):
        return {k: v if k in _STRUCTURAL else _redact(v, redactor) for k, v in value.items()}
    if isinstance(value, list):
        return [_redact(item, redactor) for item in value]
    if isinstance(value, str):
        return redactor(value)
    return value
