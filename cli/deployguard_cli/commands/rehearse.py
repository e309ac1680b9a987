"""``deployguard rehearse`` — watch DeployGuard stop the classic bad releases, on an embedded AWS.

Each scenario is a real guarded deployment of the example application (moto in this process, no
account, no Docker, a virtual clock): a live timeline (traffic weights, hook results, alarms, the
decision), the deployment's report from its outcome records, and where each outcome was recorded.
Then a summary table. ``--json`` prints one JSON document instead.

Exit 0 every scenario ended as expected, 1 at least one did not, 2 the rehearsal could not run.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from deployguard.secrets import Redactor
from deployguard.stages import Stage
from deployguard_cli.exit_codes import EXIT_ERROR, EXIT_FINDINGS, EXIT_OK
from deployguard_cli.localaws.faults import FAULTS, SLOW_DEFAULT_MS
from deployguard_cli.rehearsal.clock import human_duration
from deployguard_cli.render import terminal_safe

if TYPE_CHECKING:
    from rich.console import Console

    from deployguard_cli.rehearsal.engine import DeploymentOutcome, EngineEvent
    from deployguard_cli.rehearsal.runner import Player, ScenarioResult
    from deployguard_cli.rehearsal.scenarios import Scenario

KIND_STYLES = {
    "deployment": "bold",
    "hook": "cyan",
    "shift": "magenta",
    "traffic": "dim",
    "alarm": "yellow",
    "event": "blue",
    "workflow": "dim cyan",
    "rollback": "red",
    "decision": "bold",
}


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "rehearse",
        help="run guarded deployments of the example app on an embedded local AWS (no account, no Docker)",
    )
    parser.add_argument(
        "--scenario",
        action="append",
        dest="scenarios",
        metavar="NAME",
        help="run only this scenario (repeatable); see --list",
    )
    parser.add_argument("--list", action="store_true", help="list the scenarios and what each must end in")
    parser.add_argument("--json", action="store_true", help="print the results as one JSON document")
    parser.add_argument("--no-report", action="store_true", help="leave out each deployment's report")
    own = parser.add_argument_group(
        "your own application", "rehearse the guarded deployment of your SAM app (docs/rehearse-your-app.md)"
    )
    own.add_argument("--template", type=Path, metavar="PATH", help="your SAM template (template.yaml)")
    own.add_argument(
        "--function", metavar="F", help="the function to rehearse, when the template guards several"
    )
    own.add_argument(
        "--from",
        dest="from_spec",
        metavar="GIT_REF|DIR",
        help="the live version: a commit (default: the last one, HEAD) or a folder holding the template",
    )
    own.add_argument("--to", type=Path, metavar="DIR", help="the new version (default: the working tree)")
    own.add_argument(
        "--stage", choices=[s.value for s in Stage], help="the stage (default: the policy's, else dev)"
    )
    own.add_argument(
        "--policy",
        type=Path,
        metavar="FILE",
        help="your application policy (default: deployguard-<stage>.yaml beside the template)",
    )
    own.add_argument(
        "--app", help="the application's name (default: the policy's, else as `deployguard init` names it)"
    )
    own.add_argument(
        "--parameter-overrides",
        nargs="+",
        default=[],
        metavar="K=V",
        help="template parameters (over samconfig.toml's)",
    )
    own.add_argument(
        "--config-env", default="default", help="samconfig.toml's environment (default: default)"
    )
    own.add_argument(
        "--faults",
        default=None,
        metavar="LIST",
        help=f"also play the release with each fault injected: all, or some of {','.join(FAULTS)}",
    )
    own.add_argument(
        "--slow-ms",
        type=int,
        help="the slow fault's added latency (default: 1 s past the smoke cases' max_latency_ms, "
        f"else {SLOW_DEFAULT_MS} ms)",
    )
    own.add_argument(
        "--setup",
        metavar="COMMAND",
        help="a command run against each fresh embedded AWS before the deployment (AWS_ENDPOINT_URL is set), "
        "e.g. to create the SSM parameters or tables your code reads",
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """The command line, adapted to :func:`rehearse` (or :func:`rehearse_app` with --template)."""
    if args.template is not None:
        if args.scenarios or args.list:
            print(
                "deployguard: --scenario and --list choose among the example app's scenarios; with --template, "
                "choose the faults to play with --faults",
                file=sys.stderr,
            )
            return EXIT_ERROR
        return rehearse_app(args, as_json=args.json, show_report=not args.no_report)
    return rehearse(args.scenarios, list_only=args.list, as_json=args.json, show_report=not args.no_report)


def rehearse_app(args: argparse.Namespace, *, as_json: bool, show_report: bool) -> int:
    """``rehearse --template``: the user's own app, as it is and with each fault asked for."""
    from botocore.exceptions import BotoCoreError, ClientError  # noqa: PLC0415

    from deployguard_cli.rehearsal.runner import app_player, default_root  # noqa: PLC0415
    from deployguard_cli.rehearsal.userapp import (  # noqa: PLC0415
        Options,
        RehearsalSetupError,
        parse_overrides,
        prepared,
    )

    options = Options(
        template=args.template,
        function=args.function,
        from_spec=args.from_spec,
        to_dir=args.to,
        stage=args.stage,
        policy=args.policy,
        parameters=parse_overrides(args.parameter_overrides),
        faults=tuple(f.strip() for f in (args.faults or "").split(",") if f.strip()),
        app=args.app,
        config_env=args.config_env,
        slow_ms=args.slow_ms,
        setup=args.setup,
    )
    with prepared(options, deployguard_root=default_root()) as plan:
        player = app_player(plan)
        heading = (
            f"guarded deployments of {plan.app.function.logical_id} ({args.template}) on an embedded AWS: "
            f"{plan.from_tree.label} → {plan.to_tree.label}"
        )
        try:
            if as_json:
                return _run_json(plan.scenarios, player=player, notes=plan.notes)
            return _run_live(
                plan.scenarios, show_report=show_report, player=player, heading=heading, notes=plan.notes
            )
        except (BotoCoreError, ClientError) as exc:  # NOTE: e.g. MemorySize 64, an alias name Lambda refuses
            redact = Redactor.for_environment(plan.app.function.environment).merge(
                Redactor.for_environment(plan.live.environment)
            )  # NOTE: a refusal may quote the value it refused
            raise RehearsalSetupError(
                f"the embedded AWS refused {plan.app.function.logical_id} as {args.template} declares it: "
                f"{redact(str(exc))}"
            ) from exc


