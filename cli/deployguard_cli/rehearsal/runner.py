"""One scenario from start to finish: a fresh world, the live release, the new release, one
CodeDeploy deployment played to its end, and everything it left behind, checked against the
scenario's expected outcome. The CLI (``deployguard rehearse``), the tests and the benchmark call
:func:`run_scenario`; nothing here prints.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from deployguard.errors import DeployGuardError
from deployguard.outcome import OutcomeRecord
from deployguard.stages import APP_TAG, Stage
from deployguard_cli.localaws import faults, lambda_runner
from deployguard_cli.policy_store import store_split
from deployguard_cli.rehearsal.clock import VirtualClock
from deployguard_cli.rehearsal.engine import DeploymentOutcome, EngineEvent
from deployguard_cli.rehearsal.scenarios import BASELINE, Scenario, prepare_stage_files, verify
from deployguard_cli.rehearsal.traffic import summarize
from deployguard_cli.rehearsal.wiring import Wiring, read_wiring
from deployguard_cli.rehearsal.world import EmittedMetric, Release, World
from deployguard_cli.report import OutcomeLogs, Report, build_report, render_report

if TYPE_CHECKING:
    from deployguard_cli.rehearsal.userapp import AppRehearsal

__all__ = ["ScenarioResult", "default_root", "run_scenario"]


def default_root() -> Path:
    """DeployGuard's own repository (its template, functions and policies), where this package is
    installed from — never the current folder, which may hold the user's own template."""
    here = Path(__file__).resolve()
    for folder in here.parents:
        if all((folder / part).exists() for part in ("template.yaml", "functions", "policies", "cli")):
            return folder
    raise DeployGuardError(
        "DeployGuard's template.yaml is not beside this installation: the rehearsal runs from a "
        "checkout of the DeployGuard repository (installed with `make dev`)"
    )


@dataclass
class ScenarioResult:
    scenario: Scenario
    outcome: DeploymentOutcome
    wiring: Wiring
    records: list[OutcomeRecord]
    report: Report | None
    report_text: str
    problems: list[str]
    seconds: float  # real time the scenario took, set-up included
    policy_source: str
    log_lines: dict[str, int]  # log group → lines the guard functions wrote
    metrics: list[EmittedMetric]  # what they emitted (EMF → CloudWatch)
    lambda_datapoints: int  # AWS/Lambda datapoints the traffic wrote
    alerts: list[str]
    invocations: dict[str, int] = field(default_factory=dict)  # function → invocations
    target_invocations: int | None = None  # the new version's code ran so often (None: not counted)

    @property
    def as_expected(self) -> bool:
        return not self.problems

    def to_json(self) -> dict[str, Any]:
        o = self.outcome
        target = summarize(o.traffic, o.target_version)
        return {
            "scenario": self.scenario.name,
            "title": self.scenario.title,
            "mistake": self.scenario.mistake,
            "as_expected": self.as_expected,
            "problems": self.problems,
            "expected": self.scenario.expected.to_json(),
            "deployment": {
                "deployment_id": o.deployment_id,
                "status": o.status,
                "config": o.deployment_config,
                "function": o.function_name,
                "alias": o.alias,
                "current_version": o.current_version,
                "target_version": o.target_version,
                "reason": o.reason,
                "failure": o.failure,
                "failed_lifecycle_event": o.failed_lifecycle_event,
                "max_weight": o.max_weight,
                "alias_version": o.alias_version,
                "alias_weights": o.alias_weights,
                "rolled_back": o.rolled_back,
                "rollback_deployment_id": o.rollback_deployment_id,
                "stopped_by": o.stopped_by,
                "hook_status": o.hook_status,
                "alarm_states": o.alarm_states,
                "virtual_seconds": o.virtual_duration.total_seconds(),
            },
            "traffic": {
                "requests": sum(m.invocations for m in o.traffic),
                "errors": sum(m.errors for m in o.traffic),
                "target_version": {"invocations": target.invocations, "errors": target.errors},
            },
            "timeline": [{"at": e.at.isoformat(), "kind": e.kind, "message": e.message} for e in o.events],
            "recorded": {
                "outcome_records": len(self.records),
                "log_groups": self.log_lines,
                "metrics": sorted({f"{m.namespace}/{m.name}" for m in self.metrics}),
                "lambda_datapoints": self.lambda_datapoints,
                "alerts": self.alerts,
                "guard_invocations": self.invocations,
                "new_version_invocations": self.target_invocations,
                "policy": self.policy_source,
            },
            "report": self.report.model_dump(mode="json", exclude={"records"}) if self.report else None,
            "seconds": round(self.seconds, 3),
        }


