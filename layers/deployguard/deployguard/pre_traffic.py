"""BeforeAllowTraffic: the new version is published but gets no traffic yet. Validate its
configuration against the stage's policy and smoke-test it; any doubt fails the deployment."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from typing import TYPE_CHECKING

from deployguard.aws.codedeploy import CodeDeploy
from deployguard.aws.lambda_ import Lambda
from deployguard.aws.references import ReferenceResolver
from deployguard.checks import check_version
from deployguard.findings import CheckResult, Result
from deployguard.hook import Evaluation, HookRun
from deployguard.outcome import Bypassed
from deployguard.records import datarecord
from deployguard.stages import Stage

if TYPE_CHECKING:
    from deployguard.policy import FunctionPolicy, Policy


@datarecord
class PreTrafficPorts:
    codedeploy: CodeDeploy
    lambda_: Lambda
    references: ReferenceResolver
    load_policy: Callable[[], Policy]


def policy_for(policy: Policy, function_name: str) -> tuple[FunctionPolicy | None, CheckResult]:
    """The policy entry for ``function_name``, and the 'policy' check saying which one applied."""
    match = policy.for_function(function_name)
    if match is not None:
        return match[1], CheckResult(
            name="policy", result=Result.PASSED, message=f"guarded by functions.{match[0]}"
        )
    passes = policy.unguarded == "pass"
    return None, CheckResult(
        name="policy",
        result=Result.SKIPPED if passes else Result.FAILED,
        message=(
            f"{function_name} is not named in the {policy.stage.value} policy "
            f"(unguarded: {policy.unguarded}); add it under 'functions'"
        ),
    )


def bypass_for(entry: FunctionPolicy, deployment_id: str) -> Bypassed | None:
    if entry.bypass is not None and entry.bypass.deployment_id == deployment_id:
        return Bypassed(reason=entry.bypass.reason, approved_by=entry.bypass.approved_by)
    return None


def evaluate_pre_traffic(run: HookRun, ports: PreTrafficPorts, *, stage: Stage, today: date) -> Evaluation:
    deployment = ports.codedeploy.resolve(run.ids.deployment_id)
    target = deployment.target
    entry, policy_check = policy_for(ports.load_policy(), target.function_name)
    if entry is None:
        return Evaluation(checks=[policy_check], target=target)
    bypass = bypass_for(entry, run.ids.deployment_id)
    if bypass is not None:
        return Evaluation(
            checks=[policy_check],
            target=target,
            bypass=bypass,
            reason=f"checks bypassed by policy for this deployment: {bypass.reason} (approved by {bypass.approved_by})",
        )
    result = check_version(
        lambda_=ports.lambda_,
        references=ports.references,
        policy=entry,
        stage=stage,
        function_name=target.function_name,
        target_version=target.target_version,
        current_version=target.current_version,
        today=today,
        deadline=run.deadline,
        deployment_id=run.ids.deployment_id,
    )
    return Evaluation(checks=[policy_check, *result.checks], target=target, redactor=result.redactor)
