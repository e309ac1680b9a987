"""An embedded AWS for tests and benchmarks: moto with DeployGuard's extensions, builders for what
lives in it (a function with versions and an alias, a CodeDeploy deployment, an alarm), and the AWS
calls of DeployGuard's own clients counted or made to fail.

moto and DeployGuard are imported where they are used, not with this module: a benchmark measures
DeployGuard's cold start in a process that builds its world with this module first.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import zipfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import boto3
from botocore.exceptions import ClientError, ReadTimeoutError

from deployguard.stages import APP_TAG, STAGE_TAG
from tests.support.handlers import REGION

POLICY_APPLICATION = "orders"
"""The application (``deployguard:app`` tag, policy document) the tests' functions belong to."""

# Credentials that reach no account, and the variables that could point a client at a real one.
FAKE_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": REGION,
    "AWS_REGION": REGION,
}
REAL_AWS_VARIABLES = ("AWS_ENDPOINT_URL", "AWS_PROFILE")


@contextmanager
def local_aws() -> Iterator[None]:
    """moto for every service, Lambda without Docker, with DeployGuard's moto extensions installed
    (each ``install`` is idempotent). Set FAKE_CREDENTIALS first."""
    from moto import mock_aws

    from deployguard_cli.localaws import install_extensions

    install_extensions()
    # NOTE: moto replaces boto3's default session at every start unless told not to; a new session
    # loads each service's model again at its first client, about 30 ms a client and a third of the
    # integration tier's time. Keeping it is safe: every test has the same fake credentials.
    with mock_aws(config={"lambda": {"use_docker": False}, "core": {"reset_boto3_session": False}}):
        yield


# --- a function with versions and an alias ------------------------------------------------------
# The trust policy of a Lambda function's role.
ROLE_POLICY = json.dumps(
    {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}
        ],
    }
)
EMPTY_HANDLER = "def handler(event, context):\n    return {}\n"


