"""Human-readable rendering of outcome records for the terminal (rich when it is installed)."""

from __future__ import annotations

from deployguard.findings import Result
from deployguard.outcome import OutcomeRecord

RESULT_MARKS = {
    Result.PASSED: "PASS",
    Result.FAILED: "FAIL",
    Result.WARNED: "WARN",
    Result.INCONCLUSIVE: "????",
    Result.SKIPPED: "skip",
    Result.ERROR: "ERR ",
}


def record_lines(record: OutcomeRecord) -> list[str]:
    """The record as plain text lines: header, one line per check, findings indented."""
    versions = f"{record.current_version or '?'} -> {record.target_version or '?'}"
    lines = [
        f"{record.function_name or '?'} ({record.stage or '?'}) {versions}: "
        f"{record.decision.value if record.decision else 'no decision'}"
    ]
    if record.bypass is not None:
        lines.append(f"  BYPASSED: {record.bypass.reason} (approved by {record.bypass.approved_by})")
    for check in record.checks:
        lines.append(
            f"  [{RESULT_MARKS[check.result]}] {check.name} ({check.duration_ms:.0f} ms) {check.message}"
        )
        lines += [f"         {f.severity.value} {f.code} {f.subject}: {f.message}" for f in check.findings]
    for action in record.actions:
        lines.append(f"  action: {action.kind.value} {action.detail}{'' if action.ok else ' (FAILED)'}")
    if record.reason:
        lines.append(f"  reason: {record.reason}")
    return lines


def print_record(record: OutcomeRecord) -> None:
    print("\n".join(record_lines(record)))