def rehearse(
    names: Sequence[str] | None,
    *,
    list_only: bool = False,
    as_json: bool = False,
    show_report: bool = True,
) -> int:
    """Rehearse the scenarios ``names`` (all when None), or only list them; the command's exit code."""
    # NOTE: imported here: moto and the rehearsal are heavy, and other commands never need them.
    from deployguard_cli.rehearsal.scenarios import by_name  # noqa: PLC0415

    try:
        scenarios = by_name(names)
    except KeyError as exc:
        print(f"deployguard: {exc.args[0]}", file=sys.stderr)
        return EXIT_ERROR
    if list_only:
        return _list(scenarios, as_json=as_json)
    own = Path.cwd() / "template.yaml"
    if not as_json and own.is_file() and not (Path.cwd() / "cli" / "deployguard_cli").is_dir():
        print(
            "deployguard: rehearsing DeployGuard's example app; to rehearse yours: "
            "deployguard rehearse --template template.yaml (docs/rehearse-your-app.md)",
            file=sys.stderr,
        )
    if as_json:
        return _run_json(scenarios)
    return _run_live(scenarios, show_report=show_report)


def _list(scenarios: Sequence[Scenario], *, as_json: bool) -> int:
    if as_json:
        listed = [
            s.expected.to_json() | {"name": s.name, "title": s.title, "mistake": s.mistake} for s in scenarios
        ]
        print(json.dumps(listed, indent=2))
        return EXIT_OK
    from rich.console import Console  # noqa: PLC0415
    from rich.table import Table  # noqa: PLC0415

    table = Table(title="deployguard rehearse --scenario NAME")
    for column in ("name", "the mistake", "must end"):
        table.add_column(column)
    for s in scenarios:
        table.add_row(s.name, s.mistake, _expected_words(s))
    Console().print(table)
    return EXIT_OK


def _expected_words(scenario: Scenario) -> str:
    e = scenario.expected
    if isinstance(e.status, tuple):
        return f"{' or '.join(e.status)}, the alias back on the live version"
    if e.status == "Succeeded":
        return "Succeeded: 100% on the new version"
    where = (
        "before traffic, 0% shifted"
        if e.max_weight == 0
        else f"by {e.decided_by}, rolled back to the previous version"
    )
    return f"{e.status} {where}"


