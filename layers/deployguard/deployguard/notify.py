"""Alerts: one short human summary of each failed or rolled-back deployment, built from its outcome
record (already redacted, so an alert can never carry a secret value). Every line is redacted again
with the invocation's redactor before it is clipped: a clip never leaves part of a secret.

Pure domain: :func:`alert_for` decides and writes the alert; :func:`notify` hands it to an
``AlertPublisher`` (``deployguard.ports``: the SNS adapter in ``deployguard.aws.sns``, or a fake). ``record_outcome`` calls it after
the status has been reported and logs, never raises, a publishing error.
"""

from __future__ import annotations

import re
from dataclasses import field
from typing import TYPE_CHECKING, Literal

from deployguard.appspec import plain_function_name
from deployguard.deployment import TERMINAL_STATUSES
from deployguard.findings import Decision, Severity
from deployguard.outcome import ActionKind, OutcomeRecord, Role
from deployguard.records import datarecord
from deployguard.secrets import Redactor

if TYPE_CHECKING:
    from deployguard.ports import AlertPublisher

SUBJECT_MAX = 99  # SNS: "less than 100 characters", ASCII, no line breaks
MAX_CHECKS = 5
MAX_FINDINGS = 3
MAX_LINE = 300
MAX_REASON = 600

AlertKind = Literal["failed", "rolled_back", "rollback_failed", "bypassed", "ended", "would_have_failed"]


@datarecord
class Alert:
    kind: AlertKind
    subject: str
    message: str
    deployment_id: str
    attributes: dict[str, str] = field(default_factory=dict)

    @property
    def deduplication_id(self) -> str:
        """Stable per deployment and kind: a FIFO topic drops a retried duplicate."""
        return re.sub(r"[^A-Za-z0-9_-]", "-", f"{self.deployment_id}-{self.kind}")[:128]


def report_command(deployment_id: str) -> str:
    return f"deployguard report {deployment_id}"


def alert_kind(record: OutcomeRecord) -> AlertKind | None:
    """Alert on a deployment DeployGuard rolled back, or failed with a status CodeDeploy received;
    on an alarm rollback that failed or was left partial (an action that failed, with or without a
    deployment known: an unreadable policy, a failing ListDeployments, the deadline); and on every
    bypass (hooks, bake step, alarm rollback: checks or rollback skipped by policy); and, in observe
    mode, on a release enforce mode would have failed or rolled back ("would have failed").

    A failed report is not alerted (Lambda retries the hook, and the retry alerts); a retried hook
    that finds its status already reported is not alerted again.
    """
    if record.role is Role.CLI:
        return None
    if record.role is Role.ALARM_ROLLBACK and any(not a.ok for a in record.actions):
        return "rollback_failed"
    if not record.deployment_id:
        return None
    if record.bypass is not None and (record.hook is None or record.status_reported):
        return "bypassed"
    if record.would_have is Decision.FAILED and (record.status_reported or record.hook is None):
        return "would_have_failed"
    if record.rolled_back:
        return "rolled_back"
    if record.decision is Decision.FAILED and record.status_reported:
        return "failed"
    if record.role is Role.POST_TRAFFIC and record.decision is None and _ended(record):
        return "ended"
    return None


def _ended(record: OutcomeRecord) -> bool:
    """The post-traffic hook found the deployment already ended (stopped by a rollback, failed):
    CodeDeploy took no status, and nobody was told by DeployGuard's hook."""
    ended = {f"deployment {status}" for status in TERMINAL_STATUSES}
    return any(a.kind is ActionKind.NO_ACTION and a.detail in ended for a in record.actions)


def alert_for(record: OutcomeRecord, *, redactor: Redactor | None = None) -> Alert | None:
    """The record's alert, if it warrants one; ``redactor`` (the invocation's, else formats only)
    redacts each line before it is clipped."""
    kind = alert_kind(record)
    if kind is None:
        return None
    redactor = redactor or Redactor()
    attributes = {
        "deployment_id": record.deployment_id or "",
        "stage": record.stage or "",
        "function": record.function_name or "",
        "outcome": kind,
    }
    return Alert(
        kind=kind,
        subject=subject(record, kind, redactor),
        message=body(record, kind, redactor),
        # NOTE: a rollback that failed before any deployment was known is keyed by its alarm
        deployment_id=record.deployment_id or f"alarm-{record.alarm_name or 'unknown'}",
        attributes={k: v for k, v in attributes.items() if v},
    )


def notify(
    record: OutcomeRecord, publisher: AlertPublisher, *, redactor: Redactor | None = None
) -> Alert | None:
    """Publish the record's alert, if it warrants one. Publisher errors propagate to the caller."""
    alert = alert_for(record, redactor=redactor)
    if alert is not None:
        publisher.publish(alert)
    return alert


def _ascii_line(text: str) -> str:
    return re.sub(r"[^\x20-\x7e]", "?", " ".join(text.split()))


def subject(record: OutcomeRecord, kind: AlertKind, redactor: Redactor | None = None) -> str:
    """``DeployGuard: <function> (<stage>) deployment <id> failed at <hook>`` in under 100 ASCII
    characters: when too long, the hook goes first, then the function name is shortened (redacted
    first, then clipped)."""
    redactor = redactor or Redactor()
    name = record.function_name or "function"
    function = _ascii_line(redactor(plain_function_name(name)))  # a name, not an ARN
    stage = f" ({record.stage})" if record.stage else ""
    what = _what(record, kind)
    where = f" at {record.hook or record.role.value}" if kind == "failed" else ""
    text = f"DeployGuard: {function}{stage}{what}{where}"
    if len(text) > SUBJECT_MAX:
        room = SUBJECT_MAX - len(f"DeployGuard: {stage}{what}")
        function = redactor.clip(function, max(room, 4))
        text = f"DeployGuard: {function}{stage}{what}"
    return _ascii_line(text)[:SUBJECT_MAX]


