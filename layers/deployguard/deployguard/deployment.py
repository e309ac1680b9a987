"""A CodeDeploy deployment as DeployGuard knows it, its statuses, and which one shifts a function.

Domain types: the CodeDeploy adapter (``deployguard.aws.codedeploy``) builds :class:`Deployment`;
the use cases and the CLI read it.
"""

from __future__ import annotations

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

    def created_before(self, moment: datetime) -> bool:
        """Created at or before ``moment`` (a deployment without a create time never is)."""
        return self.create_time is not None and self.create_time <= moment


def deployments_of(
    codedeploy: CodeDeployPort, deployment_ids: list[str], function_name: str, alias: str | None = None
) -> list[Deployment]:
    """The deployments among ``deployment_ids`` that shift ``function_name`` (and ``alias``), oldest
    first (one resolve each); those that are not Lambda deployments, or name no versions, are skipped."""
    matching: list[Deployment] = []
    for deployment_id in deployment_ids:
        try:
            deployment = codedeploy.resolve(deployment_id)
        except ResolutionError:
            continue  # not a Lambda deployment, or one without versions: not this function's
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
