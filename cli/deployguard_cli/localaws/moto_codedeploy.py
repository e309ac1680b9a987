"""CodeDeploy for AWS Lambda deployments on moto: the APIs a lifecycle hook calls, answered as AWS does.

moto 5.2 stores applications, deployment groups and deployments, but has no
``PutLifecycleEventHookExecutionStatus``, ``StopDeployment``, ``GetApplicationRevision``,
``ListDeploymentTargets`` or ``GetDeploymentTarget``, no lifecycle events and no hook execution ids;
its ``GetDeployment`` / ``BatchGetDeployments`` echo an ``AppSpecContent`` revision's ``content`` (AWS
returns only the ``sha256``; the content comes from ``GetApplicationRevision``), return empty
structures AWS leaves out, and give Lambda groups the Server default ``CodeDeployDefault.OneAtATime``;
its ``GetDeploymentGroup`` answers ``alarmConfiguration: {}`` whatever the group was given.

:func:`install` (idempotent) patches those APIs onto ``CodeDeployBackend`` / ``CodeDeployResponse``,
with the botocore service model's field names and error codes, for an in-process ``mock_aws()`` and a
``ThreadedMotoServer`` alike. Each deployment's extra state (its Lambda target parsed from the AppSpec,
the events ``BeforeAllowTraffic`` / ``AllowTraffic`` / ``AfterAllowTraffic``, hook executions,
reports, stops, revisions) lives in one attribute of the region's backend, so moto's reset (each
``mock_aws`` context, ``/moto-api/reset``) clears it with everything else.

CodeDeploy itself never runs here: nothing invokes hooks or shifts traffic. The engine or a test
plays its part (:func:`start_lifecycle_event`, :func:`set_lifecycle_event_status`,
:func:`set_target_version_weight`, :func:`set_deployment_status`, :func:`set_error_information`,
:func:`record_rollback`) and reads what the hooks reported (:func:`hook_reports`,
:func:`stop_requests`). So a Failed report does not fail the deployment, and
``StopDeployment(autoRollbackEnabled=True)`` starts no rollback deployment by itself: until the
engine records one, ``rollbackInfo`` carries a ``rollbackMessage`` saying one was requested, but no
``rollbackDeploymentId``. A recorded rollback links both ways, as on AWS: ``rollbackDeploymentId`` on
the original, ``rollbackTriggeringDeploymentId``, ``rollbackMessage`` and ``creator:
codeDeployRollback`` on the rollback.
"""

from __future__ import annotations

import copy
import hashlib
import json
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final, NoReturn

from moto.codedeploy import responses as moto_responses
from moto.codedeploy.exceptions import CodeDeployException
from moto.codedeploy.models import CodeDeployBackend, CodeDeployDefault, DeploymentInfo, codedeploy_backends
from moto.codedeploy.responses import CodeDeployResponse
from moto.core.models import DEFAULT_ACCOUNT_ID
from moto.core.responses import ActionResult, EmptyResult
from moto.core.utils import utcnow

from deployguard.appspec import REVISION_CONTENT_SECTIONS, lower_keys, revision_content
from deployguard.documents import DocumentSyntaxError, parse_json_or_yaml

DEFAULT_REGION: Final = "us-east-1"
LAMBDA_LIFECYCLE_EVENTS: Final = ("BeforeAllowTraffic", "AllowTraffic", "AfterAllowTraffic")
_NOT_STARTED: Final = ("Created", "Queued")
_TERMINAL: Final = ("Succeeded", "Failed", "Stopped")
DEPLOYMENT_STATUSES: Final = (*_NOT_STARTED, "InProgress", "Baking", "Ready", *_TERMINAL)
EVENT_STATUSES: Final = ("Pending", "InProgress", "Succeeded", "Failed", "Skipped", "Unknown")
_EVENT_DONE: Final = ("Succeeded", "Failed", "Skipped")
_TARGET_STATUS: Final = {
    **dict.fromkeys(_NOT_STARTED, "Pending"),
    "Baking": "InProgress",
    "Stopped": "Failed",
}
_LOCATION_SECTIONS: Final = {"S3": "s3Location", "GitHub": "gitHubLocation", **REVISION_CONTENT_SECTIONS}
_STATE_ATTR: Final = "_deployguard_codedeploy"
_PATCH_MARK: Final = "_deployguard_moto_codedeploy"
_lock = threading.RLock()  # a ThreadedMotoServer serves requests on several threads


