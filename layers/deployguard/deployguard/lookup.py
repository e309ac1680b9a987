"""Which deployment a function's alarm concerns, without searching the account: the deployment
records the pre-traffic hook keeps, verified with CodeDeploy before anything acts on them.

When the pre-traffic hook starts, it records the deployment it resolved (:func:`record_of`): the
function, alias, deployment id, CodeDeploy application and group, create time, the AppSpec content,
and the function's ``deployguard:stage`` tag as the hook read it (its scope). The alarm rollback
reads the function's records (one query, remembered while warm) and takes nothing in them on trust
(:func:`recorded_deployment`): the deployment is read from CodeDeploy (GetDeployment), the AppSpec
is the record's only if its SHA-256 is the one CodeDeploy holds for the deployment's revision (else
GetApplicationRevision), and the deployment must shift this very function and alias. A record that
fails any of this is refused, logged, and the caller searches as if there were none. What a
verified record gives is the deployment, if it is in flight and older than the alarm, or else the
function's deployment group, whose deployments the rollback then lists: one group, not the account;
and the function's scope tag, which spares the rollback a ListTags (see :class:`Recorded`).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from deployguard.appspec import plain_function_name
from deployguard.deployment import IN_FLIGHT_STATUSES, Deployment
from deployguard.errors import AwsCallError, DeployGuardError, ResolutionError
from deployguard.observability import logger
from deployguard.records import datarecord
from deployguard.stages import STAGE_TAG

if TYPE_CHECKING:
    from collections.abc import Mapping

    from deployguard.ports import CodeDeployPort, DeploymentRecordsPort

# How long a record is kept (the table's TTL): long enough that a function deployed within it is
# found through its group, whatever the bake and retry windows; the table holds one item per
# function and alias, so its size follows the number of guarded functions, not of deployments.
RECORD_TTL = timedelta(days=30)
APPSPEC_MAX = 8192  # characters of AppSpec content a record keeps (SAM's are ~300)
# CodeDeploy's answers for a deployment id that names no deployment of this account and region.
NO_SUCH_DEPLOYMENT = frozenset({"DeploymentDoesNotExistException", "InvalidDeploymentIdException"})
SCOPE_TAGS = (STAGE_TAG,)  # the function tags a record keeps: what the rollback's scope check reads


@datarecord
class DeploymentRecord:
    """What the pre-traffic hook saw start: a hint for the alarm rollback, never proof."""

    function_name: str  # plain name (no ARN, no qualifier)
    alias: str
    deployment_id: str
    application_name: str
    deployment_group_name: str
    created_at: datetime
    appspec: str | None = None
    # the function's SCOPE_TAGS it carried when the hook read them (absent ones absent); None: not recorded
    tags: dict[str, str] | None = None


@datarecord
class GroupRef:
    """The CodeDeploy deployment group that deploys a function."""

    application: str
    name: str


def record_of(deployment: Deployment, tags: Mapping[str, str] | None = None) -> DeploymentRecord | None:
    """The record of a resolved deployment (and of the function's ``tags``, as read when it
    started); None when it lacks what a record needs."""
    target = deployment.target
    if not (deployment.create_time and deployment.application_name and deployment.deployment_group_name):
        return None
    appspec = deployment.appspec if deployment.appspec and len(deployment.appspec) <= APPSPEC_MAX else None
    return DeploymentRecord(
        function_name=plain_function_name(target.function_name),
        alias=target.alias,
        deployment_id=deployment.deployment_id,
        application_name=deployment.application_name,
        deployment_group_name=deployment.deployment_group_name,
        created_at=deployment.create_time,
        appspec=appspec,
        tags=None if tags is None else {key: tags[key] for key in SCOPE_TAGS if key in tags},
    )


def keep_record(
    records: DeploymentRecordsPort, deployment: Deployment, *, tags: Mapping[str, str] | None = None
) -> str | None:
    """Record ``deployment`` and the function's scope ``tags`` (the pre-traffic hook, when it
    starts); why it could not be, or None. Never raises: without a record the alarm rollback still
    finds the deployment, more slowly."""
    record = record_of(deployment, tags)
    if record is None:
        return "the deployment names no create time, application or group"
    try:
        records.record(record)
    except DeployGuardError as exc:
        logger.warning(
            "deployment record not written",
            extra={"deployment_id": deployment.deployment_id, "error": str(exc)},
        )
        return str(exc)
    return None


@datarecord
class Recorded:
    """A verified record: the deployment as CodeDeploy has it now, and the function's scope tags
    as the pre-traffic hook read them from Lambda (None: the record has none).

    NOTE: CodeDeploy confirms the deployment, not the tags: a record forged with a scope tag could
    make the rollback judge the function in scope. Nothing follows from that alone: the rollback
    reads the alias (GetAlias) before it stops anything, and its role may read and move only aliases
    of functions tagged for its stage (template.yaml, RestoreGuardedAliases), so AWS refuses it."""

    deployment: Deployment
    tags: dict[str, str] | None = None

    @property
    def group(self) -> GroupRef:
        return GroupRef(
            application=self.deployment.application_name, name=self.deployment.deployment_group_name
        )

    def in_flight_before(self, moment: datetime) -> bool:
        return self.deployment.status in IN_FLIGHT_STATUSES and self.deployment.created_before(moment)


def recorded_deployment(
    records: DeploymentRecordsPort, codedeploy: CodeDeployPort, function_name: str, alias: str | None
) -> Recorded | None:
    """The record of ``function_name`` (and ``alias``) that CodeDeploy confirms: the newest whose
    deployment is in flight, else the newest confirmed (without ``alias``, each of the function's
    aliases has its own record); None when there is none, the records cannot be read, or CodeDeploy
    refutes them (each logged). An AWS error while verifying is raised: the deployment may well be
    real."""
    name = plain_function_name(function_name)
    try:
        found = records.latest(name)
    except DeployGuardError as exc:
        logger.warning(
            "deployment records unreadable; searching", extra={"function_name": name, "error": str(exc)}
        )
        return None
    mine = sorted(
        (r for r in found if r.function_name == name and alias in (None, r.alias)),
        key=lambda r: r.created_at,
        reverse=True,
    )
    confirmed: Recorded | None = None
    for record in mine:
        refused = _refutation(record, codedeploy, name)
        if isinstance(refused, Deployment):
            if refused.status in IN_FLIGHT_STATUSES:
                return Recorded(deployment=refused, tags=record.tags)
            confirmed = confirmed or Recorded(deployment=refused, tags=record.tags)
            continue
        logger.warning(
            "deployment record refused",
            extra={"function_name": name, "deployment_id": record.deployment_id, "reason": refused},
        )
    return confirmed


def _refutation(record: DeploymentRecord, codedeploy: CodeDeployPort, name: str) -> Deployment | str:
    """The deployment CodeDeploy has under the record's id, if it is the one recorded; else why not."""
    try:
        deployment = codedeploy.resolve(record.deployment_id, appspec=record.appspec)
    except ResolutionError as exc:
        return f"deployment {record.deployment_id} names no Lambda function and versions ({exc})"
    except AwsCallError as exc:
        if exc.error_code in NO_SUCH_DEPLOYMENT:
            return f"CodeDeploy has no deployment {record.deployment_id} ({exc.error_code})"
        raise
    target = deployment.target
    if plain_function_name(target.function_name) != name or target.alias != record.alias:
        return (
            f"deployment {record.deployment_id} shifts {target.function_name}:{target.alias}, "
            f"not {name}:{record.alias}"
        )
    if (deployment.application_name, deployment.deployment_group_name) != (
        record.application_name,
        record.deployment_group_name,
    ):
        return f"deployment {record.deployment_id} belongs to another deployment group than recorded"
    return deployment
