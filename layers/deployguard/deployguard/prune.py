"""Version pruning (``prune: {keep: N}``): after a Succeeded deployment, delete the function's older
versions so they do not pile up against Lambda's code storage quota.

Kept, always: every version an alias routes to (its version and its routing's additional versions),
the newest ``keep`` versions, the deployment's target version, the previous version while the
stage's rollback window (``rollback.recent_minutes``) is open, and ``$LATEST`` (never a version).
Pruning runs only after the Succeeded status was reported; whatever goes wrong is recorded as a
warning (PRN001) and never changes the deployment's outcome.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from deployguard.deadlines import seconds_left
from deployguard.errors import DeployGuardError
from deployguard.findings import CheckResult, Finding, Result, Severity

if TYPE_CHECKING:
    from collections.abc import Callable

    from deployguard.appspec import DeploymentTarget
    from deployguard.deployment import Deployment
    from deployguard.hook import AfterSuccess
    from deployguard.policy import FunctionPolicy, Prune
    from deployguard.ports import VersionsPort
    from deployguard.snapshot import AliasState

PRUNE_FAILED = "PRN001"
MAX_DELETES = 50
"""Versions deleted per deployment at most (the rest go at the next one): pruning runs in the time
left after the report, and a first prune of a long-lived function may find hundreds."""
TIME_MARGIN_SECONDS = 2.0
"""Pruning stops when less than this is left of the invocation (the record is written after it)."""


def window_open(recent_minutes: int, deployment_created: datetime | None, now: datetime) -> bool:
    """Can the alarm rollback still take this release back (``rollback.recent_minutes``)? Unknown
    start: assume it can."""
    if recent_minutes <= 0:
        return False
    return deployment_created is None or now - deployment_created < timedelta(minutes=recent_minutes)


def versions_to_delete(
    versions: list[str],
    aliases: list[AliasState],
    *,
    keep: int,
    target_version: str,
    previous_version: str | None,
    rollback_window_open: bool,
) -> list[str]:
    """The published versions to delete, oldest first (``$LATEST`` and non-numbers never)."""
    numbered = sorted((v for v in versions if v.isdigit()), key=int)
    protected = set(numbered[-keep:]) | {target_version}
    for alias in aliases:
        protected.add(alias.function_version)
        protected.update(alias.additional_version_weights)
    if rollback_window_open and previous_version:
        protected.add(previous_version)
    return [v for v in numbered if v not in protected]


def prune_versions(
    functions: VersionsPort,
    target: DeploymentTarget,
    prune: Prune,
    *,
    rollback_window_open: bool,
) -> CheckResult:
    """Delete what :func:`versions_to_delete` names (at most MAX_DELETES); never raises."""
    deleted: list[str] = []
    try:
        doomed = versions_to_delete(
            functions.versions(target.function_name),
            functions.aliases(target.function_name),
            keep=prune.keep,
            target_version=target.target_version,
            previous_version=target.current_version,
            rollback_window_open=rollback_window_open,
        )
        for version in doomed[:MAX_DELETES]:
            time_left = seconds_left()
            if time_left is not None and time_left < TIME_MARGIN_SECONDS:
                break  # NOTE: the record must still be written before Lambda's timeout
            functions.delete_version(target.function_name, version)
            deleted.append(version)
    except DeployGuardError as exc:
        message = (
            f"pruning stopped after deleting {len(deleted)} version(s) ({exc}); the deployment's "
            "outcome is unchanged, the next deployment prunes again"
        )
        finding = Finding(code=PRUNE_FAILED, severity=Severity.WARNING, subject="prune", message=message)
        return CheckResult(name="prune", result=Result.WARNED, message=message, findings=[finding])
    left = len(doomed) - len(deleted)
    message = f"deleted version(s) {', '.join(deleted)}" if deleted else "nothing to delete"
    if left:
        message += f"; {left} more at the next deployment (at most {MAX_DELETES} each, as time allows)"
    return CheckResult(name="prune", result=Result.PASSED, message=message)


def pruning(
    versions: VersionsPort,
    entry: FunctionPolicy,
    deployment: Deployment,
    recent_minutes: int,
    clock: Callable[[], datetime],
) -> AfterSuccess | None:
    """The pruning a hook runs once the final Succeeded is reported (None: ``prune`` is off). The
    rollback window is judged when it runs, with ``clock``."""
    prune = entry.prune
    if prune is None:
        return None

    def run() -> CheckResult:
        is_open = window_open(recent_minutes, deployment.create_time, clock())
        return prune_versions(versions, deployment.target, prune, rollback_window_open=is_open)

    return run
