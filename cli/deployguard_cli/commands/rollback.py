"""``deployguard rollback --function F --alias live [--to VERSION] [--yes]`` — put an alias back on
the previous version now, routing cleared, and stop the deployment in flight for it (with
CodeDeploy's auto-rollback).

Without ``--to`` the previous version is the alias's main version while it carries routing weights
(mid-shift), else the CurrentVersion of the last deployment that moved it to the version it serves.
The alias's RevisionId guards the change: an alias changed after it was read is not overwritten.
Asks for confirmation unless ``--yes``. Exit 0 rolled back (or nothing to do), 1 declined, 2 could
not run (or the alias went back but the deployment could not be stopped).
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime, timedelta
from typing import Any

from deployguard import entrypoints
from deployguard.aws.codedeploy import FINISHED_STATUSES, IN_FLIGHT_STATUSES
from deployguard.errors import AwsCallError, DeployGuardError
from deployguard.outcome import Action, ActionKind, OutcomeRecord, Role
from deployguard.rollback import PRECONDITION_FAILED, Restore, plan_restore
from deployguard.snapshot import AliasState
from deployguard_cli.commands.status import add_target_arguments, deployments_of, describe_traffic
from deployguard_cli.exit_codes import EXIT_ERROR, EXIT_FINDINGS, EXIT_OK
from deployguard_cli.render import print_record


def register(subparsers: Any) -> None:
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
    lambda_, codedeploy = entrypoints.lambda_adapter(), entrypoints.codedeploy()
    state = lambda_.alias(args.function, args.alias)
    in_flight = deployments_of(codedeploy, args, IN_FLIGHT_STATUSES)
    plan = _plan(args, state, in_flight)
    if plan.version == state.function_version and not state.additional_version_weights and in_flight is None:
        print(f"{args.function}:{args.alias} is already on version {plan.version} alone: nothing to do")
        return EXIT_OK
    print(
        f"{args.function}:{args.alias}: {describe_traffic(state)} -> version {plan.version} (100%), routing cleared"
    )
    if in_flight is not None:
        print(f"  and stop deployment {in_flight.deployment_id} ({in_flight.status}) with auto-rollback")
    if not args.yes and not _confirmed():
        print("nothing changed")
        return EXIT_FINDINGS

    actions: list[Action] = []
    stop_failed: DeployGuardError | None = None
    if in_flight is not None:
        try:
            stopped = codedeploy.stop(in_flight.deployment_id, auto_rollback=True)
            kind = ActionKind.DEPLOYMENT_STOPPED if stopped else ActionKind.NO_ACTION
            actions.append(Action(kind=kind, detail="with auto-rollback" if stopped else "already completed"))
        except DeployGuardError as exc:  # NOTE: still move the alias back: that is what stops the harm
            stop_failed = exc
            actions.append(Action(kind=ActionKind.DEPLOYMENT_STOPPED, ok=False, detail=str(exc)))
            print(f"deployguard: {exc}; moving the alias back anyway", file=sys.stderr)
    try:
        lambda_.point_alias(state, plan.version)
    except AwsCallError as exc:
        if exc.error_code != PRECONDITION_FAILED:
            raise
        raise DeployGuardError(
            f"{args.function}:{args.alias} changed after it was read (RevisionId {state.revision_id}); "
            "nothing was overwritten: check `deployguard status` and run the rollback again"
        ) from exc
    actions.append(
        Action(
            kind=ActionKind.ALIAS_RESTORED, detail=f"{args.alias} -> version {plan.version}, routing cleared"
        )
    )
    record = OutcomeRecord(
        role=Role.CLI,
        function_name=args.function,
        alias=args.alias,
        deployment_id=in_flight.deployment_id if in_flight else None,
        current_version=plan.version,
        target_version=plan.leaving,
        actions=actions,
        reason=f"rolled back by hand (deployguard rollback): {args.alias} back on version {plan.version}",
    ).finish()
    if args.json:
        print(json.dumps(record.document(), indent=2))
    else:
        print_record(record)
    return EXIT_OK if stop_failed is None else EXIT_ERROR


def _plan(args: argparse.Namespace, state: AliasState, in_flight: Any) -> Restore:
    if args.to:
        return Restore(version=str(args.to), leaving=state.function_version)
    plan = plan_restore(state, in_flight)
    if plan is not None:
        return plan
    since = datetime.now(UTC) - timedelta(days=args.since_days)
    last = deployments_of(
        entrypoints.codedeploy(), args, (*IN_FLIGHT_STATUSES, *FINISHED_STATUSES), created_after=since
    )
    plan = plan_restore(state, last)
    if plan is None:
        raise DeployGuardError(
            f"cannot tell the version before {state.function_version} of {args.function}:{args.alias}: it has "
            f"no routing weights and no deployment of the last {args.since_days} days moved it there; "
            "name it with --to VERSION"
        )
    return plan


def _confirmed() -> bool:
    print("Proceed? [y/N] ", end="", flush=True)
    answer = sys.stdin.readline()
    return answer.strip().lower() in ("y", "yes")