@dataclass(frozen=True)
class HookReport:
    """One ``PutLifecycleEventHookExecutionStatus`` call that CodeDeploy accepted."""

    deployment_id: str
    lifecycle_event_hook_execution_id: str
    lifecycle_event_name: str
    status: str
    reported_at: datetime


@dataclass(frozen=True)
class StopRequest:
    """One accepted ``StopDeployment`` call (``auto_rollback_enabled`` is None when not sent)."""

    deployment_id: str
    auto_rollback_enabled: bool | None


@dataclass
class _Event:
    name: str
    status: str = "Pending"
    start_time: datetime | None = None
    end_time: datetime | None = None


@dataclass
class _Tracked:
    function: dict[str, str] | None  # LambdaFunctionInfo, without the weight
    events: dict[str, _Event]
    last_updated_at: datetime
    executions: dict[str, str] = field(default_factory=dict)  # hook execution id -> event name
    reported: set[str] = field(default_factory=set)
    weight: float = 0.0
    rollback_message: str | None = None
    rollback_deployment_id: str | None = None
    rollback_triggering_deployment_id: str | None = None
    error_information: dict[str, str] | None = None


@dataclass
class _Revision:
    location: dict[str, Any]
    register_time: datetime
    deployment_groups: list[str] = field(default_factory=list)
    first_used: datetime | None = None
    last_used: datetime | None = None


@dataclass
class _State:
    tracked: dict[str, _Tracked] = field(default_factory=dict)
    revisions: dict[str, dict[tuple[str, str], _Revision]] = field(default_factory=dict)
    reports: list[HookReport] = field(default_factory=list)
    stops: list[StopRequest] = field(default_factory=list)


def _fail(code: str, message: str) -> NoReturn:
    raise CodeDeployException(code, message)


def _state(backend: CodeDeployBackend) -> _State:
    state = backend.__dict__.get(_STATE_ATTR)
    if not isinstance(state, _State):  # BaseBackend.reset() replaces __dict__: the state goes with it
        state = _State()
        setattr(backend, _STATE_ATTR, state)
    return state


def _version(value: Any) -> str:
    if value is None or isinstance(value, bool):
        return ""
    return str(int(value)) if isinstance(value, float) and value.is_integer() else str(value)


def _lambda_function(revision: dict[str, Any]) -> dict[str, str] | None:
    """The AWS::Lambda::Function an inline AppSpec names (JSON or YAML, keys in any case)."""
    content = revision_content(revision)
    if content is None:
        return None
    try:
        document = parse_json_or_yaml(content)
    except DocumentSyntaxError:
        return None
    resources = lower_keys(document).get("resources") if isinstance(document, dict) else None
    entries = list(resources.values()) if isinstance(resources, dict) else resources
    for entry in entries if isinstance(entries, list) else []:
        for resource in entry.values() if isinstance(entry, dict) else []:
            props = resource.get("properties") if isinstance(resource, dict) else None
            if isinstance(props, dict) and props.get("name") and props.get("alias"):
                return {
                    "functionName": str(props["name"]),
                    "functionAlias": str(props["alias"]),
                    "currentVersion": _version(props.get("currentversion")),
                    "targetVersion": _version(props.get("targetversion")),
                }
    return None


def _tracked(backend: CodeDeployBackend, deployment: DeploymentInfo) -> _Tracked:
    state = _state(backend)
    if deployment.deployment_id not in state.tracked:
        is_lambda = deployment.application.compute_platform == "Lambda"
        state.tracked[deployment.deployment_id] = _Tracked(
            function=_lambda_function(deployment.revision) if is_lambda else None,
            events={name: _Event(name) for name in LAMBDA_LIFECYCLE_EVENTS} if is_lambda else {},
            last_updated_at=deployment.create_time,
        )
    return state.tracked[deployment.deployment_id]


