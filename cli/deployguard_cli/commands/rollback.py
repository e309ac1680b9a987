"""``deployguard rollback --function F --alias live [--to VERSION] [--yes]`` — put an alias back on
the previous version now, routing cleared, and stop the deployment in flight for it (with
CodeDeploy's auto-rollback): the alarm rollback's own flow (``deployguard.restore``), by hand.

Without ``--to`` the previous version is the alias's main version while it carries routing weights
(mid-shift), else the CurrentVersion of the last deployment that moved it to the version it serves.
The alias's RevisionId guards the change: an alias changed after it was read is not overwritten
(unless it went exactly where the rollback would put it: then nothing is left to do). The record
is redacted with the two versions' environments (key formats only when they cannot be read; an
error of the first GetAlias, before any version is known, with $LATEST's) and printed terminal-safe. Asks for confirmation unless ``--yes``. Exit 0 rolled back (or nothing to do), 1 declined, 2 could
not run (or the alias went back but the deployment could not be stopped).
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime, timedelta

from deployguard.deployment import FINISHED_STATUSES, IN_FLIGHT_STATUSES, Deployment
from deployguard.errors import DeployGuardError
from deployguard.outcome import OutcomeRecord, Role
from deployguard.ports import CodeDeployPort, LambdaPort
from deployguard.redaction import RedactedError
from deployguard.restore import Aim, Restore, plan_restore, redactor_for, stop_and_restore
from deployguard.snapshot import AliasState
from deployguard_cli import adapters
from deployguard_cli.commands.status import (
    AliasTarget,
    add_target_arguments,
    deployments_of,
    describe_traffic,
)
from deployguard_cli.exit_codes import EXIT_ERROR, EXIT_FINDINGS, EXIT_OK
from deployguard_cli.render import print_record, terminal_safe


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "rollback", help="move an alias back to the previous version now (and stop its deployment)"
    )
    add_target_arguments(parser)
    parser.add_argument(
        "--to", metavar="VERSION", help="the version to go back to (default: the previous one)"
    )
    parser.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    parser.add_argument(
        "--since-days",
        type=int,
        default=30,
        metavar="DAYS",
        help="how far back to look for the last deployment",
    )
    parser.add_argument("--json", action="store_true", help="print the outcome record as JSON")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    target = AliasTarget.of(args)
    return roll_back(
        adapters.codedeploy(),
        adapters.functions(),
        target,
        to=args.to,
        since_days=args.since_days,
        confirmed=args.yes,
        as_json=args.json,
    )


def roll_back(
    codedeploy: CodeDeployPort,
    functions: LambdaPort,
    target: AliasTarget,
    *,
    to: str | None,
    since_days: int,
    confirmed: bool,
    as_json: bool,
) -> int:
    """Show the plan, ask (unless ``confirmed``), then stop the deployment in flight and put the
    alias back as it was shown."""
    state = _read_alias(functions, target)
    in_flight = deployments_of(codedeploy, target, IN_FLIGHT_STATUSES)
    plan = _plan(codedeploy, target, state, in_flight, to=to, since_days=since_days)
    if plan.version == state.function_version and not state.additional_version_weights and in_flight is None:
        _say(f"{target.function}:{target.alias} is already on version {plan.version} alone: nothing to do")
        return EXIT_OK
    _say(
        f"{target.function}:{target.alias}: {describe_traffic(state)} -> version {plan.version} (100%), routing cleared"
    )
    if in_flight is not None:
        _say(f"  and stop deployment {in_flight.deployment_id} ({in_flight.status}) with auto-rollback")
    if not confirmed and not _confirmed():
        print("nothing changed")
        return EXIT_FINDINGS

    done = stop_and_restore(
        codedeploy,
        functions,
        deployment_id=in_flight.deployment_id if in_flight else None,
        aim=Aim(state=state, plan=plan),  # the alias as shown and confirmed
    )
    redactor, note = redactor_for(functions, target.function, [plan.version, *plan.leaving.split(",")])
    if done.stop_error is not None:
        error = redactor(str(done.stop_error))
        print(terminal_safe(f"deployguard: {error}; moving the alias back anyway"), file=sys.stderr)
    if done.alias_changed:
        raise DeployGuardError(
            f"{target.function}:{target.alias} changed after it was read (RevisionId {state.revision_id}); "
            "nothing was overwritten: check `deployguard status` and run the rollback again"
        )
    if done.restore_error is not None:
        raise DeployGuardError(redactor(str(done.restore_error)))
    reason = f"rolled back by hand (deployguard rollback): {target.alias} back on version {plan.version}"
    record = OutcomeRecord(
        role=Role.CLI,
        function_name=target.function,
        alias=target.alias,
        deployment_id=in_flight.deployment_id if in_flight else None,
        current_version=plan.version,
        target_version=plan.leaving,
        actions=done.actions,
        reason=f"{reason} ({note})" if note else reason,
    ).finish()
    record = record.redacted(redactor)
    if as_json:
        print(json.dumps(record.document(), indent=2))
    else:
        print_record(record)
    return EXIT_OK if done.stop_error is None else EXIT_ERROR


def _read_alias(functions: LambdaPort, target: AliasTarget) -> AliasState:
    """The alias now. Its error is redacted with the environment of the function's newest code
    ($LATEST, what the last release published): no version is known yet."""
    try:
        return functions.alias(target.function, target.alias)
    except DeployGuardError as exc:
        redactor, _ = redactor_for(functions, target.function, ["$LATEST"])
        raise RedactedError(exc, redactor) from None


def _plan(
    codedeploy: CodeDeployPort,
    target: AliasTarget,
    state: AliasState,
    in_flight: Deployment | None,
    *,
    to: str | None,
    since_days: int,
) -> Restore:
    if to:
        return Restore(version=str(to), leaving=state.function_version)
    plan = plan_restore(state, in_flight)
    if plan is not None:
        return plan
    since = datetime.now(UTC) - timedelta(days=since_days)
    last = deployments_of(codedeploy, target, (*IN_FLIGHT_STATUSES, *FINISHED_STATUSES), created_after=since)
    plan = plan_restore(state, last)
    if plan is None:
        raise DeployGuardError(
            f"cannot tell the version before {state.function_version} of {target.function}:{target.alias}: it has "
            f"no routing weights and no deployment of the last {since_days} days moved it there; "
            "name it with --to VERSION"
        )
    return plan


def _say(line: str) -> None:
    print(terminal_safe(line))


def _confirmed() -> bool:
    print("Proceed? [y/N] ", end="", flush=True)
    answer = sys.stdin.readline()
    return answer.strip().lower() in ("y", "yes")
