"""moto's CodeDeploy extended for Lambda deployments, driven through a real boto3 client.

Every API answers with the service model's field names and error codes: hooks report exactly once,
StopDeployment stops once, GetDeployment hides inline AppSpec content that GetApplicationRevision
returns, the Lambda target comes from the AppSpec in all its spellings, and moto's reset clears it
all — in-process (mock_aws) and through a ThreadedMotoServer."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from datetime import datetime
from typing import TYPE_CHECKING, Any

import boto3
import pytest
import requests
from botocore.exceptions import ClientError
from moto import mock_aws
from moto.codedeploy.models import codedeploy_backends
from moto.core.models import DEFAULT_ACCOUNT_ID

from deployguard_cli.localaws import moto_codedeploy
from deployguard_cli.localaws.moto_codedeploy import HookReport, StopRequest
from tests.support.handlers import REGION

if TYPE_CHECKING:
    from mypy_boto3_codedeploy import CodeDeployClient

APPSPEC_YAML = """\
version: 0.0
Resources:
  - OrdersFunction:
      Type: AWS::Lambda::Function
      Properties:
        Name: orders
        Alias: live
        CurrentVersion: 1
        TargetVersion: 2
Hooks:
  - BeforeAllowTraffic: CodeDeployHook_pre
"""
APPSPEC_LOWER_YAML = """\
version: "0.0"
resources:
  - ordersfunction:
      type: AWS::Lambda::Function
      properties:
        name: orders
        alias: live
        currentversion: "7"
        targetversion: "8"