def run_scenario(
    scenario: Scenario,
    *,
    root: Path | None = None,
    observer: Callable[[EngineEvent], None] | None = None,
) -> ScenarioResult:
    """Rehearse one scenario of the example app; ``observer`` sees each timeline event as it happens."""
    began = time.perf_counter()
    root = root or default_root()
    template = root / "template.yaml"
    wirings = {stage.value: read_wiring(template, stage=stage.value) for stage in Stage}
    wiring = wirings[scenario.stage]
    template_urls = {stage: w.function.environment.get("DATABASE_URL", "") for stage, w in wirings.items()}
    files = prepare_stage_files(root, wiring.function.code_uri, scenario.stage, template_urls)
    try:
        environment = {**wiring.function.environment, "DATABASE_URL": files.url(scenario.stage)}
        if scenario.database_of:
            release = replace(
                scenario.release,
                environment={**scenario.release.environment, "DATABASE_URL": files.url(scenario.database_of)},
            )
            scenario = replace(scenario, release=release)
        result = play(
            scenario,
            wiring=wiring,
            live=BASELINE,
            environment=environment,
            # stored as the stage's baseline and the document of the function's application (deployguard:app)
            publish_policy=functools.partial(
                store_split, document=files.policy, application=wiring.function.tags.get(APP_TAG, "orders")
            ),
            policy_source=files.policy_source,
            observer=observer,
        )
    finally:
        files.cleanup()
    result.seconds = time.perf_counter() - began
    return result


def play(
    scenario: Scenario,
    *,
    wiring: Wiring,
    live: Release,
    environment: Mapping[str, str],
    policy_source: str,
    publish_policy: Callable[[Any, str], None],
    observer: Callable[[EngineEvent], None] | None = None,
    setup: Callable[[World], None] | None = None,
) -> ScenarioResult:
    """One guarded deployment in a fresh world: ``live`` published and on the alias, the
    scenario's release published over it (with its fault, if any), CodeDeploy's deployment played
    to its end, and what it left behind checked against the scenario's expected outcome."""
    began = time.perf_counter()
    with World(
        wiring,
        clock=VirtualClock(),
        publish_policy=publish_policy,
        environment=environment,
        serve_functions=setup is not None,
    ) as world:
        if setup is not None:
            setup(world)
        current = world.publish(live)
        target = world.publish(scenario.release)
        ran_before = len(lambda_runner.invocations())
        if scenario.fault is not None:
            faults.inject(wiring.function.name, target, scenario.fault)
        try:
            world.create_alarms(target)
            deployment_id = world.create_deployment(current, target)
            outcome = world.engine(traffic=scenario.traffic, observer=observer).run(deployment_id)
            world.host.drain(timeout=60)
        finally:
            faults.clear()
        found = OutcomeLogs(world.client("logs")).find(deployment_id, sorted(world.log_lines))
        records = found.records
        report = build_report(records, deployment_id) if records else None
        target_runs = sum(
            1
            for run in lambda_runner.invocations()[ran_before:]
            if (run.function, run.version) == (wiring.function.name, target)
        )
        problems = verify(scenario, outcome, records)
        if problems and scenario.explain is not None:
            problems += scenario.explain(outcome, records)
        return ScenarioResult(
            scenario=scenario,
            outcome=outcome,
            wiring=wiring,
            records=records,
            report=report,
            report_text=render_report(report) if report else "no outcome records were written",
            problems=problems,
            seconds=time.perf_counter() - began,
            policy_source=policy_source,
            log_lines=dict(world.log_lines),
            metrics=list(world.metrics),
            lambda_datapoints=world.traffic.datapoints if world.traffic is not None else 0,
            alerts=world.alerts(),
            invocations=dict(world.invocations),
            target_invocations=target_runs,
        )


Player = Callable[[Scenario, Callable[[EngineEvent], None] | None], ScenarioResult]
"""Plays one scenario with an observer: :func:`run_scenario` for the example app's, or a user
app's (:func:`app_player`)."""


def run_all(
    scenarios: Sequence[Scenario],
    *,
    root: Path | None = None,
    observer: Callable[[Scenario, EngineEvent], None] | None = None,
    on_result: Callable[[ScenarioResult], None] | None = None,
    player: Player | None = None,
) -> list[ScenarioResult]:
    results = []
    for scenario in scenarios:
        see = functools.partial(observer, scenario) if observer is not None else None
        result = run_scenario(scenario, root=root, observer=see) if player is None else player(scenario, see)
        if on_result is not None:
            on_result(result)
        results.append(result)
    return results


def app_player(plan: AppRehearsal) -> Player:
    """Plays a scenario of a user's application (``rehearse --template``)."""

    release: list[ScenarioResult] = []  # the release as it is, played first

    def play_one(scenario: Scenario, observer: Callable[[EngineEvent], None] | None) -> ScenarioResult:
        result = play(
            scenario,
            wiring=plan.wiring,
            live=plan.live,
            environment={},  # each release brings its own (the live one its tree's)
            policy_source=plan.policy_source,
            publish_policy=plan.publish_policy,
            observer=observer,
            setup=plan.setup,
        )
        if scenario.fault is None and not scenario.release.unset:
            release.append(result)
        elif release and not release[0].as_expected:
            result.problems.append(
                "proves nothing: the release fails without any fault (see the first deployment)"
            )
        return result

    return play_one
