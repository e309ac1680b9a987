"""BeforeAllowTraffic: the new version is published but gets no traffic yet. Validate its
configuration against the stage's policy and smoke-test it; any doubt fails the deployment.

The deployment is recorded first, with the function's scope tag (``deployguard.lookup``: the alarm
rollback finds it from the function without searching the account, and its scope without ListTags);
a record that cannot be written is a warning, never a failure (the rollback then searches, more
slowly).

The invocation's redactor is built from both versions' environments as soon as they are read,
before any check runs (``check_version``); an error after that point is recorded redacted with it,
with the deployment's target and the policy check kept in the record."""

from __future__ import annotations

from dataclasses import replace
from datetime import date

from deployguard.appspec import DeploymentTarget
from deployguard.checks import check_version
from deployguard.custom_checks import CheckContext
from deployguard.findings import CheckResult, Result
from deployguard.guard import Guarded, guard_function
from deployguard.hook import Evaluation, HookRun, failed_evaluation, unchecked_evaluation
from deployguard.lookup import keep_record
from deployguard.ports import CodeDeployPort, DeploymentRecordsPort, LambdaPort, PolicySource, ReferencePort
from deployguard.records import datarecord
from deployguard.redaction import RedactedError
from deployguard.stages import APP_TAG, Stage


@datarecord
class PreTrafficPorts:
    codedeploy: CodeDeployPort
    functions: LambdaPort
    references: ReferencePort
    policy: PolicySource
    records: DeploymentRecordsPort | None = None  # None: DEPLOYGUARD_DEPLOYMENT_TABLE unset


RECORD_CHECK = "deployment-record"


def evaluate_pre_traffic(run: HookRun, ports: PreTrafficPorts, *, stage: Stage, today: date) -> Evaluation:
    deployment = ports.codedeploy.resolve(run.ids.deployment_id)
    target = deployment.target
    tags = ports.functions.tags(target.function_name)  # scope (and application): read once, recorded
    unrecorded = keep_record(ports.records, deployment, tags=tags) if ports.records is not None else None
    warnings = (
        [
            CheckResult(
                name=RECORD_CHECK,
                result=Result.WARNED,
                message=f"the deployment could not be recorded ({unrecorded}): an alarm rollback will "
                "search the account's deployments for it, more slowly",
            )
        ]
        if unrecorded
        else []
    )
    found = guard_function(
        ports.policy.load(stage, tags.get(APP_TAG), target.function_name),
        target.function_name,
        tags=tags,
        deployment_id=run.ids.deployment_id,
    )
    if not isinstance(found, Guarded):
        return unchecked_evaluation(found, target)
    return replace(
        _check(run, ports, found, target, warnings, stage=stage, today=today, application=tags.get(APP_TAG)),
        mode=found.entry.mode,
    )


def _check(
    run: HookRun,
    ports: PreTrafficPorts,
    found: Guarded,
    target: DeploymentTarget,
    warnings: list[CheckResult],
    *,
    stage: Stage,
    today: date,
    application: str | None = None,
) -> Evaluation:
    # NOTE: no version ARN yet: check_version takes it from the target's configuration it reads
    context = CheckContext.of(run.ids.deployment_id, target, stage=stage, application=application)
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
            custom=context,
        )
    except RedactedError as exc:
        failed = failed_evaluation(exc)
        return replace(failed, target=target, checks=[found.policy_check, *failed.checks, *warnings])
    return Evaluation(
        checks=[found.policy_check, *result.checks, *warnings], target=target, redactor=result.redactor
    )
