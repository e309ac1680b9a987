"""``deployguard status --function F --alias live`` — where an alias points, its routing weights,
and the deployment in flight for it, if any. Exit 0, or 2 when AWS cannot be read."""

from __future__ import annotations

import argparse
import json
from typing import Any

from deployguard import entrypoints
from deployguard.aws.codedeploy import IN_FLIGHT_STATUSES, CodeDeploy, Deployment
from deployguard.errors import DeployGuardError
from deployguard.outcome import json_types
from deployguard.rollback import newest_of
from deployguard.snapshot import AliasState
from deployguard_cli.exit_codes import EXIT_OK


def add_target_arguments(parser: argparse.ArgumentParser) -> None:
    """--function/--alias and the optional deployment group (shared with ``deployguard rollback``)."""
    parser.add_argument("--function", required=True, help="function name or ARN")
    parser.add_argument("--alias", default="live", help="the alias CodeDeploy shifts (default: live)")
    parser.add_argument("--application", help="CodeDeploy application (with --deployment-group: one call)")
    parser.add_argument(
        "--deployment-group", help="CodeDeploy deployment group; default: search the account's deployments"
    )


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "status", help="show an alias, its routing weights and the deployment in flight for it"
    )
    add_target_arguments(parser)
    parser.add_argument("--json", action="store_true", help="print the status as JSON")
    parser.set_defaults(run=run)


def deployments_of(
    codedeploy: CodeDeploy, args: argparse.Namespace, statuses: tuple[str, ...], **window: Any
) -> Deployment | None:
    """The newest deployment of the function's alias with one of ``statuses``."""
    if bool(args.application) != bool(args.deployment_group):
        raise DeployGuardError("give both --application and --deployment-group, or neither")
    ids = codedeploy.deployments(
        application_name=args.application,
        deployment_group_name=args.deployment_group,
        statuses=statuses,
        **window,
    )
    return newest_of(codedeploy, ids, args.function, args.alias)


def traffic(state: AliasState) -> dict[str, float]:
    """Version → share of the alias's traffic."""
    weights = {version: float(weight) for version, weight in state.additional_version_weights.items()}
    return {state.function_version: round(1.0 - sum(weights.values()), 6), **weights}


def describe_traffic(state: AliasState) -> str:
    return ", ".join(f"version {version} ({share:.0%})" for version, share in traffic(state).items())


def run(args: argparse.Namespace) -> int:
    state = entrypoints.lambda_adapter().alias(args.function, args.alias)
    deployment = deployments_of(entrypoints.codedeploy(), args, IN_FLIGHT_STATUSES)
    if args.json:
        document = {
            "function": args.function,
            "alias": args.alias,
            "function_version": state.function_version,
            "traffic": traffic(state),
            "revision_id": state.revision_id,
            "deployment": json_types(deployment) if deployment else None,
        }
        print(json.dumps(document, indent=2))
        return EXIT_OK
    print(f"{args.function}:{args.alias} -> {describe_traffic(state)}")
    if deployment is None:
        print("  no deployment in flight")
    else:
        target = deployment.target
        print(
            f"  deployment {deployment.deployment_id} {deployment.status}: version {target.current_version} -> "
            f"{target.target_version} ({deployment.application_name}/{deployment.deployment_group_name})"
        )
    return EXIT_OK