def _deployment(
    backend: CodeDeployBackend, deployment_id: str | None, *, started: bool = False
) -> DeploymentInfo:
    if not deployment_id:
        _fail("DeploymentIdRequiredException", "At least one deployment ID must be specified.")
    deployment = backend.get_deployment(deployment_id)  # DeploymentDoesNotExistException
    if started and deployment.status in _NOT_STARTED:
        _fail("DeploymentNotStartedException", f"The deployment {deployment_id} has not started.")
    return deployment


def _revision_key(revision: Any) -> tuple[str, str] | None:
    """What identifies a revision: the sha256 of inline content, else its whole location."""
    kind = str(revision.get("revisionType")) if isinstance(revision, dict) else ""
    body = revision.get(_LOCATION_SECTIONS[kind]) if kind in _LOCATION_SECTIONS else None
    if not isinstance(body, dict):
        return None
    if kind not in REVISION_CONTENT_SECTIONS:
        return kind, json.dumps(body, sort_keys=True, default=str)
    content = body.get("content")
    sha256 = body.get("sha256") or (hashlib.sha256(content.encode()).hexdigest() if content else "")
    return (kind, str(sha256)) if sha256 else None


def _register(backend: CodeDeployBackend, app: str, group: str, revision: dict[str, Any]) -> _Revision:
    key = _revision_key(revision) or ("", "")
    location = copy.deepcopy(revision)
    body = location.get(REVISION_CONTENT_SECTIONS.get(key[0], ""))
    if isinstance(body, dict) and key[0] in REVISION_CONTENT_SECTIONS:
        body["sha256"] = key[1]  # AWS computes it when the caller leaves it out
    now = utcnow()
    entry = _state(backend).revisions.setdefault(app, {}).setdefault(key, _Revision(location, now))
    entry.deployment_groups += [] if group in entry.deployment_groups else [group]
    entry.first_used, entry.last_used = entry.first_used or now, now
    return entry


# --- the AWS APIs: patched onto CodeDeployBackend; each returns the API's answer -----------------
def _wrap_create_deployment(original: Callable[..., str]) -> Callable[..., str]:
    def create_deployment(self: CodeDeployBackend, *args: Any, **kwargs: Any) -> str:
        deployment_id = original(self, *args, **kwargs)
        with _lock:
            deployment = self.deployments[deployment_id]
            if _revision_key(deployment.revision) is not None:  # AWS registers what it deploys
                app, group = deployment.application_name, deployment.deployment_group_name
                deployment.revision = copy.deepcopy(_register(self, app, group, deployment.revision).location)
            _tracked(self, deployment)
        return deployment_id

    return create_deployment


def _put_lifecycle_event_hook_execution_status(
    self: CodeDeployBackend, deployment_id: str | None, execution_id: str | None, status: str | None
) -> dict[str, Any]:
    with _lock:
        deployment = _deployment(self, deployment_id)
        if deployment.application.compute_platform == "Server":
            _fail("UnsupportedActionForDeploymentTypeException", "Only Lambda and ECS deployments run hooks.")
        if status not in ("Succeeded", "Failed"):
            _fail(
                "InvalidLifecycleEventHookExecutionStatusException", f"{status} is not Succeeded or Failed."
            )
        tracked, execution_id = _tracked(self, deployment), execution_id or ""
        name = tracked.executions.get(execution_id)
        if name is None:
            _fail("InvalidLifecycleEventHookExecutionIdException", f"Unknown execution {execution_id!r}.")
        event = tracked.events[name]
        # NOTE: a deployment that has ended (stopped by a rollback, failed) takes no status for its
        # lifecycle events any more; of the operation's errors in the botocore model, this is it.
        if execution_id in tracked.reported or event.status in _EVENT_DONE or deployment.status in _TERMINAL:
            _fail("LifecycleEventAlreadyCompletedException", f"Lifecycle event {name} has already completed.")
        now = utcnow()
        tracked.reported.add(execution_id)
        event.status, event.end_time, tracked.last_updated_at = status, now, now
        report = HookReport(deployment.deployment_id, execution_id, name, status, now.replace(tzinfo=UTC))
        _state(self).reports.append(report)
        return {"lifecycleEventHookExecutionId": execution_id}


