"""AfterAllowTraffic: the new version takes the traffic. Smoke-test the live alias, then watch the
guarded alarms and the new version's own metrics, at once (``bake.minutes: 0``) or over a bake
window: then this hook starts the bake workflow, whose step (``deployguard.bake_step``) polls and
reports the status.

The first poll is judged here with the code every later poll uses (``deployguard.watch`` and
:func:`deployguard.bake.decide_poll`), so a bake of 0 and a bake of 55 minutes agree.
"""

from __future__ import annotations

from deployguard.alarms import AlarmSelection, select_alarms
from deployguard.bake import BakeState, Clock, Verdict, decide_poll, execution_name, open_window
from deployguard.guard import Guarded, guard_function
from deployguard.hook import Evaluation, HookRun, unchecked_evaluation
from deployguard.outcome import Action, ActionKind, OutcomeRecord, Role
from deployguard.ports import BakeStarter, CodeDeployPort, LambdaPort, PolicySource
from deployguard.records import datarecord
from deployguard.secrets import Redactor
from deployguard.settings import SettingsError
from deployguard.smoke import run_smoke
from deployguard.stages import Stage
from deployguard.watch import WatchPorts, poll_checks


@datarecord
class PostTrafficPorts:
    codedeploy: CodeDeployPort
    functions: LambdaPort
    watch: WatchPorts
    policy: PolicySource
    bake: BakeStarter | None  # None when DEPLOYGUARD_BAKE_STATE_MACHINE_ARN is unset


def evaluate_post_traffic(run: HookRun, ports: PostTrafficPorts, *, stage: Stage, clock: Clock) -> Evaluation:
    deployment_id = run.ids.deployment_id
    deployment = ports.codedeploy.resolve(deployment_id)
    target = deployment.target
    found = guard_function(ports.policy.load(stage), target.function_name, deployment_id=deployment_id)
    if not isinstance(found, Guarded):
        return unchecked_evaluation(found, target)
    entry = found.entry
    smoke = (
        run_smoke(
            entry.smoke,
            lambda payload: ports.functions.invoke(
                target.function_name, target.alias, payload, deployment_id=deployment_id
            ),
            concurrency=entry.smoke_concurrency,
            deadline=run.deadline,
        )
        if entry.post_traffic_smoke
        else []
    )
    checks = [found.policy_check, *smoke]
    if any(check.blocking for check in smoke):
        return Evaluation(checks=checks, target=target)

    now = clock()
    window = open_window(now, entry.bake)
    started_at = deployment.create_time or now
    selected: list[AlarmSelection] = []

    def first_selection() -> AlarmSelection:
        assert entry.alarms is not None
        selected.append(select_alarms(ports.watch.alarms, entry.alarms.select))
        return selected[-1]

    checks += poll_checks(
        entry,
        ports.watch,
        target=target,
        deployment_started_at=started_at,
        alarms=first_selection,
        now=now,
        final=window.is_final(now),
    )
    outcome = decide_poll(window, checks, now)
    if outcome.verdict is Verdict.DONE:
        return Evaluation(checks=checks, target=target)

    if ports.bake is None:
        raise SettingsError(
            f"the policy bakes {target.function_name} for {entry.bake.minutes} minutes but "
            "DEPLOYGUARD_BAKE_STATE_MACHINE_ARN is not set: set it to the bake state machine in template.yaml"
        )
    state = BakeState(
        deployment_id=deployment_id,
        lifecycle_event_hook_execution_id=run.ids.lifecycle_event_hook_execution_id,
        stage=stage.value,
        target=target,
        deployment_started_at=started_at,
        window=window,
        alarm_names=selected[-1].names if selected else [],
        # NOTE: the execution's input shows in the Step Functions console: redacted like a record
        prior_checks=OutcomeRecord(role=Role.POST_TRAFFIC, checks=smoke).redacted(Redactor()).checks,
    )
    execution = ports.bake.start(
        execution_name(deployment_id, run.ids.lifecycle_event_hook_execution_id), state.output(outcome)
    )
    until = window.until.isoformat(timespec="seconds")
    return Evaluation(
        checks=checks,
        target=target,
        defer=True,
        reason=f"first poll passed; baking {entry.bake.minutes} minute(s) until {until}, the bake workflow reports the status",
        actions=[Action(kind=ActionKind.BAKE_STARTED, detail=execution)],
    )