def _run_json(
    scenarios: Sequence[Scenario], *, player: Player | None = None, notes: Sequence[str] = ()
) -> int:
    from deployguard_cli.rehearsal.runner import run_all  # noqa: PLC0415

    began = time.perf_counter()
    # NOTE: stray output (a warning printed by a library) must not corrupt the JSON on stdout.
    with contextlib.redirect_stdout(sys.stderr):
        results = run_all(scenarios, player=player)
    as_expected = all(r.as_expected for r in results)
    document: dict[str, object] = {
        "all_as_expected": as_expected,
        "seconds": round(time.perf_counter() - began, 3),
        "scenarios": [r.to_json() | {"proven": _proven(r)} for r in results],
    }
    if player is not None:
        document["notes"] = list(notes)
    print(json.dumps(document, indent=2))
    return EXIT_OK if as_expected else EXIT_FINDINGS


def _run_live(
    scenarios: Sequence[Scenario],
    *,
    show_report: bool,
    player: Player | None = None,
    heading: str = "guarded deployments of the example app on an embedded AWS",
    notes: Sequence[str] = (),
) -> int:
    from rich.console import Console  # noqa: PLC0415

    from deployguard_cli.rehearsal.runner import run_all  # noqa: PLC0415

    out: TextIO = sys.stdout  # bound now: the rehearsal routes sys.stdout to the functions' logs
    # NOTE: piped output (CI logs) gets a wide console: timeline lines are long and must stay one line.
    console = Console(file=out, highlight=False, width=None if out.isatty() else 140, soft_wrap=True)
    console.rule(f"[bold]DeployGuard rehearsal[/]: {terminal_safe(heading)}")
    for note in notes:
        console.print(terminal_safe(f"note: {note}"), style="yellow", markup=False)
    console.print(
        "Real: the guard functions' handlers, the application's code (a subprocess per invocation, with "
        "each version's environment), moto's AWS APIs and metrics. Simulated: CodeDeploy's orchestration, "
        "EventBridge delivery, Step Functions waits, alarm evaluation — on a virtual clock.\n",
        style="dim",
    )
    began = time.perf_counter()
    index = {s.name: i for i, s in enumerate(scenarios, 1)}
    shown: set[str] = set()

    def observe(scenario: Scenario, event: EngineEvent) -> None:
        if scenario.name not in shown:
            shown.add(scenario.name)
            console.rule(f"[{index[scenario.name]}/{len(scenarios)}] {scenario.title}", align="left")
            console.print(f"the mistake: {scenario.mistake}", style="italic")
            console.print(f"must end:    {_expected_words(scenario)}", style="italic")
        style = KIND_STYLES.get(event.kind, "")
        if event.kind == "alarm" and event.detail.get("state") == "ALARM":
            style = "bold red"
        marker = _bar(event.detail["weight"]) + " " if event.kind == "shift" else ""
        console.print(
            terminal_safe(f"  {event.at:%H:%M:%S}  {event.kind:<10} {marker}{event.message}"),
            style=style,
            markup=False,
        )

    def finished(result: ScenarioResult) -> None:
        _print_result(console, result, show_report=show_report)

    results = run_all(scenarios, observer=observe, on_result=finished, player=player)
    _print_summary(console, results, time.perf_counter() - began)
    return EXIT_OK if all(r.as_expected for r in results) else EXIT_FINDINGS


def _bar(weight: float, width: int = 10) -> str:
    filled = round(weight * width)
    return "█" * filled + "░" * (width - filled)


