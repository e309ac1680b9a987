"""Which alarms guard a function, and what their states mean for a deployment.

An alarm counts against a release only when it entered ALARM after the deployment started: one
that was already in ALARM before is pre-existing, reported, and blocks only when the policy says
``pre_existing: block`` (an alarm that fires for the old version must not block the fix).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict, Field

from deployguard.findings import CheckResult, Finding, Severity, result_from_findings
from deployguard.policy import AlarmRules, AlarmSelector
from deployguard.records import datarecord

if TYPE_CHECKING:
    from deployguard.ports import AlarmSource

ALARM = "ALARM"
CHECK_NAME = "alarms"


class AlarmState(BaseModel):
    """One alarm as DescribeAlarms reports it."""

    model_config = ConfigDict(frozen=True)

    name: str
    arn: str = ""
    kind: Literal["metric", "composite"] = "metric"
    state: str
    entered_at: datetime | None = Field(None, description="When the alarm entered its current state.")
    updated_at: datetime | None = Field(
        None, description="When its state or state reason last changed (StateUpdatedTimestamp)."
    )
    dimensions: dict[str, str] = Field(default_factory=dict)


@datarecord
class AlarmSelection:
    """The alarms a selector found (with their states), and the named alarms that do not exist."""

    alarms: list[AlarmState]
    missing: list[str]

    @property
    def names(self) -> list[str]:
        return [alarm.name for alarm in self.alarms]


def select_alarms(source: AlarmSource, selector: AlarmSelector) -> AlarmSelection:
    """The union of names, prefixes and tags. Costs ⌈names/100⌉ + one per prefix (page) + one tag lookup and
    ⌈tagged/100⌉ DescribeAlarms calls; the answer carries the states, so it serves as a first poll."""
    found: dict[str, AlarmState] = {}
    if selector.names:
        found.update((alarm.name, alarm) for alarm in source.describe(selector.names))
    missing = [name for name in selector.names if name not in found]
    for prefix in selector.prefixes:
        for alarm in source.describe_prefix(prefix):
            found.setdefault(alarm.name, alarm)
    if selector.tags:
        tagged = [name for name in source.names_tagged(selector.tags) if name not in found]
        if tagged:
            found.update((alarm.name, alarm) for alarm in source.describe(tagged))
    return AlarmSelection(alarms=sorted(found.values(), key=lambda a: a.name), missing=missing)


def selects(selector: AlarmSelector, alarm_name: str, tags: Callable[[], Mapping[str, str]]) -> bool:
    """Does ``selector`` pick the alarm? ``tags`` is called only when a tag selector must decide."""
    if alarm_name in selector.names or any(alarm_name.startswith(p) for p in selector.prefixes):
        return True
    if not selector.tags:
        return False
    actual = tags()
    return all(actual.get(key) == value for key, value in selector.tags.items())


def check_alarms(
    selection: AlarmSelection, rules: AlarmRules, *, deployment_started_at: datetime, duration_ms: float = 0.0
) -> CheckResult:
    """One 'alarms' check: ALARM since the deployment started fails; ALARM from before is
    pre-existing (policy decides); a named alarm that does not exist or a selector that matches
    nothing fails (a guard that watches nothing is no guard)."""
    findings: list[Finding] = [
        Finding(
            code="ALM003",
            severity=Severity.ERROR,
            subject=name,
            message=f"alarm {name} named in alarms.select.names does not exist: create it or fix the name",
        )
        for name in selection.missing
    ]
    if not selection.alarms and not selection.missing:
        findings.append(
            Finding(
                code="ALM004",
                severity=Severity.ERROR,
                subject="alarms.select",
                message="alarms.select matches no alarm: fix the names, prefixes or tags",
            )
        )
    new, old = [], []
    for alarm in selection.alarms:
        if alarm.state != ALARM:
            continue
        # NOTE: an ALARM without a timestamp cannot be proven pre-existing: it counts as new.
        if alarm.entered_at is not None and alarm.entered_at < deployment_started_at:
            old.append(alarm)
        else:
            new.append(alarm)
    findings += [
        Finding(
            code="ALM001",
            severity=Severity.ERROR,
            subject=alarm.name,
            message=f"{alarm.kind} alarm {alarm.name} entered ALARM at {_at(alarm)}, after the deployment started",
        )
        for alarm in new
    ]
    blocks = rules.pre_existing == "block"
    findings += [
        Finding(
            code="ALM002",
            severity=Severity.ERROR if blocks else Severity.WARNING,
            subject=alarm.name,
            message=(
                f"{alarm.kind} alarm {alarm.name} has been in ALARM since {_at(alarm)}, before the "
                f"deployment started (pre_existing: {rules.pre_existing})"
            ),
        )
        for alarm in old
    ]
    insufficient = sum(1 for alarm in selection.alarms if alarm.state == "INSUFFICIENT_DATA")
    summary = f"{len(selection.alarms)} alarm(s) watched: {len(new)} in ALARM since the deployment started"
    if old:
        summary += f", {len(old)} pre-existing ALARM"
    if insufficient:
        summary += f", {insufficient} with insufficient data"
    errors = [f.message for f in findings if f.severity is Severity.ERROR]
    return CheckResult(
        name=CHECK_NAME,
        result=result_from_findings(findings),
        duration_ms=duration_ms,
        message="; ".join([summary, *errors]),
        findings=findings,
    )


def timed_check(
    describe: Callable[[], AlarmSelection], rules: AlarmRules, *, deployment_started_at: datetime
) -> CheckResult:
    began = time.perf_counter()
    selection = describe()
    return check_alarms(
        selection,
        rules,
        deployment_started_at=deployment_started_at,
        duration_ms=(time.perf_counter() - began) * 1000,
    )


def _at(alarm: AlarmState) -> str:
    return alarm.entered_at.isoformat(timespec="seconds") if alarm.entered_at else "an unknown time"
