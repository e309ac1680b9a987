"""The guard step every DeployGuard decision starts with: is this function guarded, by which policy
entry, and does the policy bypass this deployment?

Shared by the pre-traffic and post-traffic hooks, the bake step, the alarm rollback and
``deployguard check``, so they all read the policy the same way. A bypass is logged at WARNING
here, and only here: it is explicit and audited, never silent.

Scope comes first, by tag, not by name: a function this stage may guard carries the tag
``deployguard:stage=<stage>`` (read with ``lambda:ListTags``, the same tag the IAM conditions of the
guard roles test). A function without it, or tagged for another stage, is out of scope: unguarded,
whatever the policy names, and ``unguarded`` decides, with a finding (SCP001) naming the tag and the
SAM ``Tags:`` line that fixes it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from deployguard.findings import CheckResult, Finding, Result, Severity
from deployguard.observability import logger
from deployguard.outcome import Bypassed as Bypass
from deployguard.records import datarecord
from deployguard.stages import STAGE_TAG, Stage

if TYPE_CHECKING:
    from collections.abc import Mapping

    from deployguard.policy import FunctionPolicy, Policy

POLICY_CHECK = "policy"
SCOPE_CODE = "SCP001"


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
    policy: Policy, function_name: str, *, tags: Mapping[str, str], deployment_id: str | None = None
) -> Guarded | Unguarded | Bypassed:
    """Which entry of ``policy`` guards ``function_name`` (a name or an ARN), as the 'policy' check,
    and whether it bypasses ``deployment_id`` (never without one: ``deployguard check``). ``tags``:
    the function's tags; without ``deployguard:stage=<the policy's stage>`` it is out of scope."""
    out_of_scope = scope_finding(policy, function_name, tags)
    if out_of_scope is not None:
        return _unguarded(policy, out_of_scope.message, [out_of_scope])
    match = policy.for_function(function_name)
    if match is None:
        why = policy.unnamed_reason or "add it under 'functions' of its application's document"
        return _unguarded(
            policy,
            f"{function_name} is not named in the {policy.stage.value} policy "
            f"(unguarded: {policy.unguarded}): {why}",
        )
    key, entry = match
    check = CheckResult(name=POLICY_CHECK, result=Result.PASSED, message=f"guarded by functions.{key}")
    bypass = bypass_for(entry, deployment_id, function_name) if deployment_id else None
    if bypass is not None:
        return Bypassed(key=key, entry=entry, policy_check=check, bypass=bypass)
    return Guarded(key=key, entry=entry, policy_check=check)


def _unguarded(policy: Policy, message: str, findings: list[Finding] | None = None) -> Unguarded:
    passes = policy.unguarded == "pass"
    return Unguarded(
        policy_check=CheckResult(
            name=POLICY_CHECK,
            result=Result.SKIPPED if passes else Result.FAILED,
            message=message,
            findings=findings or [],
        )
    )


def scope_finding(policy: Policy, function_name: str, tags: Mapping[str, str]) -> Finding | None:
    """SCP001 when the function is not tagged ``deployguard:stage=<the policy's stage>`` (an error
    when ``unguarded: fail``, else a warning); None when this stage may guard it."""
    stage = policy.stage.value
    tagged = tags.get(STAGE_TAG)
    if tagged == stage:
        return None
    fix = f"add the tag to the function (SAM: Properties: Tags: {{{STAGE_TAG}: {stage}}})"
    if tagged is None:
        problem = f"{function_name} has no tag {STAGE_TAG}, so the {stage} DeployGuard may not guard it"
    else:
        # NOTE: a tag value is not secret, but only a stage name is quoted (as CFG002 does)
        shown = f"'{tagged}'" if tagged in {known.value for known in Stage} else "another value"
        problem = f"{function_name} is tagged {STAGE_TAG}={shown}, not {stage}: another stage guards it"
    return Finding(
        code=SCOPE_CODE,
        severity=Severity.WARNING if policy.unguarded == "pass" else Severity.ERROR,
        subject=STAGE_TAG,
        message=f"{problem} (unguarded: {policy.unguarded}); to guard it in {stage}, {fix}",
    )


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
