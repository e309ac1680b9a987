"""The guard step every DeployGuard decision starts with: is this function guarded, by which policy
entry, and does the policy bypass this deployment?

Shared by the pre-traffic and post-traffic hooks, the bake step, the alarm rollback and
``deployguard check``, so they all read the policy the same way. A bypass is logged at WARNING
here, and only here: it is explicit and audited, never silent.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from deployguard.findings import CheckResult, Result
from deployguard.observability import logger
from deployguard.outcome import Bypassed as Bypass
from deployguard.records import datarecord

if TYPE_CHECKING:
    from deployguard.policy import FunctionPolicy, Policy

POLICY_CHECK = "policy"


@datarecord
class Guarded:
    """The policy guards the function: run the checks of ``entry``."""

    key: str  # the entry under the policy's 'functions'
    entry: FunctionPolicy
    policy_check: CheckResult


@datarecord
class Unguarded:
    """No entry names the function; ``policy_check`` fails or is skipped as ``unguarded`` says."""

    policy_check: CheckResult


@datarecord
class Bypassed:
    """The entry bypasses this very deployment: no checks, no rollback, and the record says why."""

    key: str
    entry: FunctionPolicy
    policy_check: CheckResult
    bypass: Bypass


def guard_function(
    policy: Policy, function_name: str, *, deployment_id: str | None = None
) -> Guarded | Unguarded | Bypassed:
    """Which entry of ``policy`` guards ``function_name`` (a name or an ARN), as the 'policy' check,
    and whether it bypasses ``deployment_id`` (never without one: ``deployguard check``)."""
    match = policy.for_function(function_name)
    if match is None:
        passes = policy.unguarded == "pass"
        return Unguarded(
            policy_check=CheckResult(
                name=POLICY_CHECK,
                result=Result.SKIPPED if passes else Result.FAILED,
                message=(
                    f"{function_name} is not named in the {policy.stage.value} policy "
                    f"(unguarded: {policy.unguarded}); add it under 'functions'"
                ),
            )
        )
    key, entry = match
    check = CheckResult(name=POLICY_CHECK, result=Result.PASSED, message=f"guarded by functions.{key}")
    bypass = bypass_for(entry, deployment_id, function_name) if deployment_id else None
    if bypass is not None:
        return Bypassed(key=key, entry=entry, policy_check=check, bypass=bypass)
    return Guarded(key=key, entry=entry, policy_check=check)


def bypass_for(entry: FunctionPolicy, deployment_id: str, function_name: str) -> Bypass | None:
    """The entry's bypass when it names ``deployment_id``, logged at WARNING."""
    if entry.bypass is None or entry.bypass.deployment_id != deployment_id:
        return None
    logger.warning(
        "checks bypassed by policy",
        extra={
            "deployment_id": deployment_id,
            "function_name": function_name,
            "reason": entry.bypass.reason,
            "approved_by": entry.bypass.approved_by,
        },
    )
    return Bypass(reason=entry.bypass.reason, approved_by=entry.bypass.approved_by)


def bypass_reason(bypass: Bypass, *, skipped: str = "checks") -> str:
    """The outcome record's reason for a bypassed deployment (``skipped``: what did not run)."""
    return f"{skipped} bypassed by policy for this deployment: {bypass.reason} (approved by {bypass.approved_by})"
