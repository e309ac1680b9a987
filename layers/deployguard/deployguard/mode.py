"""Enforce or observe: the one place that decides what a guard's verdict does.

``mode: enforce`` (the default) reports the verdict to CodeDeploy and lets the alarm rollback act.
``mode: observe`` (a stage baseline's ``defaults`` for every application, or an application's
document) runs every check all the same, but reports Succeeded and never stops a deployment or
moves an alias: the outcome record keeps the real verdict (``mode: observe``, ``would_have``) and
the alert says "would have failed". A team adopts DeployGuard this way before it gates anything.

The hooks and the bake step call :func:`apply_mode` at the one point where they report
(``deployguard.hook.report_and_record``); the alarm rollback asks :func:`acts` before it acts. A
guard that could not read the policy knows no mode: it enforces (fail closed).
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Literal

from deployguard.findings import Decision

if TYPE_CHECKING:
    from deployguard.outcome import OutcomeRecord

Mode = Literal["enforce", "observe"]
ENFORCE: Mode = "enforce"
OBSERVE: Mode = "observe"


def apply_mode(record: OutcomeRecord, decision: Decision, mode: Mode) -> tuple[OutcomeRecord, Decision]:
    """The record and the status to report for ``decision`` in ``mode``: in observe mode, always
    Succeeded, the record keeping the real decision in ``would_have`` (and its reason)."""
    if mode == ENFORCE:
        return record, decision
    observed = replace(record, mode="observe", would_have=decision)
    if decision is Decision.SUCCEEDED:
        return observed, decision
    reason = f"observe mode: would have failed ({record.reason}); reported Succeeded"
    return replace(observed, reason=reason), Decision.SUCCEEDED


def acts(mode: Mode) -> bool:
    """Whether a guard in ``mode`` may change anything (stop a deployment, move an alias)."""
    return mode == ENFORCE
