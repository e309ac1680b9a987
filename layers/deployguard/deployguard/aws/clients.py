"""boto3 clients, created lazily (never at import, so moto can be set up first) and reused warm.

``<service>_client()`` makes (once) and returns the client; the composition root
(``deployguard.entrypoints``) hands clients, or these functions themselves where an adapter makes
its client on first use, to the adapters.
"""

from __future__ import annotations

import threading
from functools import cache
from typing import TYPE_CHECKING, Any

import boto3
from botocore.config import Config

from deployguard.aws.retries import CONTROL_PLANE_ATTEMPTS, bound_by_deadline
from deployguard.smoke import MAX_SMOKE_CONCURRENCY

if TYPE_CHECKING:
    from mypy_boto3_cloudwatch import CloudWatchClient
    from mypy_boto3_codedeploy import CodeDeployClient
    from mypy_boto3_lambda import LambdaClient
    from mypy_boto3_logs import CloudWatchLogsClient
    from mypy_boto3_secretsmanager import SecretsManagerClient
    from mypy_boto3_sns import SNSClient
    from mypy_boto3_ssm import SSMClient
    from mypy_boto3_stepfunctions import SFNClient
    from mypy_boto3_sts import STSClient

    from deployguard.aws.cloudwatch import TaggingClient
    from deployguard.aws.deployment_records import DynamoDBClient
    from deployguard.aws.policy_store import S3Client

# NOTE: short connect/read timeouts, and standard retries (jittered backoff) bounded by attempts
# and by the invocation's deadline (deployguard.aws.retries): a throttled call is retried while
# the retry fits, and a hook always keeps the time to report its status.
# `total_max_attempts` counts the first attempt; botocore's `max_attempts` counts retries only
# (max_attempts 1 is two attempts).
CONTROL_PLANE = Config(
    connect_timeout=3,
    read_timeout=10,
    retries={"total_max_attempts": CONTROL_PLANE_ATTEMPTS, "mode": "standard"},
)
# Smoke invocations: the per-case timeout is enforced by the smoke engine; one attempt (a retried
# invocation would hide a failure, invoke the version twice and double the latency, a read timeout
# included). The read timeout is Lambda's longest run
# (900 s) unless the caller knows its cases' timeouts: `deployguard check` passes them, so a stuck
# invocation cannot hold its thread (and the process's exit) past the case's timeout.
# The pool holds a connection per concurrent case, up to the most a policy may run at once
# (botocore's default pool of 10 would queue the rest).
INVOKE = Config(
    connect_timeout=3,
    read_timeout=900,
    retries={"total_max_attempts": 1, "mode": "standard"},
    max_pool_connections=MAX_SMOKE_CONCURRENCY,
)

_lock = threading.Lock()


@cache
def _client(service: str, invoke: bool = False, read_timeout: float | None = None) -> Any:
    config = INVOKE if invoke else CONTROL_PLANE
    if read_timeout is not None:
        config = config.merge(Config(read_timeout=read_timeout))
    with _lock:  # boto3's default session is not thread-safe while it creates clients
        client = boto3.client(service, config=config)  # type: ignore[call-overload]
    return client if invoke else bound_by_deadline(client, CONTROL_PLANE_ATTEMPTS)


def reset() -> None:
    """Forget every client (tests call this after starting moto)."""
    _client.cache_clear()


def codedeploy_client() -> CodeDeployClient:
    return _client("codedeploy")  # type: ignore[no-any-return]


def lambda_client() -> LambdaClient:
    return _client("lambda")  # type: ignore[no-any-return]


def lambda_invoke_client(read_timeout: float | None = None) -> LambdaClient:
    """The client of synchronous invocations; ``read_timeout`` (seconds) replaces the 900 s wait."""
    return _client("lambda", True, read_timeout)  # type: ignore[no-any-return]


def ssm_client() -> SSMClient:
    return _client("ssm")  # type: ignore[no-any-return]


def secretsmanager_client() -> SecretsManagerClient:
    return _client("secretsmanager")  # type: ignore[no-any-return]


def sns_client() -> SNSClient:
    return _client("sns")  # type: ignore[no-any-return]


def cloudwatch_client() -> CloudWatchClient:
    return _client("cloudwatch")  # type: ignore[no-any-return]


def logs_client() -> CloudWatchLogsClient:
    return _client("logs")  # type: ignore[no-any-return]


def stepfunctions_client() -> SFNClient:
    return _client("stepfunctions")  # type: ignore[no-any-return]


def dynamodb_client() -> DynamoDBClient:
    """The deployment records' table (``deployguard.aws.deployment_records``)."""
    return _client("dynamodb")  # type: ignore[no-any-return]


def s3_client() -> S3Client:
    """The policy store's bucket (``deployguard.aws.policy_store``; made on first use, off the init:
    S3's service model is large)."""
    return _client("s3")  # type: ignore[no-any-return]


def sts_client() -> STSClient:
    """GetCallerIdentity only (no permission needed): the account of the function ARNs the Lambda
    adapter builds to read a function's tags."""
    return _client("sts")  # type: ignore[no-any-return]


def tagging_client() -> TaggingClient:
    """Resource Groups Tagging API: finds alarms by tag in one paginated call."""
    return _client("resourcegroupstaggingapi")  # type: ignore[no-any-return]
