"""CodeDeploy: resolve a deployment to its function and versions, and report the hook's status."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from deployguard.appspec import REVISION_CONTENT_SECTIONS, DeploymentTarget, parse_appspec, revision_content
from deployguard.aws.errors import aws_call, unless
from deployguard.aws.warm_cache import WarmCache
from deployguard.deployment import IN_FLIGHT_STATUSES, Deployment
from deployguard.errors import ResolutionError
from deployguard.findings import Decision

if TYPE_CHECKING:
    from mypy_boto3_codedeploy import CodeDeployClient

APPSPECS_KEPT = 1024  # AppSpec contents remembered while warm (a few hundred bytes each)


class CodeDeploy:
    """Adapter over the CodeDeploy API (the ``CodeDeployPort``). All methods raise AwsCallError /
    ResolutionError."""

    def __init__(self, client: CodeDeployClient) -> None:
        self._client = client
        # AppSpec contents by (application, revision sha256), kept while warm: content-addressed, so
        # an entry can never be stale (CodeDeploy registers a revision by the hash of its content).
        self._appspecs: WarmCache[tuple[str, str], str] = WarmCache(APPSPECS_KEPT)

    # --- resolution -------------------------------------------------------------------------------
    def resolve(self, deployment_id: str, *, appspec: str | None = None) -> Deployment:
        """GetDeployment → AppSpec (inline, or via GetApplicationRevision) → function and versions.

        ``appspec`` is content the caller was told the deployment holds (a deployment record): it is
        used only when its SHA-256 is the one CodeDeploy gives for the deployment's revision, which
        saves GetApplicationRevision; so is content this adapter read before. Falls back to
        ListDeploymentTargets/GetDeploymentTarget when the revision has no AppSpec.
        """
        with aws_call("GetDeployment"):
            info = self._client.get_deployment(deploymentId=deployment_id)["deploymentInfo"]
        application = info.get("applicationName", "")
        revision = dict(info.get("revision", {}))
        if appspec is not None:
            self._remember(application, appspec)
        target = self._target_from_revision(application, revision) or self._target_from_targets(deployment_id)
        if target is None:
            raise ResolutionError(
                f"deployment {deployment_id} names no Lambda function and versions: neither its AppSpec "
                "revision nor its deployment targets say which versions it shifts"
            )
        return Deployment(
            deployment_id=deployment_id,
            application_name=application,
            deployment_group_name=info.get("deploymentGroupName", ""),
            status=info.get("status", "Unknown"),
            create_time=info.get("createTime"),
            target=target,
            complete_time=info.get("completeTime"),
            rollback_of=info.get("rollbackInfo", {}).get("rollbackTriggeringDeploymentId"),
            appspec=self._content(application, revision),
        )

    def _target_from_revision(self, application: str, revision: dict[str, Any]) -> DeploymentTarget | None:
        content = self._content(application, revision)
        if content is None and revision.get("revisionType") in REVISION_CONTENT_SECTIONS:
            with aws_call("GetApplicationRevision"):
                answer = self._client.get_application_revision(
                    applicationName=application,
                    revision=revision,  # type: ignore[arg-type]
                )
            content = revision_content(dict(answer.get("revision", {})))
            if content is not None:
                self._remember(application, content)
        return parse_appspec(content) if content else None

    def _content(self, application: str, revision: dict[str, Any]) -> str | None:
        """The revision's inline content, or content remembered under its SHA-256."""
        content = revision_content(revision)
        if content is not None:
            return content
        section = revision.get(REVISION_CONTENT_SECTIONS.get(str(revision.get("revisionType")), ""))
        sha256 = section.get("sha256") if isinstance(section, dict) else None
        return self._appspecs.get((application, str(sha256))) if sha256 else None

    def _remember(self, application: str, content: str) -> None:
        self._appspecs.put((application, hashlib.sha256(content.encode()).hexdigest()), content)

    def _target_from_targets(self, deployment_id: str) -> DeploymentTarget | None:
        info = self._lambda_target(deployment_id).get("lambdaFunctionInfo", {})
        if not (info.get("functionName") and info.get("currentVersion") and info.get("targetVersion")):
            return None
        return DeploymentTarget(
            function_name=info["functionName"],
            alias=info.get("functionAlias", ""),
            current_version=info["currentVersion"],
            target_version=info["targetVersion"],
        )

    def _lambda_target(self, deployment_id: str) -> dict[str, Any]:
        with aws_call("ListDeploymentTargets"):
            target_ids = self._client.list_deployment_targets(deploymentId=deployment_id).get("targetIds", [])
        if not target_ids:
            return {}
        with aws_call("GetDeploymentTarget"):
            answer = self._client.get_deployment_target(deploymentId=deployment_id, targetId=target_ids[0])
        return dict(answer.get("deploymentTarget", {}).get("lambdaTarget", {}))

    def lifecycle_event_status(self, deployment_id: str, lifecycle_event: str) -> str | None:
        """Status of one lifecycle event (BeforeAllowTraffic…) of the deployment's Lambda target."""
        for event in self._lambda_target(deployment_id).get("lifecycleEvents", []):
            if event.get("lifecycleEventName") == lifecycle_event:
                return str(event.get("status"))
        return None

    # --- reporting --------------------------------------------------------------------------------
    def report(self, deployment_id: str, lifecycle_event_hook_execution_id: str, decision: Decision) -> bool:
        """PutLifecycleEventHookExecutionStatus. False when CodeDeploy already has a status for it."""
        answer = unless(
            {"LifecycleEventAlreadyCompletedException"},
            "PutLifecycleEventHookExecutionStatus",
            lambda: self._client.put_lifecycle_event_hook_execution_status(
                deploymentId=deployment_id,
                lifecycleEventHookExecutionId=lifecycle_event_hook_execution_id,
                status=decision.value,
            ),
        )
        return answer is not None

    # --- rollback ---------------------------------------------------------------------------------
    def stop(self, deployment_id: str, *, auto_rollback: bool = True) -> bool:
        """StopDeployment with rollback. False when the deployment had already completed."""
        answer = unless(
            {"DeploymentAlreadyCompletedException"},
            "StopDeployment",
            lambda: self._client.stop_deployment(
                deploymentId=deployment_id, autoRollbackEnabled=auto_rollback
            ),
        )
        return answer is not None

    def deployments(
        self,
        *,
        application_name: str | None = None,
        deployment_group_name: str | None = None,
        statuses: Sequence[str] = IN_FLIGHT_STATUSES,
        created_after: datetime | None = None,
        created_before: datetime | None = None,
    ) -> list[str]:
        """ListDeployments of one deployment group (both names) or of the whole account (neither),
        with ``statuses``, created within the range; one call per page."""
        window = {
            key: value
            for key, value in (("start", created_after), ("end", created_before))
            if value is not None
        }
        group = (
            {"applicationName": application_name, "deploymentGroupName": deployment_group_name}
            if application_name and deployment_group_name
            else {}
        )
        request: dict[str, Any] = {**group, "includeOnlyStatuses": list(statuses)}
        if window:
            request["createTimeRange"] = window
        found: list[str] = []
        token: str | None = None
        while True:
            with aws_call("ListDeployments"):
                page: dict[str, Any] = {"nextToken": token} if token else {}
                answer = self._client.list_deployments(**request, **page)
            found += answer.get("deployments", [])
            token = answer.get("nextToken")
            if not token:
                return found
