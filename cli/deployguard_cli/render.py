"""Human-readable rendering of outcome records for the terminal (rich when it is installed), and
:func:`terminal_safe`, which every printer of the CLI passes its text through."""

from __future__ import annotations

import re

from deployguard.findings import Result
from deployguard.outcome import OutcomeRecord
from deployguard.secrets import Redactor

# C0 controls (ESC among them), DEL, C1 controls (CSI, OSC as one character) and the Unicode
# bidirectional controls that reorder what a terminal shows.
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
_FORMATS_ONLY = Redactor()


def _escaped(match: re.Match[str]) -> str:
    char = match[0]
    return _NAMED.get(char) or (f"\\x{ord(char):02x}" if ord(char) < 0x100 else f"\\u{ord(char):04x}")


def terminal_safe(text: str) -> str:
    """``text`` as the CLI prints it: secrets of the well-known formats masked (records are redacted
    when written; this also covers text from elsewhere, and records written before), then every
    control character escaped visibly (``\\x1b``, ``\\n``): text from a function under test
    (its error message, its answer) cannot move the cursor, clear the screen, retitle the window
    or add a line of its own. Pass one line at a time: a line break inside is escaped too."""
    return _UNSAFE.sub(_escaped, _FORMATS_ONLY(text))


RESULT_MARKS = {
    Result.PASSED: "PASS",
    Result.FAILED: "FAIL",
    Result.WARNED: "WARN",
    Result.INCONCLUSIVE: "????",
    Result.SKIPPED: "skip",
    Result.ERROR: "ERR ",
}


def record_lines(record: OutcomeRecord) -> list[str]:
    """The record as plain text lines, each terminal-safe: header, one line per check, findings
    indented."""
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
    return [terminal_safe(line) for line in lines]


def print_record(record: OutcomeRecord) -> None:
    print("\n".join(record_lines(record)))
