"""The story of one deployment, told from its outcome records.

``build_report(records)`` and ``render_report(report)`` need no AWS: the rehearsal prints the same
report from the records it captured. :class:`OutcomeLogs` finds the records of a deployment in the
DeployGuard log groups (FilterLogEvents with a JSON filter pattern, every page), for
``deployguard report DEPLOYMENT_ID``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ValidationError, field_serializer

from deployguard.aws.errors import aws_call
from deployguard.errors import DeployGuardError
from deployguard.findings import Decision, Severity
from deployguard.notify import consequence
from deployguard.outcome import RECORD_TYPE, SCHEMA_VERSION, ActionKind, CheckRecord, OutcomeRecord
from deployguard.schema import parse_outcome
from deployguard_cli.render import RESULT_MARKS, terminal_safe

if TYPE_CHECKING:
    from mypy_boto3_logs import CloudWatchLogsClient

DEFAULT_LOG_GROUP_PREFIX = "/aws/lambda/CodeDeployHook_deployguard"
# The hooks are CodeDeployHook_deployguard-<stage>-*; the bake step and the alarm rollback are
# deployguard-<stage>-* (CodeDeploy invokes only the hooks, which must be named CodeDeployHook_*).
DEFAULT_LOG_GROUP_PREFIXES = (DEFAULT_LOG_GROUP_PREFIX, "/aws/lambda/deployguard-")
DEPLOYMENT_ID = re.compile(r"^[A-Za-z0-9-]{1,64}$")  # d-XXXXXXXXX; nothing that could bend the filter pattern
SCHEMA_FAMILY = SCHEMA_VERSION.rsplit("/", 1)[0] + "/"

MAX_ERRORS = 5

Outcome = Literal["succeeded", "failed", "rolled_back", "undecided"]


class ReportError(DeployGuardError):
    code = "REPORT"


class TimelineEntry(BaseModel):
    at: datetime
    source: str  # the hook (BeforeAllowTraffic…) or the role (alarm_rollback…)
    event: str  # started | alarm | decided | no decision | an action kind
    detail: str = ""


class Report(BaseModel):
    deployment_id: str
    outcome: Outcome
    function_name: str | None
    alias: str | None
    stage: str | None
    current_version: str | None
    target_version: str | None
    decision: Decision | None
    reason: str
    errors: list[str]  # the error findings behind the decision: "CODE subject: message"
    rolled_back: bool
    rollback: str  # what happened to the alias, in words
    timeline: list[TimelineEntry]
    records: list[OutcomeRecord]  # in the order they started

    @field_serializer("records")
    def _written(self, records: list[OutcomeRecord]) -> list[dict[str, Any]]:
        return [record.document() for record in records]  # as the log lines hold them


def _first(records: Sequence[OutcomeRecord], field: str) -> str | None:
    """The first value of a text ``field`` that ``records`` set."""
    return next((str(getattr(r, field)) for r in records if getattr(r, field)), None)


def _source(record: OutcomeRecord) -> str:
    return record.hook or record.role.value


def _checks_summary(record: OutcomeRecord) -> str:
    counts: dict[str, int] = {}
    for check in record.checks:
        counts[check.result.value] = counts.get(check.result.value, 0) + 1
    listed = ", ".join(f"{n} {result}" for result, n in counts.items())
    return f"{len(record.checks)} check(s): {listed}" if record.checks else "no checks"


_Entry = tuple[datetime, int, TimelineEntry]  # (when, order among equal times, entry)


def _timeline(record: OutcomeRecord) -> list[_Entry]:
    source = _source(record)

    def entry(at: datetime, order: int, event: str, detail: str) -> _Entry:
        return at, order, TimelineEntry(at=at, source=source, event=event, detail=detail)

    entries = [entry(record.started_at, 0, "started", record.role.value)]
    if record.alarm_at is not None:
        entries.append(entry(record.alarm_at, 1, "alarm", f"{record.alarm_name or 'an alarm'} went to ALARM"))
    # NOTE: a decision precedes the actions taken on it; it is stamped with the first of them.
    decided_at = min((a.at for a in record.actions), default=record.finished_at or record.started_at)
    took = f"; {record.duration_ms:.0f} ms" if record.duration_ms is not None else ""
    if record.decision is not None:
        entries.append(
            entry(decided_at, 2, f"decided {record.decision.value}", f"{_checks_summary(record)}{took}")
        )
    else:
        entries.append(
            entry(decided_at, 2, "no decision", f"{_checks_summary(record)}{took}; {record.reason}")
        )
    for action in record.actions:
        entries.append(
            entry(action.at, 3, action.kind.value, action.detail + ("" if action.ok else " (FAILED)"))
        )
    return entries


def build_report(records: Iterable[OutcomeRecord], deployment_id: str | None = None) -> Report:
    """The story of one deployment (``deployment_id``, or the first one named in ``records``)."""
    records = list(records)
    deployment_id = deployment_id or next((r.deployment_id for r in records if r.deployment_id), None)
    unique: dict[str, OutcomeRecord] = {}
    for record in records:
        if record.deployment_id == deployment_id:
            # the same line read twice counts once
            unique.setdefault(json.dumps(record.document(), sort_keys=True), record)
    mine = sorted(unique.values(), key=lambda r: (r.started_at, r.finished_at or r.started_at))
    if deployment_id is None or not mine:
        raise ReportError(f"no outcome records for deployment {deployment_id or '(none named)'}")

    rolled = [r for r in mine if r.rolled_back]
    failed = [r for r in mine if r.decision is Decision.FAILED]
    decided = [r for r in mine if r.decision is not None]
    outcome: Outcome = (
        "rolled_back" if rolled else "failed" if failed else "succeeded" if decided else "undecided"
    )
    deciding = (rolled or failed or decided[-1:] or mine[-1:])[0]
    timeline = sorted((entry for record in mine for entry in _timeline(record)), key=lambda e: (e[0], e[1]))
    if outcome == "succeeded":
        rollback = "nothing rolled back."
    elif outcome == "undecided":
        rollback = f"no status decided yet ({deciding.reason or 'no reason recorded'})."
    else:
        rollback = consequence(deciding)
    return Report(
        deployment_id=deployment_id,
        outcome=outcome,
        function_name=_first(mine, "function_name"),
        alias=_first(mine, "alias"),
        stage=_first(mine, "stage"),
        current_version=_first(mine, "current_version"),
        target_version=_first(mine, "target_version"),
        decision=deciding.decision,
        reason=deciding.reason,
        errors=[
            f"{f.code} {f.subject}: {f.message}"
            for check in deciding.failed_checks
            for f in check.findings
            if f.severity is Severity.ERROR
        ],
        rolled_back=bool(rolled),
        rollback=rollback,
        timeline=[entry for _, _, entry in timeline],
        records=mine,
    )


def _time(at: datetime) -> str:
    return at.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]


def _check_lines(check: CheckRecord) -> list[str]:
    lines = [
        f"    [{RESULT_MARKS[check.result]}] {check.name:<24} {check.duration_ms:>7.0f} ms  {check.message}".rstrip()
    ]
    lines += [f"             {f.severity.value} {f.code} {f.subject}: {f.message}" for f in check.findings]
    return lines


def render_report(report: Report) -> str:
    """The report as text: summary, timeline (UTC), every check of every hook, what was done; each
    line terminal-safe (a function's error text cannot drive the terminal)."""
    verdict = {
        "succeeded": "SUCCEEDED",
        "failed": "FAILED",
        "rolled_back": "ROLLED BACK",
        "undecided": "NO DECISION",
    }[report.outcome]
    versions = f"version {report.current_version or '?'} -> {report.target_version or '?'}"
    lines = [
        f"Deployment {report.deployment_id}: {verdict}",
        f"  function  {report.function_name or '?'}, alias {report.alias or '?'}, {versions}",
        f"  stage     {report.stage or '?'}",
    ]
    if report.reason:
        lines.append(f"  why       {report.reason}")
    lines += [f"            - {error}" for error in report.errors[:MAX_ERRORS]]
    if len(report.errors) > MAX_ERRORS:
        lines.append(f"            - … and {len(report.errors) - MAX_ERRORS} more (see Checks)")
    lines += [f"  rollback  {report.rollback}", "", "Timeline (UTC)"]
    width = max(len(e.source) for e in report.timeline)
    event_width = max(len(e.event) for e in report.timeline)
    for entry in report.timeline:
        lines.append(
            f"  {_time(entry.at)}  {entry.source:<{width}}  {entry.event:<{event_width}}  {entry.detail}".rstrip()
        )
    lines += ["", "Checks"]
    for record in report.records:
        decision = record.decision.value if record.decision else "no decision"
        role = f" ({record.role.value})" if record.hook else ""
        lines.append(f"  {_source(record)}{role}: {decision}")
        if record.bypass is not None:
            lines.append(f"    BYPASSED: {record.bypass.reason} (approved by {record.bypass.approved_by})")
        lines += [line for check in record.checks for line in _check_lines(CheckRecord.of(check))]
        if not record.checks:
            lines.append(f"    (no checks) {record.reason}".rstrip())
        for action in record.actions:
            if action.kind in (ActionKind.ALIAS_RESTORED, ActionKind.DEPLOYMENT_STOPPED) or not action.ok:
                state = "done" if action.ok else "FAILED"
                lines.append(f"    action {action.kind.value} {state}: {action.detail}".rstrip())
    return "\n".join(terminal_safe(line) for line in lines)


# --- reading the records from CloudWatch Logs ---------------------------------------------------


def _outcome_document(message: str) -> dict[str, Any] | None:
    """The JSON object of a log event if it is an outcome record (of any schema version)."""
    start = message.find("{")
    if start < 0:
        return None
    try:
        document = json.loads(message[start:])
    except json.JSONDecodeError:
        return None
    if isinstance(document, dict) and isinstance(document.get("message"), dict):
        document = document["message"]  # Lambda's JSON log format wraps what the function wrote
    if not isinstance(document, dict) or document.get("record_type") != RECORD_TYPE:
        return None
    return document


def _validate(document: dict[str, Any]) -> OutcomeRecord | None:
    if not str(document.get("schema_version", "")).startswith(SCHEMA_FAMILY):
        return None
    try:
        return parse_outcome(document)
    except ValidationError:
        return None


def parse_record(message: str) -> OutcomeRecord | None:
    """The outcome record in one log event, or None (another line, or another schema version)."""
    document = _outcome_document(message)
    return None if document is None else _validate(document)


def filter_pattern(deployment_id: str) -> str:
    return f'{{ ($.record_type = "{RECORD_TYPE}") && ($.deployment_id = "{deployment_id}") }}'


@dataclass(frozen=True)
class Found:
    records: list[OutcomeRecord]
    log_groups: list[str]
    unreadable: int  # outcome-looking lines of another schema version, or invalid


class OutcomeLogs:
    """FilterLogEvents over the DeployGuard log groups. Raises AwsCallError."""

    def __init__(self, client: CloudWatchLogsClient) -> None:
        self._client = client

    def log_groups(self, prefixes: Sequence[str] = DEFAULT_LOG_GROUP_PREFIXES) -> list[str]:
        names: list[str] = []
        paginator = self._client.get_paginator("describe_log_groups")
        for prefix in prefixes:
            with aws_call("DescribeLogGroups"):
                for page in paginator.paginate(logGroupNamePrefix=prefix):
                    names += [g["logGroupName"] for g in page.get("logGroups", []) if "logGroupName" in g]
        return list(dict.fromkeys(names))

    def find(
        self, deployment_id: str, log_groups: Sequence[str], *, start_time: datetime | None = None
    ) -> Found:
        if not DEPLOYMENT_ID.match(deployment_id):
            raise ReportError(f"'{deployment_id}' is not a CodeDeploy deployment id (d-XXXXXXXXX)")
        records: list[OutcomeRecord] = []
        unreadable = 0
        since = int(start_time.timestamp() * 1000) if start_time else 0
        for group in log_groups:
            with aws_call("FilterLogEvents"):
                pages = self._client.get_paginator("filter_log_events").paginate(
                    logGroupName=group, filterPattern=filter_pattern(deployment_id), startTime=since
                )
                for page in pages:
                    for event in page.get("events", []):
                        document = _outcome_document(event.get("message", ""))
                        # NOTE: the filter pattern is only a first cut (and moto ignores JSON patterns)
                        if document is None or document.get("deployment_id") != deployment_id:
                            continue
                        record = _validate(document)
                        if record is None:
                            unreadable += 1
                        else:
                            records.append(record)
        return Found(records=records, log_groups=list(log_groups), unreadable=unreadable)