def _stop_deployment(
    self: CodeDeployBackend, deployment_id: str | None, rollback: bool | None
) -> dict[str, Any]:
    with _lock:
        deployment = _deployment(self, deployment_id)
        if deployment.status in _TERMINAL:
            _fail("DeploymentAlreadyCompletedException", f"The deployment is already {deployment.status}.")
        tracked, now = _tracked(self, deployment), utcnow()
        deployment.status, deployment.complete_time, tracked.last_updated_at = "Stopped", now, now
        tracked.error_information = {"code": "MANUAL_STOP", "message": "Stopped by user request."}
        if rollback:
            tracked.rollback_message = "Automatic rollback was requested when the deployment was stopped."
        _state(self).stops.append(StopRequest(deployment.deployment_id, rollback))
        return {"status": "Succeeded", "statusMessage": f"Deployment {deployment.deployment_id} was stopped."}


def _get_application_revision(self: CodeDeployBackend, name: str | None, revision: Any) -> dict[str, Any]:
    with _lock:
        if not name:
            _fail("ApplicationNameRequiredException", "The application name was not specified.")
        self.get_application(name)  # ApplicationDoesNotExistException
        if not revision:
            _fail("RevisionRequiredException", "The revision was not specified.")
        if (key := _revision_key(revision)) is None:
            _fail("InvalidRevisionException", "The revision is missing or its location is invalid.")
        if (entry := _state(self).revisions.get(name, {}).get(key)) is None:
            _fail("RevisionDoesNotExistException", f"The revision does not exist for application {name}.")
        info = {
            "deploymentGroups": list(entry.deployment_groups),
            "firstUsedTime": entry.first_used,
            "lastUsedTime": entry.last_used,
            "registerTime": entry.register_time,
        }
        return {"applicationName": name, "revision": copy.deepcopy(entry.location), "revisionInfo": info}


def _list_deployment_targets(
    self: CodeDeployBackend, deployment_id: str | None, filters: dict[str, list[str]] | None
) -> dict[str, Any]:
    with _lock:
        deployment = _deployment(self, deployment_id, started=True)
        if unknown := set(filters or {}) - {"TargetStatus", "ServerInstanceLabel"}:
            _fail("InvalidTargetFilterNameException", f"Invalid target filter name {sorted(unknown)[0]}.")
        function, statuses = _tracked(self, deployment).function, (filters or {}).get("TargetStatus")
        if function is None or (statuses and _target_status(deployment) not in statuses):
            return {"targetIds": []}
        return {"targetIds": [_target_id(function)]}


def _get_deployment_target(
    self: CodeDeployBackend, deployment_id: str | None, target_id: str | None
) -> dict[str, Any]:
    with _lock:
        deployment = _deployment(self, deployment_id, started=True)
        if not target_id:
            _fail("DeploymentTargetIdRequiredException", "A deployment target ID was not provided.")
        tracked = _tracked(self, deployment)
        fn = tracked.function
        if fn is None or target_id != _target_id(fn):
            _fail("DeploymentTargetDoesNotExistException", f"No deployment target {target_id}.")
        events = [
            _present({"lifecycleEventName": e.name, "startTime": e.start_time, "endTime": e.end_time})
            | {"status": e.status}
            for e in tracked.events.values()
        ]
        function_info = _present(fn) | {"targetVersionWeight": tracked.weight}
        target = {
            "deploymentId": deployment.deployment_id,
            "targetId": target_id,
            "targetArn": f"arn:{self.partition}:lambda:{self.region_name}:{self.account_id}:function:{target_id}",
            "status": _target_status(deployment),
            "lastUpdatedAt": tracked.last_updated_at,
            "lifecycleEvents": events,
            "lambdaFunctionInfo": function_info,
        }
        return {"deploymentTarget": {"deploymentTargetType": "LambdaTarget", "lambdaTarget": target}}