def _what(record: OutcomeRecord, kind: AlertKind) -> str:
    if kind == "rollback_failed":
        if record.deployment_id:
            return f" rollback of deployment {record.deployment_id} FAILED"
        return f" alarm rollback FAILED ({record.alarm_name or 'no alarm'})"
    verb = {
        "failed": "failed",
        "rolled_back": "rolled back",
        "bypassed": "bypassed by policy",
        "ended": "ended (no status)",
        "would_have_failed": "would have failed (observe)",
    }[kind]
    return f" deployment {record.deployment_id} {verb}"


def _clip(text: str, redactor: Redactor, limit: int = MAX_LINE) -> str:
    """One line of at most ``limit`` characters: redacted first, then clipped."""
    return redactor.clip(" ".join(text.split()), limit)


def body(record: OutcomeRecord, kind: AlertKind, redactor: Redactor | None = None) -> str:
    redactor = redactor or Redactor()
    verb = {
        "failed": "failed",
        "rolled_back": "rolled back",
        "rollback_failed": "could not finish rolling back",
        "bypassed": "let through, bypassed by policy,",
        "ended": "reported no status for (it had already ended)",
        "would_have_failed": "observed, and would have failed or rolled back (observe mode: it changed nothing),",
    }[kind]
    versions = f"version {record.current_version or '?'} -> {record.target_version or '?'}"
    where = f" at {record.hook}" if record.hook else ""
    lines = [
        f"DeployGuard {verb} deployment {record.deployment_id or '(none found)'} of "
        f"{record.function_name or '?'} (alias {record.alias or '?'}, {versions}) in {record.stage or '?'}{where}.",
        "",
    ]
    if record.bypass is not None:
        bypass = f"Bypass: {record.bypass.reason} (approved by {record.bypass.approved_by})"
        lines += [_clip(bypass, redactor), ""]
    failed = record.failed_checks
    if failed:
        lines.append("What failed:")
        for check in failed[:MAX_CHECKS]:
            lines.append(f"- {check.name} ({check.result.value}): {_clip(check.message, redactor)}")
            errors = [f for f in check.findings if f.severity is Severity.ERROR]
            lines += [
                f"    {f.code} {f.subject}: {_clip(f.message, redactor)}" for f in errors[:MAX_FINDINGS]
            ]
            if len(errors) > MAX_FINDINGS:
                lines.append(f"    ... and {len(errors) - MAX_FINDINGS} more")
        if len(failed) > MAX_CHECKS:
            lines.append(f"- ... and {len(failed) - MAX_CHECKS} more failed checks")
        lines.append("")
    if record.alarm_name:
        lines += [f"Alarm: {record.alarm_name} went to ALARM.", ""]
    if record.reason:
        lines += [f"Why: {_clip(record.reason, redactor, MAX_REASON)}", ""]
    lines.append("What DeployGuard did:")
    lines += [f"- {_action_line(a.kind, a.ok, a.detail, redactor)}" for a in record.actions] or ["- nothing"]
    lines += [
        "",
        f"Result: {consequence(record)}",
    ]
    if record.deployment_id:
        lines += ["", f"The whole story: {report_command(record.deployment_id)}"]
    return "\n".join(lines)


def _action_line(kind: ActionKind, ok: bool, detail: str, redactor: Redactor) -> str:
    text = {
        ActionKind.STATUS_REPORTED: f"reported {detail} to CodeDeploy",
        ActionKind.STATUS_ALREADY_REPORTED: f"found the status already reported ({detail})",
        ActionKind.DEPLOYMENT_STOPPED: f"stopped the deployment with rollback {detail}".rstrip(),
        ActionKind.ALIAS_RESTORED: f"restored the alias {detail}".rstrip(),
        ActionKind.BAKE_STARTED: f"started the bake {detail}".rstrip(),
        ActionKind.NO_ACTION: f"took no action {detail}".rstrip(),
    }[kind]
    return _clip(text if ok else f"FAILED to act ({kind.value}): {detail}", redactor)


def consequence(record: OutcomeRecord) -> str:
    """What the decision meant for the alias, in words."""
    alias, current, target = record.alias or "?", record.current_version or "?", record.target_version or "?"
    if any(a.kind is ActionKind.ALIAS_RESTORED and a.ok for a in record.actions):
        after = (
            f", {record.alarm_to_restore_ms / 1000:.1f} s after the alarm"
            if record.alarm_to_restore_ms
            else ""
        )
        return f"alias {alias} is back on version {current}{after}."
    if record.rolled_back:
        return f"CodeDeploy rolls alias {alias} back to version {current}."
    if record.mode == "observe" and record.would_have is Decision.FAILED:
        return "observe mode: nothing was stopped or rolled back; set mode: enforce to act on this verdict."
    if record.role is Role.ALARM_ROLLBACK:
        return "nothing was rolled back: check the alias with `deployguard status`, roll back with `deployguard rollback`."
    if record.decision is Decision.FAILED and record.hook == "BeforeAllowTraffic":
        return f"no traffic reached version {target}; CodeDeploy ends the deployment and alias {alias} stays on version {current}."
    if record.decision is Decision.FAILED:
        return "CodeDeploy ends the deployment."
    if record.decision is Decision.SUCCEEDED:
        return "CodeDeploy continues the deployment."
    return "no status decided."
