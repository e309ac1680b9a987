"""AfterAllowTraffic: the new version takes the traffic. Smoke-test the live alias, then watch the
guarded alarms and the new version's own metrics, at once (``bake.minutes: 0``) or over a bake
window: then this hook starts the bake workflow, whose step (``deployguard.bake_step``) polls and
reports the status.

The first poll is judged here with the code every later poll uses (``deployguard.watch`` and
:func:`deployguard.bake.decide_poll`), so a bake of 0 and a bake of 55 minutes agree.

A deployment that has already ended (stopped by a rollback, or failed) takes no status: the hook
records that and runs no check (a smoke test of the alias would test the version it went back to).
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from deployguard.bake import (
    BakeState,
    Clock,
    Verdict,
    decide_poll,
    execution_name,
    first_wait,
    open_window,
    output,
)
from deployguard.custom_checks import CheckContext, run_custom_checks
from deployguard.deployment import TERMINAL_STATUSES, Deployment
from deployguard.findings import CheckResult, Result
from deployguard.guard import Guarded, guard_function
from deployguard.hook import Evaluation, HookRun, failed_evaluation, unchecked_evaluation
from deployguard.outcome import Action, ActionKind, OutcomeRecord, Role
from deployguard.ports import BakeStarter, CodeDeployPort, LambdaPort, PolicySource, VersionsPort
from deployguard.prune import pruning
from deployguard.records import datarecord
from deployguard.redaction import RedactedError, redacting, version_redactor
from deployguard.secrets import Redactor
from deployguard.settings import SettingsError
from deployguard.smoke import run_smoke
from deployguard.stages import APP_TAG, Stage
from deployguard.watch import WatchPorts, poll_checks

if TYPE_CHECKING:
    from deployguard.policy import FunctionPolicy


@datarecord
class PostTrafficPorts:
    codedeploy: CodeDeployPort
    functions: LambdaPort
    watch: WatchPorts
    policy: PolicySource
    bake: BakeStarter | None  # None when DEPLOYGUARD_BAKE_STATE_MACHINE_ARN is unset
    versions: VersionsPort | None = None  # version pruning (``prune``); None: never prunes


def evaluate_post_traffic(run: HookRun, ports: PostTrafficPorts, *, stage: Stage, clock: Clock) -> Evaluation:
    deployment = ports.codedeploy.resolve(run.ids.deployment_id)
    target = deployment.target
    if deployment.status in TERMINAL_STATUSES:
        return deployment_ended(deployment)
    tags = ports.functions.tags(target.function_name)  # scope (and application): read once
    policy = ports.policy.load(stage, tags.get(APP_TAG), target.function_name)
    found = guard_function(
        policy,
        target.function_name,
        tags=tags,
        deployment_id=deployment.deployment_id,
    )
    if not isinstance(found, Guarded):
        return unchecked_evaluation(found, target)
    redactor = version_redactor(
        ports.functions, target.function_name, [target.target_version, target.current_version]
    )
    try:
        with redacting(redactor):
            watched = _watch(
                run,
                ports,
                found,
                deployment,
                stage=stage,
                clock=clock,
                redactor=redactor,
                application=tags.get(APP_TAG),
            )
    except RedactedError as exc:  # as the pre-traffic hook: the entry's mode decides this failure too
        failed = failed_evaluation(exc)
        return replace(
            failed, target=target, checks=[found.policy_check, *failed.checks], mode=found.entry.mode
        )
    if watched.defer or ports.versions is None:
        return replace(watched, mode=found.entry.mode)
    after = pruning(ports.versions, found.entry, deployment, policy.rollback.recent_minutes, clock)
    return replace(watched, mode=found.entry.mode, after_success=after)


def deployment_ended(deployment: Deployment) -> Evaluation:
    """CodeDeploy takes no status for a deployment that has ended (a rollback stopped it, or it
    failed): report nothing, run nothing, and say so in the record."""
    status = deployment.status
    return Evaluation(
        checks=[CheckResult(name="deployment", result=Result.SKIPPED, message=f"the deployment is {status}")],
        target=deployment.target,
        defer=True,  # NOTE: no status is reported: not later either (CodeDeploy takes none now)
        reason=f"the deployment is {status}: no status reported (CodeDeploy takes none once it has ended)",
        actions=[Action(kind=ActionKind.NO_ACTION, detail=f"deployment {status}")],
    )


def _watch(
    run: HookRun,
    ports: PostTrafficPorts,
    found: Guarded,
    deployment: Deployment,
    *,
    stage: Stage,
    clock: Clock,
    redactor: Redactor,
    application: str | None = None,
) -> Evaluation:
    target, entry = deployment.target, found.entry
    smoke = (
        run_smoke(
            entry.smoke,
            lambda payload: ports.functions.invoke(
                target.function_name, target.alias, payload, deployment_id=deployment.deployment_id
            ),
            concurrency=entry.smoke_concurrency,
            deadline=run.deadline,
            redactor=redactor,
        )
        if entry.post_traffic_smoke
        else []
    )
    smoke += _custom_checks(
        run, ports, entry, deployment, stage=stage, application=application, redactor=redactor
    )
    checks = [found.policy_check, *smoke]
    if any(check.blocking for check in smoke):
        return Evaluation(checks=checks, target=target, redactor=redactor)

    now = clock()
    window = open_window(now, entry.bake)
    checks += poll_checks(entry, ports.watch, deployment=deployment, now=now, final=window.is_final(now))
    outcome = decide_poll(window, checks, now)
    if outcome.verdict is Verdict.DONE:
        return Evaluation(checks=checks, target=target, redactor=redactor)

    if ports.bake is None:
        raise SettingsError(
            f"the policy bakes {target.function_name} for {entry.bake.minutes} minutes but "
            "DEPLOYGUARD_BAKE_STATE_MACHINE_ARN is not set: set it to the bake state machine in template.yaml"
        )
    execution_id = run.ids.lifecycle_event_hook_execution_id
    state = BakeState(
        deployment_id=deployment.deployment_id,
        lifecycle_event_hook_execution_id=execution_id,
        window=window,
        # NOTE: the execution's input shows in the Step Functions console: redacted like a record
        prior_checks=OutcomeRecord(role=Role.POST_TRAFFIC, checks=smoke).redacted(redactor).checks,
    )
    first = replace(outcome, wait_seconds=first_wait(window, now, deployment.deployment_id))
    execution = ports.bake.start(execution_name(deployment.deployment_id, execution_id), output(state, first))
    until = window.until.isoformat(timespec="seconds")
    return Evaluation(
        checks=checks,
        target=target,
        defer=True,
        reason=f"first poll passed; baking {entry.bake.minutes} minute(s) until {until}, the bake workflow reports the status",
        actions=[Action(kind=ActionKind.BAKE_STARTED, detail=execution)],
        redactor=redactor,
    )


def _custom_checks(
    run: HookRun,
    ports: PostTrafficPorts,
    entry: FunctionPolicy,
    deployment: Deployment,
    *,
    stage: Stage,
    application: str | None,
    redactor: Redactor,
) -> list[CheckResult]:
    """The application's own post-traffic checks (none: no call at all)."""
    if not any("post_traffic" in c.when for c in entry.custom_checks):
        return []
    functions, versions = ports.functions, ports.versions
    target = deployment.target
    arn = versions.version_arn(target.function_name, target.target_version) if versions is not None else None
    context = CheckContext.of(
        deployment.deployment_id, target, stage=stage, application=application, target_version_arn=arn
    )
    return run_custom_checks(
        entry.custom_checks, "post_traffic", context, functions, deadline=run.deadline, redactor=redactor
    )