def _target_id(function: dict[str, str]) -> str:
    return f"{function['functionName']}:{function['functionAlias']}"  # as AWS names a Lambda target


def _target_status(deployment: DeploymentInfo) -> str:
    return _TARGET_STATUS.get(deployment.status, deployment.status)


def _deployment_info(backend: CodeDeployBackend, deployment: DeploymentInfo) -> dict[str, Any]:
    """moto's DeploymentInfo, plus what AWS says of a Lambda deployment, minus what AWS leaves out."""
    info: dict[str, Any] = moto_responses._deployment_info(deployment)
    tracked = _tracked(backend, deployment)
    info["revision"] = copy.deepcopy(deployment.revision)
    if isinstance(info["revision"].get("appSpecContent"), dict):
        info["revision"]["appSpecContent"].pop("content", None)  # only GetApplicationRevision has it
    if deployment.application.compute_platform == "Lambda":
        if isinstance(deployment.deployment_config_name, CodeDeployDefault):  # moto's Server default
            info["deploymentConfigName"] = "CodeDeployDefault.LambdaAllAtOnce"
        style = {"deploymentType": "BLUE_GREEN", "deploymentOption": "WITH_TRAFFIC_CONTROL"}
        info["deploymentStyle"] = deployment.deployment_group.deployment_style or style
        overview = dict.fromkeys(("Pending", "InProgress", "Succeeded", "Failed", "Skipped", "Ready"), 0)
        overview[_target_status(deployment)] += 1 if tracked.function else 0
        info["deploymentOverview"] = overview
    info["rollbackInfo"] = _present(
        {
            "rollbackDeploymentId": tracked.rollback_deployment_id,
            "rollbackTriggeringDeploymentId": tracked.rollback_triggering_deployment_id,
            "rollbackMessage": tracked.rollback_message,
        }
    )
    info["errorInformation"] = tracked.error_information
    return _present(info)


def _present(fields: dict[str, Any]) -> dict[str, Any]:
    """The members AWS returns: those with a value (not None, "" or {})."""
    return {k: v for k, v in fields.items() if v is not None and not (isinstance(v, str | dict) and not v)}


def _get_deployment(self: CodeDeployBackend, deployment_id: str | None) -> dict[str, Any]:
    with _lock:
        return {"deploymentInfo": _deployment_info(self, _deployment(self, deployment_id))}


def _batch_get_deployments(self: CodeDeployBackend, deployment_ids: list[str] | None) -> dict[str, Any]:
    with _lock:
        deployments = self.batch_get_deployments(deployment_ids or [])
        return {"deploymentsInfo": [_deployment_info(self, d) for d in deployments]}


def _wrap_deployment_group_info(original: Callable[[Any], dict[str, Any]]) -> Callable[[Any], dict[str, Any]]:
    def deployment_group_info(group: Any) -> dict[str, Any]:
        """moto's answer, with the alarm configuration CreateDeploymentGroup stored (moto: ``{}``)."""
        info = original(group)
        stored = group.alarm_configuration
        if stored is not None and not isinstance(stored, dict):
            stored = {
                "enabled": bool(stored.enabled),
                "ignorePollAlarmFailure": bool(stored.ignore_poll_alarm_failure),
                "alarms": list(stored.alarms),
            }
        info["alarmConfiguration"] = copy.deepcopy(stored) if stored else {}
        return info

    return deployment_group_info


# response method -> (what answers it, its request parameters); moto dispatches action X to method x
_ACTIONS: Final[dict[str, tuple[Callable[..., dict[str, Any] | None], tuple[str, ...]]]] = {
    "put_lifecycle_event_hook_execution_status": (
        _put_lifecycle_event_hook_execution_status,
        ("deploymentId", "lifecycleEventHookExecutionId", "status"),
    ),
    "stop_deployment": (_stop_deployment, ("deploymentId", "autoRollbackEnabled")),
    "get_application_revision": (_get_application_revision, ("applicationName", "revision")),
    "list_deployment_targets": (_list_deployment_targets, ("deploymentId", "targetFilters")),
    "get_deployment_target": (_get_deployment_target, ("deploymentId", "targetId")),
    "get_deployment": (_get_deployment, ("deploymentId",)),
    "batch_get_deployments": (_batch_get_deployments, ("deploymentIds",)),
}
_MOTO_BACKEND_METHODS: Final = frozenset({"get_deployment", "batch_get_deployments"})  # kept: moto uses them


