"""BeforeAllowTraffic: the new version is published but gets no traffic yet. Validate its
configuration against the stage's policy and smoke-test it; any doubt fails the deployment.

The invocation's redactor is built from both versions' environments as soon as they are read,
before any check runs (``check_version``); an error after that point is recorded redacted with it,
with the deployment's target and the policy check kept in the record."""

from __future__ import annotations

from dataclasses import replace
from datetime import date

from deployguard.checks import check_version
from deployguard.guard import Guarded, guard_function
from deployguard.hook import Evaluation, HookRun, failed_evaluation, unchecked_evaluation
from deployguard.ports import CodeDeployPort, LambdaPort, PolicySource, ReferencePort
from deployguard.records import datarecord
from deployguard.redaction import RedactedError
from deployguard.stages import Stage


@datarecord
class PreTrafficPorts:
    codedeploy: CodeDeployPort
    functions: LambdaPort
    references: ReferencePort
    policy: PolicySource


def evaluate_pre_traffic(run: HookRun, ports: PreTrafficPorts, *, stage: Stage, today: date) -> Evaluation:
    deployment = ports.codedeploy.resolve(run.ids.deployment_id)
    target = deployment.target
    found = guard_function(
        ports.policy.load(stage), target.function_name, deployment_id=run.ids.deployment_id
    )
    if not isinstance(found, Guarded):
        return unchecked_evaluation(found, target)
    try:
        result = check_version(
            functions=ports.functions,
            references=ports.references,
            policy=found.entry,
            stage=stage,
            function_name=target.function_name,
            target_version=target.target_version,
            current_version=target.current_version,
            today=today,
            deadline=run.deadline,
            deployment_id=run.ids.deployment_id,
        )
    except RedactedError as exc:
        failed = failed_evaluation(exc)
        return replace(failed, target=target, checks=[found.policy_check, *failed.checks])
    return Evaluation(checks=[found.policy_check, *result.checks], target=target, redactor=result.redactor)