def _print_result(console: Console, result: ScenarioResult, *, show_report: bool) -> None:
    o = result.outcome
    if result.as_expected:
        console.print(
            terminal_safe(f"  ✔ ended as expected: {_ended(result)}"), style="bold green", markup=False
        )
    else:
        console.print(terminal_safe(f"  ✘ NOT as expected: {_ended(result)}"), style="bold red", markup=False)
        for problem in result.problems:
            console.print(terminal_safe(f"      - {problem}"), style="red", markup=False)
    if show_report:
        console.print("")
        for line in result.report_text.splitlines():
            console.print(terminal_safe(f"    {line}"), style="dim", markup=False)
    console.print("")
    console.print("  recorded:", style="bold")
    for group, lines in sorted(result.log_lines.items()):
        console.print(f"    CloudWatch Logs {group}: {lines} line(s)", markup=False)
    console.print(f"    outcome records (deployguard outcome): {len(result.records)}", markup=False)
    names = sorted({f"{m.namespace}/{m.name}" for m in result.metrics})
    if names:
        console.print(f"    metrics (EMF): {', '.join(names)}", markup=False)
    if o.traffic:
        console.print(
            f"    metrics AWS/Lambda: {result.lambda_datapoints} datapoints (Invocations, Errors, Throttles, "
            f"Duration per version) from {sum(m.invocations for m in o.traffic)} requests",
            markup=False,
        )
    for alert in result.alerts:
        console.print(
            terminal_safe(f"    alert (SNS {result.wiring.alert_topic_name}): {alert}"), markup=False
        )
    console.print(f"    guard policy: {result.policy_source}", style="dim", markup=False)
    console.print(
        f"  took {result.seconds:.1f} s for {human_duration(o.virtual_duration.total_seconds())} of deployment time\n",
        style="dim",
        markup=False,
    )


def _ended(result: ScenarioResult) -> str:
    o = result.outcome
    if o.status == "Succeeded":
        return f"Succeeded, 100% on version {o.target_version}"
    shifted = (
        "before any traffic shifted" if o.max_weight == 0 else f"after {o.max_weight:.0%} of traffic shifted"
    )
    back = f", alias back on version {o.alias_version}" if o.rolled_back else ""
    return f"{o.status} {shifted}{back} ({o.reason})"


_DECIDERS = {
    "BeforeAllowTraffic": "pre-traffic hook",
    "AfterAllowTraffic": "post-traffic hook",
    "alarm": "alarm",
    "passed": "all checks passed",
}


def _proven(result: ScenarioResult) -> str:
    """What the run proved: which part of the guard caught the fault (or what is missing)."""
    from deployguard.outcome import check_code  # noqa: PLC0415 - pydantic only once a rehearsal ran

    o = result.outcome
    if not result.as_expected:
        return result.problems[-1] if result.problems else "not as expected"
    if o.status == "Succeeded" and result.target_invocations == 0:
        return (
            "passes, but its code never ran: no smoke case and no traffic reached the new version; "
            "add a smoke case to prove anything about it"
        )
    if o.status == "Succeeded":
        return "the release passes every check"
    failed = [
        check
        for record in result.records
        if record.decision is not None and record.decision.value == "Failed"
        for check in record.failed_checks
    ]
    codes = sorted({check_code(c) for c in failed} | {f.code for c in failed for f in c.findings})
    who = _DECIDERS.get(_decider(o), _decider(o))
    caught = f"caught by the {who}" + (f" ({', '.join(codes)})" if codes else "")
    if o.stopped_by:
        caught += f", alarm {o.stopped_by}"
    return f"{caught}; alias back on v{o.alias_version}"


def _decider(outcome: DeploymentOutcome) -> str:
    if outcome.failure in ("alarm", "stopped"):
        return "alarm"
    return outcome.failed_lifecycle_event or "passed"


def _print_summary(console: Console, results: Sequence[ScenarioResult], seconds: float) -> None:
    from rich.table import Table  # noqa: PLC0415

    table = Table(title=f"Rehearsal summary: {len(results)} scenario(s) in {seconds:.1f} s")
    proving = any(r.scenario.fault is not None or r.scenario.name.startswith("fault:") for r in results)
    columns = ("scenario", "ended", "new version got", "decided by", "alias on", "took", "virtual", "ok")
    for column in (*columns, "proven") if proving else columns:
        table.add_column(column, no_wrap=column in ("scenario", "took", "virtual"))
    for r in results:
        o = r.outcome
        table.add_row(
            r.scenario.name,
            o.status,
            f"{o.max_weight:.0%}",
            _DECIDERS.get(_decider(o), _decider(o)),
            f"v{o.alias_version}",
            f"{r.seconds:.1f} s",
            human_duration(o.virtual_duration.total_seconds()),
            "[green]yes[/]" if r.as_expected else "[red]NO[/]",
            *([terminal_safe(_proven(r))] if proving else []),
        )
    console.print(table)
    failed = [r.scenario.name for r in results if not r.as_expected]
    if failed:
        console.print(f"not as expected: {', '.join(failed)}", style="bold red")
    else:
        console.print(f"all {len(results)} scenario(s) ended as expected", style="bold green")
