"""The embedded AWS a rehearsal runs in: moto in this process, set up as template.yaml would be.

:class:`World` starts ``mock_aws`` (Lambda without Docker), installs DeployGuard's moto extensions
(:func:`~deployguard_cli.localaws.install_extensions`: CodeDeploy, the Lambda runner, alias,
CloudWatch and S3) and creates what a deployment of the stack involves: the guarded function with
its published versions and alias (code zipped from its folder, one edit per broken release), the
stage's guard policy in the policy store (S3), the alert topic (with a queue subscribed, to read
the alerts back), the log groups, the bake state machine (run by moto's own interpreter, routed
onto the virtual clock and the in-process functions by
:mod:`~deployguard_cli.localaws.moto_stepfunctions`), and a CodeDeploy application and deployment
group with the alarms and ``autoRollbackConfiguration`` SAM gives it. The guard functions run in-process
(:class:`~deployguard_cli.rehearsal.lambdas.FunctionHost`); each invocation's output goes where
Lambda sends it: its lines to the function's log group, its EMF documents to CloudWatch metrics.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import os
import threading
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import boto3

from deployguard import entrypoints
from deployguard.appspec import DeploymentTarget, render_appspec
from deployguard.aws.deployment_records import TABLE_KEYS, TTL_ATTRIBUTE
from deployguard_cli.localaws import install_extensions, lambda_runner, moto_stepfunctions
from deployguard_cli.policy_store import BUCKET_NAME, BUCKET_VARIABLE
from deployguard_cli.rehearsal.alarms import AlarmEvaluator
from deployguard_cli.rehearsal.clock import Scheduler, VirtualClock
from deployguard_cli.rehearsal.engine import CodeDeployEngine, EngineEvent
from deployguard_cli.rehearsal.lambdas import FunctionHost, Invocation, environment
from deployguard_cli.rehearsal.traffic import Traffic, TrafficProfile
from deployguard_cli.rehearsal.wiring import ACCOUNT_ID, REGION, FunctionSpec, Wiring

if TYPE_CHECKING:
    from moto.core.config import DefaultConfig
    from mypy_boto3_cloudwatch import CloudWatchClient
    from mypy_boto3_codedeploy import CodeDeployClient
    from mypy_boto3_lambda import LambdaClient

__all__ = ["EmittedMetric", "Release", "World"]

_FAKE_ENVIRONMENT = {
    "AWS_ACCESS_KEY_ID": "rehearsal",
    "AWS_SECRET_ACCESS_KEY": "rehearsal",
    "AWS_SESSION_TOKEN": "rehearsal",
    "AWS_DEFAULT_REGION": REGION,
    "AWS_REGION": REGION,
    "AWS_CONFIG_FILE": os.devnull,
    "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
}
_CLEARED = ("AWS_PROFILE", "AWS_ENDPOINT_URL")
_ROLE_POLICY = json.dumps(
    {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}
        ],
    }
)
ROLLBACK_EVENTS = ["DEPLOYMENT_FAILURE", "DEPLOYMENT_STOP_ON_ALARM", "DEPLOYMENT_STOP_ON_REQUEST"]


@dataclass(frozen=True)
class Release:
    """One version of the guarded function: its code (the folder, with edits) and configuration."""

    label: str
    replacements: Mapping[str, tuple[str, str]] = field(default_factory=dict)
    environment: Mapping[str, str] = field(default_factory=dict)  # on top of the template's
    code_dir: Path | None = None  # the code to zip (None: the function's CodeUri)
    unset: tuple[str, ...] = ()  # variables this release lacks (a fault: a lost variable)


@dataclass(frozen=True)
class EmittedMetric:
    """A metric a guard function emitted (EMF), as CloudWatch extracts it."""

    namespace: str
    name: str


class World:
    """moto with the stack's resources; a context manager (everything is gone on exit)."""

    def __init__(
        self,
        wiring: Wiring,
        *,
        clock: VirtualClock,
        environment: Mapping[str, str],
        publish_policy: Callable[[Any, str], None],
        serve_functions: bool = False,
    ) -> None:
        """``publish_policy(s3, bucket)`` publishes the stage's guard policy in the policy store."""
        self.wiring = wiring
        self.clock = clock
        self.scheduler = Scheduler(clock)
        self._publish_policy = publish_policy
        self._serve_functions = serve_functions  # the application's own AWS calls reach this world
        self._environment = dict(environment)  # the guarded function's variables for this stage
        # the policy store the hooks read (their DEPLOYGUARD_POLICY_BUCKET, from the template)
        buckets = [spec.environment.get(BUCKET_VARIABLE) for spec in wiring.functions.values()]
        self._policy_bucket = next(
            (bucket for bucket in buckets if bucket),
            BUCKET_NAME.format(stage=wiring.stage, account=ACCOUNT_ID, region=REGION),
        )
        self._stack = contextlib.ExitStack()
        self.metrics: list[EmittedMetric] = []
        self.log_lines: dict[str, int] = {}  # log group → lines written
        self.invocations: Counter[str] = Counter()  # function → invocations
        self._versions: dict[str, str] = {}  # release label → version
        self._queue_url: str | None = None
        self._role_arn = ""
        self._deployment_group: tuple[str, str] | None = None
        self._clients: dict[str, Any] = {}
        self.traffic: Traffic | None = None
        self._clients_lock = threading.Lock()
        self.functions_endpoint: str | None = None

    # --- set-up -----------------------------------------------------------------------------------
    def __enter__(self) -> World:
        from moto import mock_aws  # noqa: PLC0415 - moto is heavy and only the rehearsal needs it

        with contextlib.ExitStack() as stack:  # a failure here undoes what was set up so far
            self._stack = stack
            self._stack.enter_context(environment(_FAKE_ENVIRONMENT, _CLEARED))
            install_extensions()
            # moto runs Step Functions executions with its own interpreter (routed below)
            config: DefaultConfig = {
                "lambda": {"use_docker": False},
                "stepfunctions": {"execute_state_machine": True},
            }
            self._stack.enter_context(mock_aws(config=config))
            if self._serve_functions:
                self._serve()
            entrypoints.reset()
            self._stack.callback(entrypoints.reset)
            self.host = self._stack.enter_context(
                FunctionHost(self.wiring.functions, clock=self.clock, on_invocation=self._record_invocation)
            )
            self.workflows = self._stack.enter_context(moto_stepfunctions.routed(self.scheduler, self.host))
            self.scheduler.settle = self.workflows.settle
            self._create_resources()
            self._stack = stack.pop_all()  # set up: undone by __exit__
        return self

    def __exit__(self, *exc: object) -> None:
        self._stack.__exit__(None, None, None)

    def _serve(self) -> None:
        """A moto server on a free local port, over this world's state, where the application's
        functions send their own AWS calls (an S3 listing, an SSM parameter …)."""
        from moto.server import ThreadedMotoServer  # noqa: PLC0415

        quiet = logging.getLogger("werkzeug")  # NOTE: one line per request otherwise
        level, quiet.level = quiet.level, logging.ERROR
        self._stack.callback(quiet.setLevel, level)
        server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        server.start()
        self._stack.callback(server.stop)
        host, port = server.get_host_and_port()
        self.functions_endpoint = f"http://{host}:{port}"
        lambda_runner.serve_functions_from(self.functions_endpoint)
        self._stack.callback(lambda_runner.serve_functions_from, None)

    def client(self, service: str) -> Any:
        """One boto3 client per service for the world's life (creating one costs ~20 ms)."""
        if service not in self._clients:
            with self._clients_lock:
                if service not in self._clients:
                    self._clients[service] = boto3.client(service, region_name=REGION)  # type: ignore[call-overload]
        return self._clients[service]

    @property
    def lambda_client(self) -> LambdaClient:
        return cast("LambdaClient", self.client("lambda"))

    @property
    def codedeploy(self) -> CodeDeployClient:
        return cast("CodeDeployClient", self.client("codedeploy"))

    @property
    def cloudwatch(self) -> CloudWatchClient:
        return cast("CloudWatchClient", self.client("cloudwatch"))

    def _create_resources(self) -> None:
        iam = self.client("iam")
        self._role_arn = iam.create_role(
            RoleName="deployguard-rehearsal", AssumeRolePolicyDocument=_ROLE_POLICY
        )["Role"]["Arn"]
        s3 = self.client("s3")
        s3.create_bucket(Bucket=self._policy_bucket)
        self._publish_policy(s3, self._policy_bucket)
        self._create_records_tables()
        logs = self.client("logs")
        for spec in self.wiring.functions.values():
            with contextlib.suppress(logs.exceptions.ResourceAlreadyExistsException):
                logs.create_log_group(logGroupName=spec.log_group)
        if self.wiring.alert_topic_name:
            sns = self.client("sns")
            sqs = self.client("sqs")
            topic = sns.create_topic(Name=self.wiring.alert_topic_name)["TopicArn"]
            self._queue_url = sqs.create_queue(QueueName="deployguard-rehearsal-alerts")["QueueUrl"]
            queue_arn = sqs.get_queue_attributes(QueueUrl=self._queue_url, AttributeNames=["QueueArn"])[
                "Attributes"
            ]["QueueArn"]
            sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=queue_arn)
        self._create_guard_functions()
        sfn = self.client("stepfunctions")
        for machine in self.wiring.state_machines.values():
            sfn.create_state_machine(
                name=machine.name, definition=json.dumps(machine.definition), roleArn=self._role_arn
            )

    def _create_records_tables(self) -> None:
        """The deployment records' table the guard functions name (DEPLOYGUARD_DEPLOYMENT_TABLE, from
        the template), keyed as the adapter writes it."""
        dynamodb = self.client("dynamodb")
        names = {
            spec.environment.get("DEPLOYGUARD_DEPLOYMENT_TABLE") for spec in self.wiring.functions.values()
        }
        for name in sorted(n for n in names if n):
            dynamodb.create_table(
                TableName=name,
                AttributeDefinitions=[
                    {"AttributeName": key, "AttributeType": "S"} for key, _kind in TABLE_KEYS
                ],
                KeySchema=[{"AttributeName": key, "KeyType": kind} for key, kind in TABLE_KEYS],
                BillingMode="PAY_PER_REQUEST",
            )
            dynamodb.update_time_to_live(
                TableName=name, TimeToLiveSpecification={"AttributeName": TTL_ATTRIBUTE, "Enabled": True}
            )

    def _create_guard_functions(self) -> None:
        """The stack's other functions as deployed (code from their folders, configuration from the
        template), so what Lambda knows of them is real; their handlers run in-process."""
        client = self.lambda_client
        for spec in self.wiring.functions.values():
            if spec.logical_id == self.wiring.function.logical_id or not spec.code_uri.is_dir():
                continue
            client.create_function(
                FunctionName=spec.name,
                Runtime=spec.runtime,  # type: ignore[arg-type]
                Role=self._role_arn,
                Handler=spec.handler,
                Code={"ZipFile": lambda_runner.zip_directory(spec.code_uri)},
                Timeout=spec.timeout,
                MemorySize=spec.memory_size,
                Environment={"Variables": dict(spec.environment)},
                TracingConfig={"Mode": "Active" if spec.tracing == "Active" else "PassThrough"},
            )

    # --- the guarded function ---------------------------------------------------------------------
    def publish(self, release: Release) -> str:
        """Deploy ``release`` as a new published version (the first one also gets the alias)."""
        spec = self.wiring.function
        code = lambda_runner.zip_directory(
            release.code_dir or spec.code_uri, replacements=dict(release.replacements)
        )
        variables = {
            k: v for k, v in {**self._environment, **release.environment}.items() if k not in release.unset
        }
        client = self.lambda_client
        if not self._versions:
            client.create_function(
                FunctionName=spec.name,
                Runtime=spec.runtime,  # type: ignore[arg-type]
                Role=self._role_arn,
                Handler=spec.handler,
                Code={"ZipFile": code},
                Description=release.label,
                Timeout=spec.timeout,
                MemorySize=spec.memory_size,
                Environment={"Variables": variables},
                TracingConfig={"Mode": "Active" if spec.tracing == "Active" else "PassThrough"},
                Architectures=list(spec.architectures),  # type: ignore[arg-type]
                Tags=dict(spec.tags),  # deployguard:stage: the guard's scope
                Layers=self._publish_layers(spec),
            )
        else:
            client.update_function_code(FunctionName=spec.name, ZipFile=code)
            client.update_function_configuration(
                FunctionName=spec.name, Description=release.label, Environment={"Variables": variables}
            )
        version = str(client.publish_version(FunctionName=spec.name, Description=release.label)["Version"])
        if not self._versions:
            client.create_alias(FunctionName=spec.name, Name=self.wiring.alias, FunctionVersion=version)
        self._versions[release.label] = version
        return version

    def _publish_layers(self, spec: FunctionSpec) -> list[str]:
        """The template's own layers of ``spec`` (their folders zipped), as published versions."""
        arns = []
        for index, folder in enumerate(spec.layers):
            published = self.lambda_client.publish_layer_version(
                LayerName=f"{spec.logical_id}-layer{index}",
                Content={"ZipFile": _layer_zip(folder, folder.stat().st_mtime_ns)},
            )
            arns.append(str(published["LayerVersionArn"]))
        return arns

    def create_alarms(self, target_version: str) -> None:
        """The deployment group's alarms, on ``target_version`` (the template updates them with each
        new version before CodeDeploy starts); a new alarm starts in INSUFFICIENT_DATA, as on AWS."""
        cloudwatch = self.cloudwatch
        for alarm in self.wiring.alarms:
            request = alarm.for_version(target_version)
            cloudwatch.put_metric_alarm(**request)
            cloudwatch.set_alarm_state(
                AlarmName=alarm.name,
                StateValue="INSUFFICIENT_DATA",
                StateReason="Unchecked: Initial alarm creation",
            )

    def create_deployment(self, current_version: str, target_version: str) -> str:
        """What CloudFormation does when the alias's version changes: a CodeDeploy deployment."""
        codedeploy = self.codedeploy
        spec = self.wiring.function
        if self._deployment_group is None:
            application = f"{self.wiring.stack_name}-ServerlessDeploymentApplication-REHEARSAL"
            group = f"{self.wiring.stack_name}-{spec.logical_id}DeploymentGroup-REHEARSAL"
            codedeploy.create_application(applicationName=application, computePlatform="Lambda")
            rollback: Any = {"enabled": True, "events": ROLLBACK_EVENTS}
            codedeploy.create_deployment_group(
                applicationName=application,
                deploymentGroupName=group,
                serviceRoleArn=self._role_arn,
                deploymentConfigName=self.wiring.deployment_config_name,
                deploymentStyle={"deploymentType": "BLUE_GREEN", "deploymentOption": "WITH_TRAFFIC_CONTROL"},
                alarmConfiguration={
                    "enabled": True,
                    "alarms": [{"name": a.name} for a in self.wiring.alarms],
                },
                autoRollbackConfiguration=rollback,
            )
            self._deployment_group = (application, group)
        application, group = self._deployment_group
        target = DeploymentTarget(
            function_name=spec.name,
            alias=self.wiring.alias,
            current_version=current_version,
            target_version=target_version,
        )
        hooks = [{event: function} for event, function in self.wiring.hooks.items()]
        appspec = {**json.loads(render_appspec(target)), "Hooks": hooks}
        return str(
            codedeploy.create_deployment(
                applicationName=application,
                deploymentGroupName=group,
                revision={
                    "revisionType": "AppSpecContent",
                    "appSpecContent": {"content": json.dumps(appspec)},
                },
            )["deploymentId"]
        )

    # --- the engine -------------------------------------------------------------------------------
    def engine(
        self,
        *,
        traffic: TrafficProfile | None,
        observer: Callable[[EngineEvent], None] | None = None,
    ) -> CodeDeployEngine:
        self.traffic = (
            None
            if traffic is None
            else Traffic(
                lambda_client=self.lambda_client,
                cloudwatch=self.cloudwatch,
                function_name=self.wiring.function.name,
                alias=self.wiring.alias,
                profile=traffic,
            )
        )
        return CodeDeployEngine(
            scheduler=self.scheduler,
            codedeploy=self.codedeploy,
            lambda_client=self.lambda_client,
            cloudwatch=self.cloudwatch,
            invoker=self.host,
            alarms=AlarmEvaluator(
                self.cloudwatch,
                [a.name for a in self.wiring.alarms],
                samples=_metric_samples,
                stamp=_stamp_alarm,
            ),
            rules=self.wiring.rules,
            traffic=self.traffic,
            workflows=self.workflows,
            observer=observer,
        )

    # --- what the functions wrote -----------------------------------------------------------------
    def _record_invocation(self, invocation: Invocation) -> None:
        spec = self.host.spec(invocation.function_name)
        group = spec.log_group if spec else f"/aws/lambda/{invocation.function_name}"
        with self._clients_lock:  # NOTE: workflow threads record theirs too
            self.invocations[invocation.function_name] += 1
            self.log_lines[group] = self.log_lines.get(group, 0) + len(invocation.log_lines)
        stamp = int(invocation.started_at.timestamp() * 1000)
        logs = self.client("logs")
        stream = f"{invocation.started_at:%Y/%m/%d}/[$LATEST]{invocation.request_id.replace('-', '')}"
        logs.create_log_stream(logGroupName=group, logStreamName=stream)
        logs.put_log_events(
            logGroupName=group,
            logStreamName=stream,
            logEvents=[{"timestamp": stamp, "message": line} for line in invocation.log_lines],
        )
        for line in invocation.log_lines:
            self._extract_emf(line)

    def _extract_emf(self, line: str) -> None:
        """CloudWatch's EMF extraction: each ``_aws.CloudWatchMetrics`` directive becomes metric data."""
        if '"_aws"' not in line:
            return
        try:
            document = json.loads(line)
        except ValueError:
            return
        meta = document.get("_aws") if isinstance(document, dict) else None
        if not isinstance(meta, dict):
            return
        stamp = datetime.fromtimestamp(int(meta.get("Timestamp", 0)) / 1000, UTC)
        for directive in meta.get("CloudWatchMetrics", []):
            namespace = str(directive.get("Namespace"))
            data: list[Any] = []
            for metric in directive.get("Metrics", []):
                name, unit = str(metric["Name"]), str(metric.get("Unit", "None"))
                value = document.get(name)
                values = value if isinstance(value, list) else [value]
                numbers = [float(v) for v in values if isinstance(v, int | float)]
                if not numbers:
                    continue
                for dimension_set in directive.get("Dimensions", []):
                    self.metrics.append(EmittedMetric(namespace, name))
                    dimensions = [{"Name": str(k), "Value": str(document.get(k))} for k in dimension_set]
                    data.append(
                        {
                            "MetricName": name,
                            "Values": numbers,
                            "Unit": unit,
                            "Timestamp": stamp,
                            "Dimensions": dimensions,
                        }
                    )
            if data:  # an array value is several values of one metric, as PutMetricData's Values
                self.cloudwatch.put_metric_data(Namespace=namespace, MetricData=data)

    def alerts(self) -> list[str]:
        """The subjects of the alerts DeployGuard published to the alert topic."""
        if self._queue_url is None:
            return []
        sqs = self.client("sqs")
        subjects: list[str] = []
        while messages := sqs.receive_message(QueueUrl=self._queue_url, MaxNumberOfMessages=10).get(
            "Messages"
        ):
            for message in messages:
                body = json.loads(message["Body"])
                subjects.append(str(body.get("Subject") or body.get("Message", ""))[:200])
                sqs.delete_message(QueueUrl=self._queue_url, ReceiptHandle=message["ReceiptHandle"])
        return subjects


@functools.lru_cache(maxsize=8)
def _layer_zip(folder: Path, stamp: int) -> bytes:
    """A layer folder zipped once per process (installed requirements are tens of MB)."""
    del stamp  # part of the key (the folder's mtime): a folder changed since is zipped again
    return lambda_runner.zip_directory(folder)


def _stamp_alarm(alarm_name: str, when: datetime) -> None:
    """The alarm's StateUpdatedTimestamp on the virtual clock (moto writes the real time), so
    "how long since the alarm fired" (AlarmToRestoreTime) is measured on one timeline."""
    from moto.cloudwatch.models import cloudwatch_backends  # noqa: PLC0415

    alarm = cloudwatch_backends[ACCOUNT_ID][REGION].alarms.get(alarm_name)
    if alarm is not None:
        alarm.state_updated_timestamp = when.astimezone(UTC).replace(tzinfo=None)


def _metric_samples() -> list[Any]:
    from moto.cloudwatch.models import cloudwatch_backends  # noqa: PLC0415

    return list(cloudwatch_backends[ACCOUNT_ID][REGION].metric_data)