def code_zip(source: str = EMPTY_HANDLER) -> bytes:
    """A deployment package holding ``source`` as app.py (handler ``app.handler``)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("app.py", source)
    return buffer.getvalue()


@dataclass(frozen=True)
class Version:
    """What one published version of a function holds: its code and its configuration."""

    source: str = EMPTY_HANDLER
    environment: Mapping[str, str] = field(default_factory=dict)
    description: str = ""


def function_with_versions(
    name: str,
    versions: Sequence[Version],
    *,
    alias: str = "live",
    alias_version: str = "1",
    timeout: int = 3,
    stage: str | None = "staging",
    application: str | None = POLICY_APPLICATION,
) -> str:
    """Function ``name`` with versions 1, 2, … as ``versions`` say and ``alias`` on ``alias_version``,
    tagged ``deployguard:stage=<stage>`` (the guard's scope; None: untagged) and
    ``deployguard:app=<application>`` (which policy document guards it); returns the ARN of the
    role it runs as.

    NOTE: every version after the first updates the configuration, so each one is published even
    when it holds what the previous one held (Lambda publishes nothing for an unchanged function).
    """
    iam = boto3.client("iam")
    role_arn: str = iam.create_role(RoleName=f"{name}-role", AssumeRolePolicyDocument=ROLE_POLICY)["Role"][
        "Arn"
    ]
    lam = boto3.client("lambda")
    first, *later = versions
    lam.create_function(
        FunctionName=name,
        Runtime="python3.12",
        Role=role_arn,
        Handler="app.handler",
        Code={"ZipFile": code_zip(first.source)},
        Timeout=timeout,
        Environment={"Variables": dict(first.environment)},
        Description=first.description,
        Tags={**({STAGE_TAG: stage} if stage else {}), **({APP_TAG: application} if application else {})},
    )
    lam.publish_version(FunctionName=name)
    for version in later:
        lam.update_function_code(FunctionName=name, ZipFile=code_zip(version.source))
        lam.update_function_configuration(
            FunctionName=name,
            Environment={"Variables": dict(version.environment)},
            Description=version.description,
        )
        lam.publish_version(FunctionName=name)
    lam.create_alias(FunctionName=name, Name=alias, FunctionVersion=alias_version)
    return role_arn


# --- CodeDeploy ----------------------------------------------------------------------------------
CODEDEPLOY_ROLE = "arn:aws:iam::123456789012:role/codedeploy"


def deployment_group(application: str, group: str, **settings: Any) -> None:
    """A Lambda application and a blue/green deployment group in it; ``settings`` add to the group
    (deploymentConfigName, alarmConfiguration, autoRollbackConfiguration, serviceRoleArn)."""
    codedeploy = boto3.client("codedeploy")
    codedeploy.create_application(applicationName=application, computePlatform="Lambda")
    codedeploy.create_deployment_group(
        applicationName=application,
        deploymentGroupName=group,
        **{
            "serviceRoleArn": CODEDEPLOY_ROLE,
            "deploymentStyle": {"deploymentType": "BLUE_GREEN", "deploymentOption": "WITH_TRAFFIC_CONTROL"},
            **settings,
        },
    )


def start_deployment(application: str, group: str, appspec: str) -> str:
    """A deployment of ``appspec`` (AppSpec content, YAML or JSON) to ``group``; its id."""
    deployment_id: str = boto3.client("codedeploy").create_deployment(
        applicationName=application,
        deploymentGroupName=group,
        revision={
            "revisionType": "AppSpecContent",
            "appSpecContent": {"content": appspec, "sha256": hashlib.sha256(appspec.encode()).hexdigest()},
        },
    )["deploymentId"]
    return deployment_id


def deployment_records_table() -> str:
    """The deployment records' table as template.yaml defines it (keys, billing, TTL); its name."""
    from tests.tools.transform import load_template

    properties = load_template()["Resources"]["DeploymentRecordsTable"]["Properties"]
    name = "deployguard-staging-deployments"
    dynamodb = boto3.client("dynamodb")
    dynamodb.create_table(
        TableName=name,
        AttributeDefinitions=properties["AttributeDefinitions"],
        KeySchema=properties["KeySchema"],
        BillingMode=properties["BillingMode"],
    )
    dynamodb.update_time_to_live(
        TableName=name, TimeToLiveSpecification=properties["TimeToLiveSpecification"]
    )
    return name


def publish_policy(bucket: str, document: Mapping[str, Any], application: str = POLICY_APPLICATION) -> None:
    """``document``, a whole-stage policy, as the stage's baseline and ``application``'s document in
    the policy bucket ``bucket`` (made if missing); every function an entry names literally that
    exists is tagged ``deployguard:app=<application>``."""
    from deployguard_cli.policy_store import store_split

    s3 = boto3.client("s3")
    with contextlib.suppress(s3.exceptions.BucketAlreadyOwnedByYou, s3.exceptions.BucketAlreadyExists):
        s3.create_bucket(Bucket=bucket)
    store_split(s3, bucket, document, application)
    lam = boto3.client("lambda")
    for key, entry in (document.get("functions") or {}).items():
        name = (entry or {}).get("match") or key
        if any(c in name for c in "*?["):
            continue
        try:
            arn = lam.get_function_configuration(FunctionName=name)["FunctionArn"]
        except lam.exceptions.ResourceNotFoundException:
            continue
        lam.tag_resource(Resource=arn, Tags={APP_TAG: application})


# --- CloudWatch ----------------------------------------------------------------------------------
def put_metric_alarm(
    name: str,
    *,
    metric: str = "Errors",
    dimensions: Mapping[str, str] | None = None,
    tags: Mapping[str, str] | None = None,
    treat_missing_data: str | None = None,
) -> None:
    """An alarm on AWS/Lambda ``metric`` (Sum over 60 s > 0, one period), as DeployGuard's users
    alarm on a version's errors."""
    optional: dict[str, Any] = {}
    if dimensions is not None:
        optional["Dimensions"] = [{"Name": k, "Value": v} for k, v in dimensions.items()]
    if tags is not None:
        optional["Tags"] = [{"Key": k, "Value": v} for k, v in tags.items()]
    if treat_missing_data is not None:
        optional["TreatMissingData"] = treat_missing_data
    boto3.client("cloudwatch").put_metric_alarm(
        AlarmName=name,
        Namespace="AWS/Lambda",
        MetricName=metric,
        Statistic="Sum",
        Period=60,
        EvaluationPeriods=1,
        Threshold=0,
        ComparisonOperator="GreaterThanThreshold",
        **optional,
    )


# --- AWS calls of DeployGuard's own clients: counted, or made to fail ---------------------------
FAILURES: dict[str, Callable[[str], Exception]] = {
    "Throttling": lambda op: ClientError(
        {"Error": {"Code": "ThrottlingException", "Message": "Rate exceeded"}}, op
    ),
    "Timeout": lambda op: ReadTimeoutError(endpoint_url="https://aws.example"),
}


def deployguard_clients() -> list[Any]:
    """The clients DeployGuard's adapters use (cached: the same objects the code under test calls)."""
    from deployguard.aws import clients

    return [
        clients.codedeploy_client(),
        clients.lambda_client(),
        clients.lambda_invoke_client(),
        clients.ssm_client(),
        clients.cloudwatch_client(),
        clients.stepfunctions_client(),
        clients.tagging_client(),
        clients.dynamodb_client(),
    ]


def fail(service: str, operation: str, failure: str) -> None:
    """Make DeployGuard's ``operation`` call fail (a botocore before-call handler raising)."""

    def raise_it(**_kwargs: Any) -> None:
        raise FAILURES[failure](operation)

    from deployguard.aws import clients

    # NOTE: the policy store's client fails too, but is not counted by counted_calls: its reads
    # are conditional (a 304 when nothing changed) and warm within DEPLOYGUARD_POLICY_CACHE_SECONDS
    for client in [*deployguard_clients(), clients.s3_client()]:
        client.meta.events.register(f"before-call.{service}.{operation}", raise_it)


@contextmanager
def counted_calls() -> Iterator[list[str]]:
    """The operations DeployGuard's clients call inside the block, in order."""
    calls: list[str] = []

    def count(model: Any, **_kwargs: Any) -> None:
        calls.append(model.name)

    registered = deployguard_clients()
    for client in registered:
        client.meta.events.register("before-call.*.*", count)
    try:
        yield calls
    finally:
        for client in registered:
            client.meta.events.unregister("before-call.*.*", count)


@dataclass
class Topic:
    """An SNS topic with an SQS queue subscribed, so a test can read what was published."""

    arn: str
    queue_url: str
    sqs: Any = field(repr=False)

    def messages(self) -> list[dict[str, Any]]:
        """The SNS envelopes delivered to the subscribed queue (Subject, Message, MessageAttributes)."""
        answer = self.sqs.receive_message(QueueUrl=self.queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=0)
        return [json.loads(m["Body"]) for m in answer.get("Messages", [])]


def make_topic(name: str = "deployguard-alerts", *, fifo: bool = False) -> Topic:
    sns = boto3.client("sns")
    sqs: Any = boto3.client("sqs")  # NOTE: no SQS stubs in the dev extras; the test reads it loosely
    attributes = {"FifoTopic": "true", "ContentBasedDeduplication": "false"} if fifo else {}
    suffix = ".fifo" if fifo else ""
    arn = sns.create_topic(Name=name + suffix, Attributes=attributes)["TopicArn"]
    queue_url = sqs.create_queue(
        QueueName=f"{name}-inbox{suffix}", Attributes={"FifoQueue": "true"} if fifo else {}
    )["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    sns.subscribe(TopicArn=arn, Protocol="sqs", Endpoint=queue_arn)
    return Topic(arn=arn, queue_url=queue_url, sqs=sqs)