def _response_method(
    answer: Callable[..., dict[str, Any] | None], params: tuple[str, ...]
) -> Callable[..., Any]:
    def respond(self: CodeDeployResponse) -> ActionResult:
        result = answer(self.codedeploy_backend, *(self._get_param(name) for name in params))
        return EmptyResult() if result is None else ActionResult(result)

    return respond


def install() -> None:
    """Patch moto's CodeDeploy backend and responses with the APIs above. Idempotent.

    Call it before deployments are created (a conftest fixture, the rehearsal engine at start-up):
    CreateDeployment then registers each revision for GetApplicationRevision.
    """
    with _lock:
        if getattr(CodeDeployBackend, _PATCH_MARK, False):
            return
        group_info = _wrap_deployment_group_info(moto_responses._deployment_group_info)
        moto_responses._deployment_group_info = group_info  # type: ignore[assignment]
        create_deployment = _wrap_create_deployment(CodeDeployBackend.create_deployment)
        CodeDeployBackend.create_deployment = create_deployment  # type: ignore[method-assign]
        for name, (answer, params) in _ACTIONS.items():
            if name not in _MOTO_BACKEND_METHODS:
                setattr(CodeDeployBackend, name, answer)
            setattr(CodeDeployResponse, name, _response_method(answer, params))
        setattr(CodeDeployBackend, _PATCH_MARK, True)


# --- the engine's side: what CodeDeploy does around the hooks, and what it was told -------------
def _lambda_deployment(
    deployment_id: str, event_name: str | None, account_id: str, region: str
) -> tuple[DeploymentInfo, _Tracked]:
    backend = codedeploy_backends[account_id][region]
    deployment = backend.get_deployment(deployment_id)  # DeploymentDoesNotExistException
    tracked = _tracked(backend, deployment)
    if not tracked.events:
        raise ValueError(f"deployment {deployment_id} is not a Lambda deployment")
    if event_name is not None and event_name not in tracked.events:
        raise ValueError(f"{event_name} is not one of {', '.join(LAMBDA_LIFECYCLE_EVENTS)}")
    return deployment, tracked


def start_lifecycle_event(
    deployment_id: str,
    lifecycle_event_name: str,
    *,
    account_id: str = DEFAULT_ACCOUNT_ID,
    region: str = DEFAULT_REGION,
) -> str:
    """What CodeDeploy does before invoking a hook: the event (and a Created deployment) goes
    InProgress; returns the new ``lifecycleEventHookExecutionId`` the hook reports with."""
    with _lock:
        deployment, tracked = _lambda_deployment(deployment_id, lifecycle_event_name, account_id, region)
        if deployment.status in _TERMINAL:
            raise ValueError(f"deployment {deployment_id} is already {deployment.status}")
        now, execution_id = utcnow(), str(uuid.uuid4())
        tracked.executions[execution_id] = lifecycle_event_name
        event = tracked.events[lifecycle_event_name]
        event.status, event.start_time, event.end_time, tracked.last_updated_at = "InProgress", now, None, now
        if deployment.status in _NOT_STARTED:
            deployment.status, deployment.start_time = "InProgress", deployment.start_time or now
        return execution_id


def set_deployment_status(
    deployment_id: str, status: str, *, account_id: str = DEFAULT_ACCOUNT_ID, region: str = DEFAULT_REGION
) -> None:
    """Move a deployment to ``status``; startTime and completeTime follow, as on AWS."""
    if status not in DEPLOYMENT_STATUSES:
        raise ValueError(f"{status} is not one of {', '.join(DEPLOYMENT_STATUSES)}")
    with _lock:
        backend = codedeploy_backends[account_id][region]
        deployment, now = backend.get_deployment(deployment_id), utcnow()
        deployment.status = status
        deployment.start_time = None if status in _NOT_STARTED else deployment.start_time or now
        deployment.complete_time = now if status in _TERMINAL else None
        _tracked(backend, deployment).last_updated_at = now


