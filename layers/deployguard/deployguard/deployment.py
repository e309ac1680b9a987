"""A CodeDeploy deployment as DeployGuard knows it, its statuses, and which one shifts a function.

Domain types: the CodeDeploy adapter (``deployguard.aws.codedeploy``) builds :class:`Deployment`;
the use cases and the CLI read it.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import TYPE_CHECKING

from deployguard.appspec import DeploymentTarget, plain_function_name
from deployguard.errors import ResolutionError
from deployguard.records import datarecord

if TYPE_CHECKING:
    from deployguard.ports import CodeDeployPort

TERMINAL_STATUSES = frozenset({"Succeeded", "Failed", "Stopped"})
IN_FLIGHT_STATUSES = ("Created", "Queued", "InProgress", "Baking", "Ready")
FINISHED_STATUSES = ("Succeeded", "Failed", "Stopped")
# Deployments resolved at once when many are searched (each resolve is one or two calls that mostly
# wait on the network): 100 in flight take 10 round trips instead of 100. botocore keeps 10
# connections per client by default (max_pool_connections): more workers would only queue for them.
RESOLVE_WORKERS = 10


@datarecord
class Deployment:
    """What DeployGuard needs to know of one CodeDeploy deployment."""

    deployment_id: str
    application_name: str
    deployment_group_name: str
    status: str
    create_time: datetime | None
    target: DeploymentTarget
    complete_time: datetime | None = None  # when it succeeded, failed or was stopped
    rollback_of: str | None = None  # the deployment whose failure or stop made CodeDeploy start this one
    appspec: str | None = None  # the AppSpec content CodeDeploy holds, when the revision is inline

    def created_before(self, moment: datetime) -> bool:
        """Created at or before ``moment`` (a deployment without a create time never is)."""
        return self.create_time is not None and self.create_time <= moment


def deployments_of(
    codedeploy: CodeDeployPort, deployment_ids: list[str], function_name: str, alias: str | None = None
) -> list[Deployment]:
    """The deployments among ``deployment_ids`` that shift ``function_name`` (and ``alias``), oldest
    first (one resolve each, up to RESOLVE_WORKERS at once); those that are not Lambda deployments, or
    name no versions, are skipped. The first other error is raised."""

    def resolve(deployment_id: str) -> Deployment | None:
        try:
            return codedeploy.resolve(deployment_id)
        except ResolutionError:
            return None  # not a Lambda deployment, or one without versions: not this function's

    if len(deployment_ids) > 1:
        with ThreadPoolExecutor(min(RESOLVE_WORKERS, len(deployment_ids)), "resolve") as pool:
            resolved = list(pool.map(resolve, deployment_ids))
    else:
        resolved = [resolve(deployment_id) for deployment_id in deployment_ids]
    matching: list[Deployment] = []
    for deployment in resolved:
        if deployment is None:
            continue
        target = deployment.target
        if plain_function_name(target.function_name) == plain_function_name(function_name) and alias in (
            None,
            target.alias,
        ):
            matching.append(deployment)
    return sorted(matching, key=lambda d: d.create_time.timestamp() if d.create_time else 0.0)


def newest_of(
    codedeploy: CodeDeployPort, deployment_ids: list[str], function_name: str, alias: str | None = None
) -> Deployment | None:
    """The newest of the deployments that shift ``function_name`` (and ``alias``); others are skipped."""
    matching = deployments_of(codedeploy, deployment_ids, function_name, alias)
    return matching[-1] if matching else None
