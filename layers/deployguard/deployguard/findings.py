"""What a check found, and what a whole check concluded."""

from __future__ import annotations

from dataclasses import field
from enum import StrEnum

from deployguard.records import datarecord

THROTTLED = "AWS001"
"""An AWS API kept refusing a check's call for its rate (throttled) until the check's deadline or its
last attempt: the check could not run. Not a finding about the release: the cause to see is load."""


class Severity(StrEnum):
    ERROR = "error"
    WARNING = "warning"


class Result(StrEnum):
    PASSED = "passed"
    FAILED = "failed"
    WARNED = "warned"
    INCONCLUSIVE = "inconclusive"
    SKIPPED = "skipped"
    ERROR = "error"  # the check itself could not run (AWS error, bug): fail closed


class Decision(StrEnum):
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"


@datarecord
class Finding:
    """One problem. ``subject`` names the variable or setting; ``message`` says how to fix it.

    Findings never carry a configuration value that could be secret: messages are built from
    names, patterns and redacted previews only (see ``deployguard.secrets.redact``).
    """

    code: str
    severity: Severity
    subject: str
    message: str


@datarecord
class CheckResult:
    """The outcome of one named check (config, smoke:<case>, alarms, version-health…)."""

    name: str
    result: Result
    duration_ms: float = 0.0
    message: str = ""
    findings: list[Finding] = field(default_factory=list)

    @property
    def blocking(self) -> bool:
        return self.result in (Result.FAILED, Result.ERROR)


def result_from_findings(findings: list[Finding]) -> Result:
    if any(f.severity is Severity.ERROR for f in findings):
        return Result.FAILED
    if findings:
        return Result.WARNED
    return Result.PASSED


def decide(checks: list[CheckResult]) -> Decision:
    """Succeeded only when there is at least one check and none blocks."""
    if checks and not any(c.blocking for c in checks):
        return Decision.SUCCEEDED
    return Decision.FAILED


def error_findings(error: BaseException) -> list[Finding]:
    """The findings an error that stopped a check carries: AWS001 when an AWS call was throttled to
    the end (an ``AwsCallError`` with ``throttled``), else none."""
    if not getattr(error, "throttled", False):
        return []
    operation = str(getattr(error, "operation", "an AWS call"))
    until = (
        "until the hook's deadline"
        if getattr(error, "out_of_time", False)
        else "until retries were exhausted"
    )
    return [
        Finding(
            code=THROTTLED,
            severity=Severity.ERROR,
            subject=operation,
            message=(
                f"{operation} was throttled (rate exceeded) {until}, after "
                f"{getattr(error, 'attempts', 1)} attempt(s): the check could not run. Too many calls "
                "at once in this account and Region: see docs/operations.md#throttling"
            ),
        )
    ]