def set_target_version_weight(
    deployment_id: str, weight: float, *, account_id: str = DEFAULT_ACCOUNT_ID, region: str = DEFAULT_REGION
) -> None:
    """The share of traffic the target version gets: 0.0-1.0, like an alias routing weight."""
    if not 0.0 <= weight <= 1.0:
        raise ValueError(f"a traffic weight is between 0.0 and 1.0, not {weight}")
    with _lock:
        _, tracked = _lambda_deployment(deployment_id, None, account_id, region)
        tracked.weight, tracked.last_updated_at = float(weight), utcnow()


def set_lifecycle_event_status(
    deployment_id: str,
    lifecycle_event_name: str,
    status: str,
    *,
    account_id: str = DEFAULT_ACCOUNT_ID,
    region: str = DEFAULT_REGION,
) -> None:
    """Set a lifecycle event's status (AllowTraffic has no hook); its start and end times follow."""
    if status not in EVENT_STATUSES:
        raise ValueError(f"{status} is not one of {', '.join(EVENT_STATUSES)}")
    with _lock:
        _, tracked = _lambda_deployment(deployment_id, lifecycle_event_name, account_id, region)
        event, now = tracked.events[lifecycle_event_name], utcnow()
        event.status = status
        event.start_time = None if status == "Pending" else event.start_time or now
        event.end_time = now if status in _EVENT_DONE else None
        tracked.last_updated_at = now


def hook_reports(
    deployment_id: str | None = None, *, account_id: str = DEFAULT_ACCOUNT_ID, region: str = DEFAULT_REGION
) -> list[HookReport]:
    """The accepted PutLifecycleEventHookExecutionStatus calls (of one deployment), oldest first."""
    with _lock:
        reports = _state(codedeploy_backends[account_id][region]).reports
        return [r for r in reports if deployment_id in (None, r.deployment_id)]


def stop_requests(
    deployment_id: str | None = None, *, account_id: str = DEFAULT_ACCOUNT_ID, region: str = DEFAULT_REGION
) -> list[StopRequest]:
    """The accepted StopDeployment calls (of one deployment), oldest first."""
    with _lock:
        stops = _state(codedeploy_backends[account_id][region]).stops
        return [s for s in stops if deployment_id in (None, s.deployment_id)]


def set_error_information(
    deployment_id: str,
    code: str,
    message: str,
    *,
    account_id: str = DEFAULT_ACCOUNT_ID,
    region: str = DEFAULT_REGION,
) -> None:
    """The deployment's ``errorInformation`` (``code`` one of the model's ErrorCode values)."""
    with _lock:
        backend = codedeploy_backends[account_id][region]
        _tracked(backend, backend.get_deployment(deployment_id)).error_information = {
            "code": code,
            "message": message,
        }


def record_rollback(
    deployment_id: str,
    rollback_deployment_id: str,
    *,
    account_id: str = DEFAULT_ACCOUNT_ID,
    region: str = DEFAULT_REGION,
) -> None:
    """``rollback_deployment_id`` is CodeDeploy's rollback of ``deployment_id``: each one's
    ``rollbackInfo`` names the other and the rollback's ``creator`` is ``codeDeployRollback``."""
    with _lock:
        backend = codedeploy_backends[account_id][region]
        original = _tracked(backend, backend.get_deployment(deployment_id))
        rollback_deployment = backend.get_deployment(rollback_deployment_id)
        rollback_deployment.creator = "codeDeployRollback"
        rollback = _tracked(backend, rollback_deployment)
        original.rollback_deployment_id = rollback_deployment_id
        rollback.rollback_triggering_deployment_id = deployment_id
        rollback.rollback_message = (
            f"Deployment {rollback_deployment_id} is triggered to roll back deployment {deployment_id}."
        )
