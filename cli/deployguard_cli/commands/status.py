"""``deployguard status --function F --alias live`` — where an alias points, its routing weights,
and the deployment in flight for it, if any. Exit 0, or 2 when AWS cannot be read."""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from datetime import datetime

from deployguard.deployment import IN_FLIGHT_STATUSES, Deployment, newest_of
from deployguard.errors import DeployGuardError
from deployguard.outcome import json_types
from deployguard.ports import CodeDeployPort, LambdaPort
from deployguard.records import datarecord
from deployguard.snapshot import AliasState
from deployguard_cli import adapters
from deployguard_cli.exit_codes import EXIT_OK
from deployguard_cli.render import terminal_safe


def add_target_arguments(parser: argparse.ArgumentParser) -> None:
    """--function/--alias and the optional deployment group (shared with ``deployguard rollback``)."""
    parser.add_argument("--function", required=True, help="function name or ARN")
    parser.add_argument("--alias", default="live", help="the alias CodeDeploy shifts (default: live)")
    parser.add_argument("--application", help="CodeDeploy application (with --deployment-group: one call)")
    parser.add_argument(
        "--deployment-group", help="CodeDeploy deployment group; default: search the account's deployments"
    )


@datarecord
class AliasTarget:
    """The alias a command looks at, and where its deployments are (a group, or the whole account)."""

    function: str
    alias: str
    application: str | None = None
    deployment_group: str | None = None

    @classmethod
    def of(cls, args: argparse.Namespace) -> AliasTarget:
        if bool(args.application) != bool(args.deployment_group):
            raise DeployGuardError("give both --application and --deployment-group, or neither")
        return cls(
            function=args.function,
            alias=args.alias,
            application=args.application,
            deployment_group=args.deployment_group,
        )


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "status", help="show an alias, its routing weights and the deployment in flight for it"
    )
    add_target_arguments(parser)
    parser.add_argument("--json", action="store_true", help="print the status as JSON")
    parser.set_defaults(run=run)


def deployments_of(
    codedeploy: CodeDeployPort,
    target: AliasTarget,
    statuses: Sequence[str],
    *,
    created_after: datetime | None = None,
) -> Deployment | None:
    """The newest deployment of the function's alias with one of ``statuses``."""
    ids = codedeploy.deployments(
        application_name=target.application,
        deployment_group_name=target.deployment_group,
        statuses=statuses,
        created_after=created_after,
    )
    return newest_of(codedeploy, ids, target.function, target.alias)


def traffic(state: AliasState) -> dict[str, float]:
    """Version → share of the alias's traffic."""
    weights = {version: float(weight) for version, weight in state.additional_version_weights.items()}
    return {state.function_version: round(1.0 - sum(weights.values()), 6), **weights}


def describe_traffic(state: AliasState) -> str:
    return ", ".join(f"version {version} ({share:.0%})" for version, share in traffic(state).items())


def run(args: argparse.Namespace) -> int:
    target = AliasTarget.of(args)
    return status(adapters.codedeploy(), adapters.functions(), target, as_json=args.json)


def status(codedeploy: CodeDeployPort, functions: LambdaPort, target: AliasTarget, *, as_json: bool) -> int:
    """Print the alias's traffic and the deployment in flight for it."""
    state = functions.alias(target.function, target.alias)
    deployment = deployments_of(codedeploy, target, IN_FLIGHT_STATUSES)
    if as_json:
        document = {
            "function": target.function,
            "alias": target.alias,
            "function_version": state.function_version,
            "traffic": traffic(state),
            "revision_id": state.revision_id,
            "deployment": json_types(deployment) if deployment else None,
        }
        print(json.dumps(document, indent=2))
        return EXIT_OK
    lines = [f"{target.function}:{target.alias} -> {describe_traffic(state)}"]
    if deployment is None:
        lines.append("  no deployment in flight")
    else:
        versions = deployment.target
        lines.append(
            f"  deployment {deployment.deployment_id} {deployment.status}: version {versions.current_version} -> "
            f"{versions.target_version} ({deployment.application_name}/{deployment.deployment_group_name})"
        )
    print("\n".join(terminal_safe(line) for line in lines))
    return EXIT_OK