"""
APPSPEC_JSON = json.dumps(
    {
        "version": 0.0,
        "Resources": [
            {
                "OrdersFunction": {
                    "Type": "AWS::Lambda::Function",
                    "Properties": {
                        "Name": "orders",
                        "Alias": "live",
                        "CurrentVersion": 3,
                        "TargetVersion": "4",
                    },
                }
            }
        ],
    }
)


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def error_code(exc: pytest.ExceptionInfo[ClientError]) -> str:
    return str(exc.value.response["Error"]["Code"])


def create_lambda_app(client: CodeDeployClient, *, application: str = "orders-app") -> None:
    client.create_application(applicationName=application, computePlatform="Lambda")
    client.create_deployment_group(
        applicationName=application,
        deploymentGroupName="orders-group",
        serviceRoleArn="arn:aws:iam::123456789012:role/codedeploy",
        deploymentConfigName="CodeDeployDefault.LambdaCanary10Percent5Minutes",
        deploymentStyle={"deploymentType": "BLUE_GREEN", "deploymentOption": "WITH_TRAFFIC_CONTROL"},
    )


def deploy(
    client: CodeDeployClient,
    content: str = APPSPEC_YAML,
    *,
    with_sha256: bool = True,
    kind: str = "AppSpecContent",
) -> str:
    body = {"content": content, "sha256": sha256(content)} if with_sha256 else {"content": content}
    section = "appSpecContent" if kind == "AppSpecContent" else "string"
    revision: Any = {"revisionType": kind, section: body}
    return client.create_deployment(
        applicationName="orders-app", deploymentGroupName="orders-group", revision=revision
    )["deploymentId"]


def target_of(client: CodeDeployClient, deployment_id: str) -> dict[str, Any]:
    answer = client.get_deployment_target(deploymentId=deployment_id, targetId="orders:live")
    return dict(answer["deploymentTarget"]["lambdaTarget"])


@pytest.fixture
def client(aws_env: None) -> Iterator[CodeDeployClient]:
    moto_codedeploy.install()
    with mock_aws():
        yield boto3.client("codedeploy", region_name=REGION)


@pytest.fixture
def deployment_id(client: CodeDeployClient) -> str:
    create_lambda_app(client)
    return deploy(client)


# --- install ----------------------------------------------------------------------------------------


def test_install_is_idempotent(client: CodeDeployClient) -> None:
    from moto.codedeploy.models import CodeDeployBackend
    from moto.codedeploy.responses import CodeDeployResponse

    # GIVEN install() already ran (fixture)
    patched = (vars(CodeDeployBackend)["create_deployment"], vars(CodeDeployResponse)["stop_deployment"])

    # WHEN it runs again
    moto_codedeploy.install()

    # THEN nothing is wrapped twice, and CreateDeployment still works
    assert (
        vars(CodeDeployBackend)["create_deployment"],
        vars(CodeDeployResponse)["stop_deployment"],
    ) == patched
    create_lambda_app(client)
    assert deploy(client)


# --- PutLifecycleEventHookExecutionStatus ----------------------------------------------------------


def test_a_hook_reports_its_status_once_and_the_event_completes(
    client: CodeDeployClient, deployment_id: str
) -> None:
    # GIVEN CodeDeploy started BeforeAllowTraffic and handed the hook an execution id
    execution_id = moto_codedeploy.start_lifecycle_event(deployment_id, "BeforeAllowTraffic")

    # WHEN the hook reports Succeeded
    answer = client.put_lifecycle_event_hook_execution_status(
        deploymentId=deployment_id, lifecycleEventHookExecutionId=execution_id, status="Succeeded"
    )

    # THEN the call answers the execution id, the report is recorded and the event is Succeeded
    assert answer["lifecycleEventHookExecutionId"] == execution_id
    (report,) = moto_codedeploy.hook_reports(deployment_id)
    assert isinstance(report, HookReport)
    assert (report.deployment_id, report.lifecycle_event_hook_execution_id) == (deployment_id, execution_id)
    assert (report.lifecycle_event_name, report.status) == ("BeforeAllowTraffic", "Succeeded")
    assert isinstance(report.reported_at, datetime) and report.reported_at.tzinfo is not None
    events = {e["lifecycleEventName"]: e for e in target_of(client, deployment_id)["lifecycleEvents"]}
    assert events["BeforeAllowTraffic"]["status"] == "Succeeded"
    assert events["BeforeAllowTraffic"]["endTime"] >= events["BeforeAllowTraffic"]["startTime"]


@pytest.mark.parametrize("second", ["Succeeded", "Failed"])
def test_a_second_report_for_the_same_execution_is_refused(
    client: CodeDeployClient, deployment_id: str, second: str
) -> None:
    # GIVEN a hook execution that already reported Failed
    execution_id = moto_codedeploy.start_lifecycle_event(deployment_id, "BeforeAllowTraffic")
    client.put_lifecycle_event_hook_execution_status(
        deploymentId=deployment_id, lifecycleEventHookExecutionId=execution_id, status="Failed"
    )

    # WHEN it reports again
    with pytest.raises(ClientError) as exc:
        client.put_lifecycle_event_hook_execution_status(
            deploymentId=deployment_id,
            lifecycleEventHookExecutionId=execution_id,
            status=second,  # type: ignore[arg-type]
        )

    # THEN CodeDeploy refuses it, and only the first report counts
    assert error_code(exc) == "LifecycleEventAlreadyCompletedException"
    assert [r.status for r in moto_codedeploy.hook_reports(deployment_id)] == ["Failed"]


@pytest.mark.parametrize("status", ["InProgress", "Pending", "Skipped", "Unknown", "succeeded"])
def test_only_succeeded_or_failed_can_be_reported(
    client: CodeDeployClient, deployment_id: str, status: str
) -> None:
    # GIVEN a started hook execution
    execution_id = moto_codedeploy.start_lifecycle_event(deployment_id, "AfterAllowTraffic")

    # WHEN the hook reports anything but Succeeded or Failed
    with pytest.raises(ClientError) as exc:
        client.put_lifecycle_event_hook_execution_status(
            deploymentId=deployment_id,
            lifecycleEventHookExecutionId=execution_id,
            status=status,  # type: ignore[arg-type]
        )

    # THEN it is refused and nothing is recorded; the execution can still report
    assert error_code(exc) == "InvalidLifecycleEventHookExecutionStatusException"
    assert moto_codedeploy.hook_reports() == []
    client.put_lifecycle_event_hook_execution_status(
        deploymentId=deployment_id, lifecycleEventHookExecutionId=execution_id, status="Succeeded"
    )


def test_reports_for_unknown_deployments_or_executions_are_refused(
    client: CodeDeployClient, deployment_id: str
) -> None:
    # GIVEN a second deployment with its own started hook execution
    other = deploy(client, APPSPEC_JSON)
    other_execution = moto_codedeploy.start_lifecycle_event(other, "BeforeAllowTraffic")
    moto_codedeploy.start_lifecycle_event(deployment_id, "BeforeAllowTraffic")

    # WHEN hooks report for a deployment that does not exist, an execution id CodeDeploy never
    # issued, another deployment's execution id, or no deployment id at all
    cases: list[tuple[dict[str, Any], str]] = [
        ({"deploymentId": "d-NOSUCHDEP", "lifecycleEventHookExecutionId": other_execution}, "DeploymentDoesNotExistException"),
        ({"deploymentId": deployment_id, "lifecycleEventHookExecutionId": "made-up"}, "InvalidLifecycleEventHookExecutionIdException"),
        ({"deploymentId": deployment_id, "lifecycleEventHookExecutionId": other_execution}, "InvalidLifecycleEventHookExecutionIdException"),
        ({"lifecycleEventHookExecutionId": other_execution}, "DeploymentIdRequiredException"),
    ]  # fmt: skip
    codes = []
    for params, _ in cases:
        with pytest.raises(ClientError) as exc:
            client.put_lifecycle_event_hook_execution_status(status="Succeeded", **params)
        codes.append(error_code(exc))

    # THEN each gets its error code and nothing is recorded
    assert codes == [expected for _, expected in cases]
    assert moto_codedeploy.hook_reports() == []


def test_server_deployments_do_not_take_hook_reports(client: CodeDeployClient) -> None:
    # GIVEN an EC2/on-premises (Server) deployment
    client.create_application(applicationName="web", computePlatform="Server")
    client.create_deployment_group(
        applicationName="web", deploymentGroupName="fleet", serviceRoleArn="arn:aws:iam::123456789012:role/x"
    )
    s3: Any = {"revisionType": "S3", "s3Location": {"bucket": "b", "key": "k.zip", "bundleType": "zip"}}
    server_deployment = client.create_deployment(
        applicationName="web", deploymentGroupName="fleet", revision=s3
    )["deploymentId"]

    # WHEN a status is reported for it
    with pytest.raises(ClientError) as exc:
        client.put_lifecycle_event_hook_execution_status(
            deploymentId=server_deployment, lifecycleEventHookExecutionId="x", status="Succeeded"
        )

    # THEN the action is not supported for that deployment type
    assert error_code(exc) == "UnsupportedActionForDeploymentTypeException"


# --- StopDeployment ---------------------------------------------------------------------------------


def test_stopping_with_rollback_stops_once_and_says_so(client: CodeDeployClient, deployment_id: str) -> None:
    # GIVEN a deployment in progress
    moto_codedeploy.start_lifecycle_event(deployment_id, "BeforeAllowTraffic")

    # WHEN a hook stops it with automatic rollback
    answer = client.stop_deployment(deploymentId=deployment_id, autoRollbackEnabled=True)

    # THEN the stop succeeded; the deployment is Stopped, completed, and its rollback info says so
    assert answer["status"] == "Succeeded" and answer["statusMessage"]
    info = client.get_deployment(deploymentId=deployment_id)["deploymentInfo"]
    assert info["status"] == "Stopped"
    assert info["completeTime"] >= info["createTime"]
    assert "rollback" in info["rollbackInfo"]["rollbackMessage"].lower()
    assert info["errorInformation"]["code"] == "MANUAL_STOP"
    assert moto_codedeploy.stop_requests() == [StopRequest(deployment_id, True)]

    # WHEN it is stopped again THEN it has already completed, and no second stop is recorded
    with pytest.raises(ClientError) as exc:
        client.stop_deployment(deploymentId=deployment_id, autoRollbackEnabled=True)
    assert error_code(exc) == "DeploymentAlreadyCompletedException"
    assert len(moto_codedeploy.stop_requests(deployment_id)) == 1


def test_stopping_without_rollback_leaves_rollback_info_out(
    client: CodeDeployClient, deployment_id: str
) -> None:
    # WHEN a just-created deployment is stopped without rollback
    client.stop_deployment(deploymentId=deployment_id, autoRollbackEnabled=False)

    # THEN it is Stopped, and GetDeployment has no rollbackInfo at all (as AWS leaves it out)
    info = client.get_deployment(deploymentId=deployment_id)["deploymentInfo"]
    assert info["status"] == "Stopped" and "rollbackInfo" not in info
    assert moto_codedeploy.stop_requests(deployment_id) == [StopRequest(deployment_id, False)]


@pytest.mark.parametrize("status", ["Succeeded", "Failed"])
def test_a_finished_deployment_cannot_be_stopped(
    client: CodeDeployClient, deployment_id: str, status: str
) -> None:
    # GIVEN a deployment CodeDeploy already finished
    moto_codedeploy.set_deployment_status(deployment_id, status)

    # WHEN it is stopped
    with pytest.raises(ClientError) as exc:
        client.stop_deployment(deploymentId=deployment_id, autoRollbackEnabled=True)

    # THEN it has already completed, keeps its status, and no stop is recorded
    assert error_code(exc) == "DeploymentAlreadyCompletedException"
    assert client.get_deployment(deploymentId=deployment_id)["deploymentInfo"]["status"] == status
    assert moto_codedeploy.stop_requests() == []


def test_stopping_an_unknown_deployment_fails(client: CodeDeployClient) -> None:
    with pytest.raises(ClientError) as exc:
        client.stop_deployment(deploymentId="d-NOSUCHDEP", autoRollbackEnabled=True)
    assert error_code(exc) == "DeploymentDoesNotExistException"


# --- GetDeployment / BatchGetDeployments --------------------------------------------------------


@pytest.mark.parametrize("with_sha256", [True, False])
def test_get_deployment_gives_the_appspec_sha256_but_not_its_content(
    client: CodeDeployClient, with_sha256: bool
) -> None:
    # GIVEN a Lambda deployment of an inline AppSpec (with or without the caller's sha256)
    create_lambda_app(client)
    deployment_id = deploy(client, with_sha256=with_sha256)

    # WHEN it is described, alone and in a batch
    info = client.get_deployment(deploymentId=deployment_id)["deploymentInfo"]
    (batched,) = client.batch_get_deployments(deploymentIds=[deployment_id])["deploymentsInfo"]

    # THEN the revision names its sha256 (computed when left out) but not its content, as on AWS
    expected = {"revisionType": "AppSpecContent", "appSpecContent": {"sha256": sha256(APPSPEC_YAML)}}
    assert info["revision"] == expected
    assert batched["revision"] == expected
    assert info["computePlatform"] == "Lambda"
    assert info["deploymentConfigName"] == "CodeDeployDefault.LambdaCanary10Percent5Minutes"
    assert info["status"] == "Created" and isinstance(info["createTime"], datetime)
    assert info["deploymentOverview"]["Pending"] == 1
    assert not {"completeTime", "rollbackInfo", "errorInformation", "previousRevision"} & set(info)


def test_a_lambda_group_without_a_config_deploys_with_lambda_all_at_once(client: CodeDeployClient) -> None:
    # GIVEN a Lambda deployment group created without a deployment config
    client.create_application(applicationName="orders-app", computePlatform="Lambda")
    client.create_deployment_group(
        applicationName="orders-app",
        deploymentGroupName="orders-group",
        serviceRoleArn="arn:aws:iam::123456789012:role/codedeploy",
    )

    # WHEN a deployment is described
    info = client.get_deployment(deploymentId=deploy(client))["deploymentInfo"]

    # THEN its config is Lambda's default (not the Server default moto picks) and it shifts traffic
    assert info["deploymentConfigName"] == "CodeDeployDefault.LambdaAllAtOnce"
    assert info["deploymentStyle"] == {
        "deploymentType": "BLUE_GREEN",
        "deploymentOption": "WITH_TRAFFIC_CONTROL",
    }


def test_deployment_status_and_times_follow_the_engine(client: CodeDeployClient, deployment_id: str) -> None:
    # WHEN CodeDeploy starts the first hook, then the deployment succeeds
    moto_codedeploy.start_lifecycle_event(deployment_id, "BeforeAllowTraffic")
    started = client.get_deployment(deploymentId=deployment_id)["deploymentInfo"]
    moto_codedeploy.set_deployment_status(deployment_id, "Succeeded")
    finished = client.get_deployment(deploymentId=deployment_id)["deploymentInfo"]

    # THEN the deployment went InProgress with a start time, then Succeeded with a complete time
    assert started["status"] == "InProgress" and "startTime" in started and "completeTime" not in started
    assert finished["status"] == "Succeeded" and finished["completeTime"] >= finished["startTime"]
    assert finished["deploymentOverview"]["Succeeded"] == 1
    assert target_of(client, deployment_id)["status"] == "Succeeded"


def test_engine_helpers_refuse_what_codedeploy_would_not_do(
    client: CodeDeployClient, deployment_id: str
) -> None:
    with pytest.raises(ValueError, match="BeforeInstall"):
        moto_codedeploy.start_lifecycle_event(deployment_id, "BeforeInstall")
    with pytest.raises(ValueError, match="traffic weight"):
        moto_codedeploy.set_target_version_weight(deployment_id, 10)
    with pytest.raises(ValueError, match="Done"):
        moto_codedeploy.set_deployment_status(deployment_id, "Done")
    moto_codedeploy.set_deployment_status(deployment_id, "Stopped")
    with pytest.raises(ValueError, match="already Stopped"):
        moto_codedeploy.start_lifecycle_event(deployment_id, "BeforeAllowTraffic")


# --- GetApplicationRevision -------------------------------------------------------------------------


def test_get_application_revision_returns_the_content_get_deployment_left_out(
    client: CodeDeployClient, deployment_id: str
) -> None:
    # GIVEN the revision GetDeployment names (its sha256 only)
    revision: Any = client.get_deployment(deploymentId=deployment_id)["deploymentInfo"]["revision"]
    deploy(client)  # the same revision deployed again

    # WHEN the hook asks CodeDeploy for it
    answer = client.get_application_revision(applicationName="orders-app", revision=revision)

    # THEN it gets the AppSpec content, and how the revision was used
    assert answer["applicationName"] == "orders-app"
    assert answer["revision"] == {
        "revisionType": "AppSpecContent",
        "appSpecContent": {"content": APPSPEC_YAML, "sha256": sha256(APPSPEC_YAML)},
    }
    info = answer["revisionInfo"]
    assert info["deploymentGroups"] == ["orders-group"]
    assert info["registerTime"] <= info["firstUsedTime"] <= info["lastUsedTime"]

    # AND asking by content alone finds the same revision
    by_content: Any = {"revisionType": "AppSpecContent", "appSpecContent": {"content": APPSPEC_YAML}}
    assert (
        client.get_application_revision(applicationName="orders-app", revision=by_content)["revision"]
        == (answer["revision"])
    )


def test_get_application_revision_of_a_string_revision(client: CodeDeployClient) -> None:
    # GIVEN a Lambda deployment of a String revision
    create_lambda_app(client)
    deploy(client, APPSPEC_JSON, kind="String")

    # WHEN the revision is asked for by its sha256
    revision: Any = {"revisionType": "String", "string": {"sha256": sha256(APPSPEC_JSON)}}
    answer = client.get_application_revision(applicationName="orders-app", revision=revision)

    # THEN its content comes back under revision.string
    assert answer["revision"]["string"] == {"content": APPSPEC_JSON, "sha256": sha256(APPSPEC_JSON)}


def test_unknown_revisions_and_applications_are_errors(client: CodeDeployClient, deployment_id: str) -> None:
    unknown: Any = {"revisionType": "AppSpecContent", "appSpecContent": {"sha256": sha256("other")}}
    known: Any = {"revisionType": "AppSpecContent", "appSpecContent": {"sha256": sha256(APPSPEC_YAML)}}

    with pytest.raises(ClientError) as exc:
        client.get_application_revision(applicationName="orders-app", revision=unknown)
    assert error_code(exc) == "RevisionDoesNotExistException"

    with pytest.raises(ClientError) as exc:
        client.get_application_revision(applicationName="no-such-app", revision=known)
    assert error_code(exc) == "ApplicationDoesNotExistException"


# --- ListDeploymentTargets / GetDeploymentTarget --------------------------------------------------


@pytest.mark.parametrize(
    ("content", "versions"),
    [(APPSPEC_YAML, ("1", "2")), (APPSPEC_LOWER_YAML, ("7", "8")), (APPSPEC_JSON, ("3", "4"))],
    ids=["yaml", "lower-case-yaml", "json"],
)
def test_the_lambda_target_comes_from_the_appspec(
    client: CodeDeployClient, content: str, versions: tuple[str, str]
) -> None:
    # GIVEN a started deployment of an AppSpec spelled one way or another
    create_lambda_app(client)
    deployment_id = deploy(client, content)
    moto_codedeploy.start_lifecycle_event(deployment_id, "BeforeAllowTraffic")

    # WHEN the deployment's targets are listed and the target described
    target_ids = client.list_deployment_targets(deploymentId=deployment_id)["targetIds"]
    answer = client.get_deployment_target(deploymentId=deployment_id, targetId="orders:live")

    # THEN the one target is the function's alias, with the versions the AppSpec names
    assert target_ids == ["orders:live"]
    target = answer["deploymentTarget"]
    assert target["deploymentTargetType"] == "LambdaTarget"
    lam = target["lambdaTarget"]
    assert (lam["deploymentId"], lam["targetId"], lam["status"]) == (
        deployment_id,
        "orders:live",
        "InProgress",
    )
    assert lam["targetArn"] == f"arn:aws:lambda:{REGION}:{DEFAULT_ACCOUNT_ID}:function:orders:live"
    assert isinstance(lam["lastUpdatedAt"], datetime)
    assert lam["lambdaFunctionInfo"] == {
        "functionName": "orders",
        "functionAlias": "live",
        "currentVersion": versions[0],
        "targetVersion": versions[1],
        "targetVersionWeight": 0.0,
    }
    assert [(e["lifecycleEventName"], e["status"]) for e in lam["lifecycleEvents"]] == [
        ("BeforeAllowTraffic", "InProgress"),
        ("AllowTraffic", "Pending"),
        ("AfterAllowTraffic", "Pending"),
    ]


def test_traffic_shifting_shows_on_the_target(client: CodeDeployClient, deployment_id: str) -> None:
    # GIVEN the pre-traffic hook succeeded
    execution_id = moto_codedeploy.start_lifecycle_event(deployment_id, "BeforeAllowTraffic")
    client.put_lifecycle_event_hook_execution_status(
        deploymentId=deployment_id, lifecycleEventHookExecutionId=execution_id, status="Succeeded"
    )

    # WHEN CodeDeploy shifts all traffic (AllowTraffic has no hook)
    moto_codedeploy.set_lifecycle_event_status(deployment_id, "AllowTraffic", "InProgress")
    moto_codedeploy.set_target_version_weight(deployment_id, 1.0)
    moto_codedeploy.set_lifecycle_event_status(deployment_id, "AllowTraffic", "Succeeded")

    # THEN the target shows the weight and the AllowTraffic event's times
    target = target_of(client, deployment_id)
    assert target["lambdaFunctionInfo"]["targetVersionWeight"] == 1.0
    allow = target["lifecycleEvents"][1]
    assert allow["lifecycleEventName"] == "AllowTraffic" and allow["status"] == "Succeeded"
    assert allow["endTime"] >= allow["startTime"]
    assert "startTime" not in target["lifecycleEvents"][2]


def test_targets_of_a_deployment_that_has_not_started(client: CodeDeployClient, deployment_id: str) -> None:
    # GIVEN a deployment still Created WHEN its targets are asked for THEN it has not started
    with pytest.raises(ClientError) as exc:
        client.list_deployment_targets(deploymentId=deployment_id)
    assert error_code(exc) == "DeploymentNotStartedException"
    with pytest.raises(ClientError) as exc:
        client.get_deployment_target(deploymentId=deployment_id, targetId="orders:live")
    assert error_code(exc) == "DeploymentNotStartedException"


def test_unknown_targets_and_filters(client: CodeDeployClient, deployment_id: str) -> None:
    moto_codedeploy.start_lifecycle_event(deployment_id, "BeforeAllowTraffic")

    with pytest.raises(ClientError) as exc:
        client.get_deployment_target(deploymentId=deployment_id, targetId="orders:other")
    assert error_code(exc) == "DeploymentTargetDoesNotExistException"

    with pytest.raises(ClientError) as exc:
        client.get_deployment_target(deploymentId="d-NOSUCHDEP", targetId="orders:live")
    assert error_code(exc) == "DeploymentDoesNotExistException"

    by_status = client.list_deployment_targets(
        deploymentId=deployment_id, targetFilters={"TargetStatus": ["Failed"]}
    )
    assert by_status["targetIds"] == []
    bad_filter: Any = {"Colour": ["blue"]}
    with pytest.raises(ClientError) as exc:
        client.list_deployment_targets(deploymentId=deployment_id, targetFilters=bad_filter)
    assert error_code(exc) == "InvalidTargetFilterNameException"


# --- moto's reset -----------------------------------------------------------------------------------


def test_each_mock_aws_context_starts_from_nothing(aws_env: None) -> None:
    moto_codedeploy.install()
    # GIVEN a context in which a hook reported and a deployment was stopped
    with mock_aws():
        client = boto3.client("codedeploy", region_name=REGION)
        create_lambda_app(client)
        deployment_id = deploy(client)
        execution_id = moto_codedeploy.start_lifecycle_event(deployment_id, "BeforeAllowTraffic")
        client.put_lifecycle_event_hook_execution_status(
            deploymentId=deployment_id, lifecycleEventHookExecutionId=execution_id, status="Failed"
        )
        client.stop_deployment(deploymentId=deployment_id, autoRollbackEnabled=True)
        assert len(moto_codedeploy.hook_reports()) == len(moto_codedeploy.stop_requests()) == 1

    # WHEN the next context starts
    with mock_aws():
        client = boto3.client("codedeploy", region_name=REGION)

        # THEN no report, stop, deployment or revision is left
        assert moto_codedeploy.hook_reports() == []
        assert moto_codedeploy.stop_requests() == []
        with pytest.raises(ClientError) as exc:
            client.get_deployment(deploymentId=deployment_id)
        assert error_code(exc) == "DeploymentDoesNotExistException"
        create_lambda_app(client)
        revision: Any = {"revisionType": "AppSpecContent", "appSpecContent": {"sha256": sha256(APPSPEC_YAML)}}
        with pytest.raises(ClientError) as exc:
            client.get_application_revision(applicationName="orders-app", revision=revision)
        assert error_code(exc) == "RevisionDoesNotExistException"


# --- ThreadedMotoServer -----------------------------------------------------------------------------


def test_through_a_threaded_moto_server(aws_env: None) -> None:
    from moto.server import ThreadedMotoServer

    # GIVEN the extension installed and a moto server in this process on a free port
    moto_codedeploy.install()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        _, port = server.get_host_and_port()
        endpoint = f"http://127.0.0.1:{port}"
        requests.post(f"{endpoint}/moto-api/reset", timeout=10)
        client = boto3.client("codedeploy", region_name=REGION, endpoint_url=endpoint)
        create_lambda_app(client)
        deployment_id = deploy(client)

        # WHEN the engine starts a hook in-process and the hook talks to the server over HTTP
        execution_id = moto_codedeploy.start_lifecycle_event(deployment_id, "BeforeAllowTraffic")
        revision: Any = client.get_deployment(deploymentId=deployment_id)["deploymentInfo"]["revision"]
        content = client.get_application_revision(applicationName="orders-app", revision=revision)
        targets = client.list_deployment_targets(deploymentId=deployment_id)["targetIds"]
        client.put_lifecycle_event_hook_execution_status(
            deploymentId=deployment_id, lifecycleEventHookExecutionId=execution_id, status="Failed"
        )
        with pytest.raises(ClientError) as exc:
            client.put_lifecycle_event_hook_execution_status(
                deploymentId=deployment_id, lifecycleEventHookExecutionId=execution_id, status="Failed"
            )
        stop = client.stop_deployment(deploymentId=deployment_id, autoRollbackEnabled=True)

        # THEN the server answered like the in-process mock, on the same state
        assert "content" not in revision["appSpecContent"]
        assert content["revision"]["appSpecContent"]["content"] == APPSPEC_YAML
        assert targets == ["orders:live"]
        assert error_code(exc) == "LifecycleEventAlreadyCompletedException"
        assert stop["status"] == "Succeeded"
        assert [r.status for r in moto_codedeploy.hook_reports(deployment_id)] == ["Failed"]
        assert moto_codedeploy.stop_requests(deployment_id) == [StopRequest(deployment_id, True)]

        # AND moto's reset clears the extension's state with the rest
        requests.post(f"{endpoint}/moto-api/reset", timeout=10)
        assert not hasattr(codedeploy_backends[DEFAULT_ACCOUNT_ID][REGION], "_deployguard_codedeploy")
        assert moto_codedeploy.hook_reports() == []
    finally:
        server.stop()
