"""The outcome record: one structured record of every decision DeployGuard makes.

Every function (pre-traffic, post-traffic, bake step, alarm rollback) and the CLI write this one
schema, so Logs Insights, ``deployguard report``, the alerts and the dashboard read a single shape.
It is logged as one JSON line (message ``deployguard outcome``) whose top-level keys are the fields
below. Bump ``SCHEMA_VERSION`` on any incompatible change; adding an optional field is compatible.
``docs/outcome-record.schema.json`` is its JSON Schema (``deployguard.schema``).

A record never carries a secret value: :meth:`OutcomeRecord.redacted` masks every known secret
value and well-known key format in every free-text field before the record leaves the process, and
only then clips each field (``docs/secrets.md``).
"""

from __future__ import annotations

from dataclasses import field, fields, is_dataclass, replace
from datetime import UTC, datetime
from enum import Enum, StrEnum
from typing import Any, Literal

from deployguard.findings import CheckResult, Decision, Severity
from deployguard.records import datarecord
from deployguard.secrets import Redactor

SCHEMA_VERSION = "deployguard.outcome/1"
RECORD_TYPE = "outcome"
LOG_MESSAGE = "deployguard outcome"
TEXT_MAX = 2000  # characters of any free-text field (the reason, a check's message, an action's detail)


def _about(description: str) -> dict[str, str]:
    """Field metadata: the description the JSON Schema (``deployguard.schema``) gives the field."""
    return {"description": description}


def _now() -> datetime:
    return datetime.now(UTC)


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


@datarecord
class Action:
    kind: ActionKind
    ok: bool = field(default=True, metadata=_about("False when the action was attempted and failed."))
    detail: str = field(
        default="", metadata=_about("The status reported, the version restored, or why it failed.")
    )
    at: datetime = field(default_factory=_now)


@datarecord
class Bypassed:
    reason: str
    approved_by: str


@datarecord
class CheckRecord(CheckResult):
    """A check as the record writes it: the check's result plus its stable ``code``."""

    code: str = field(
        metadata=_about(
            "The kind of check: its name up to the first ':' (config, smoke, policy, alarms, …)."
        ),
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


@datarecord
class OutcomeRecord:
    """Plain data (no validation at construction): DeployGuard builds it, so it costs no import time.

    :meth:`document` is the written form (what a log line holds); ``deployguard.schema`` parses a
    document back and describes it as a JSON Schema.
    """

    schema_version: Literal["deployguard.outcome/1"] = "deployguard.outcome/1"
    record_type: Literal["outcome"] = "outcome"
    role: Role
    hook: Literal["BeforeAllowTraffic", "AfterAllowTraffic"] | None = field(
        default=None, metadata=_about("The CodeDeploy lifecycle hook, when the record comes from one.")
    )
    stage: str | None = field(default=None, metadata=_about("dev, staging or prod."))
    deployment_id: str | None = field(default=None, metadata=_about("The CodeDeploy deployment (d-…)."))
    lifecycle_event_hook_execution_id: str | None = None
    function_name: str | None = field(
        default=None, metadata=_about("The guarded function (not the hook's own).")
    )
    alias: str | None = None
    current_version: str | None = field(default=None, metadata=_about("The version the alias served before."))
    target_version: str | None = field(default=None, metadata=_about("The version being deployed."))
    decision: Decision | None = field(
        default=None,
        metadata=_about("The status for CodeDeploy; null when none was decided (bake started, bad event)."),
    )
    reason: str = field(
        default="", metadata=_about("Why, in one line: the blocking checks and their messages.")
    )
    mode: Literal["observe"] | None = field(
        default=None,
        metadata=_about(
            "'observe' when the policy's mode is observe: DeployGuard reported Succeeded and changed "
            "nothing, whatever the checks said (would_have holds their verdict); null: enforced."
        ),
    )
    would_have: Decision | None = field(
        default=None,
        metadata=_about(
            "In observe mode, the verdict enforce mode would have acted on: Failed means the release "
            "would have been failed (hooks, bake) or rolled back (alarm rollback)."
        ),
    )
    checks: list[CheckResult] = field(default_factory=list)
    actions: list[Action] = field(default_factory=list)
    bypass: Bypassed | None = None
    alarm_name: str | None = field(default=None, metadata=_about("The alarm that triggered a rollback."))
    alarm_at: datetime | None = field(default=None, metadata=_about("When that alarm went to ALARM."))
    alarm_to_restore_ms: float | None = field(
        default=None,
        metadata=_about("From the alarm's state change to the alias back on the previous version."),
    )
    started_at: datetime = field(default_factory=_now)
    finished_at: datetime | None = None
    duration_ms: float | None = None

    @property
    def rolled_back(self) -> bool:
        """True when the release was rolled back: DeployGuard stopped the deployment or restored the
        alias, or it reported Failed after traffic shifted (CodeDeploy then rolls back)."""
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
        now = _now()
        return replace(self, finished_at=now, duration_ms=(now - self.started_at).total_seconds() * 1000)

    def redacted(self, redactor: Redactor) -> OutcomeRecord:
        """The record with every known secret value and key format masked, in every free-text field.

        Each field is clipped to TEXT_MAX only after it was redacted (``Redactor.clip``), so a clip
        can neither leave part of a secret nor cut a mask in two.
        """
        redacted: OutcomeRecord = _redact(self, redactor)
        return redacted

    def document(self) -> dict[str, Any]:
        """The written form, as JSON types: every check with its ``code``, and ``rolled_back``."""
        written: dict[str, Any] = json_types(self)
        written["checks"] = [json_types(CheckRecord.of(check)) for check in self.checks]
        written["rolled_back"] = self.rolled_back
        return written


# Fields that hold enumerations, flags or timestamps, never free text: redacting them could only
# corrupt the record (a 4-character secret "2026" must not mask a year).
_STRUCTURAL = frozenset(
    {
        "schema_version",
        "record_type",
        "role",
        "hook",
        "decision",
        "mode",
        "would_have",
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
    """Redact each string of a record on its own (no JSON escaping can hide a secret), then clip it
    to TEXT_MAX."""
    if isinstance(value, Enum):
        return value
    if is_dataclass(value) and not isinstance(value, type):
        free_text = (f.name for f in fields(value) if f.name not in _STRUCTURAL)
        return replace(value, **{name: _redact(getattr(value, name), redactor) for name in free_text})
    if isinstance(value, list):
        return [_redact(item, redactor) for item in value]
    if isinstance(value, str):
        return redactor.clip(value, TEXT_MAX)
    return value


def json_types(value: Any) -> Any:
    """``value`` (a record, or any DeployGuard dataclass) as JSON types: enumerations by value,
    timestamps in ISO 8601 (UTC as ``Z``)."""
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, datetime):
        text = value.isoformat()
        return text[:-6] + "Z" if text.endswith("+00:00") else text
    if is_dataclass(value) and not isinstance(value, type):
        return {f.name: json_types(getattr(value, f.name)) for f in fields(value)}
    if isinstance(value, list | tuple):
        return [json_types(item) for item in value]
    if isinstance(value, dict):
        return {str(k): json_types(v) for k, v in value.items()}
    return value
