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

if TYPE_CHECKING:
    from mypy_boto3_cloudwatch import CloudWatchClient
    from mypy_boto3_codedeploy import CodeDeployClient
    from mypy_boto3_lambda import LambdaClient
    from mypy_boto3_logs import CloudWatchLogsClient
    from mypy_boto3_secretsmanager import SecretsManagerClient
    from mypy_boto3_sns import SNSClient
    from mypy_boto3_ssm import SSMClient
    from mypy_boto3_stepfunctions import SFNClient

    from deployguard.aws.cloudwatch import TaggingClient

# NOTE: short connect/read timeouts and bounded standard retries: a hook must always keep enough
# time to report its status, so no single call may hang for botocore's default 60 s x 5 attempts.
# `total_max_attempts` counts the first attempt; botocore's `max_attempts` counts retries only
# (max_attempts 1 is two attempts).
CONTROL_PLANE = Config(
    connect_timeout=3, read_timeout=10, retries={"total_max_attempts": 3, "mode": "standard"}
)
# Smoke invocations: the per-case timeout is enforced by the smoke engine; one attempt (a retried
# invocation would hide a failure, invoke the version twice and double the latency, a read timeout
# included). The read timeout is Lambda's longest run
# (900 s) unless the caller knows its cases' timeouts: `deployguard check` passes them, so a stuck
# invocation cannot hold its thread (and the process's exit) past the case's timeout.
INVOKE = Config(connect_timeout=3, read_timeout=900, retries={"total_max_attempts": 1, "mode": "standard"})

_lock = threading.Lock()


@cache
def _client(service: str, invoke: bool = False, read_timeout: float | None = None) -> Any:
    config = INVOKE if invoke else CONTROL_PLANE
    if read_timeout is not None:
        config = config.merge(Config(read_timeout=read_timeout))
    with _lock:  # boto3's default session is not thread-safe while it creates clients
        return boto3.client(service, config=config)  # type: ignore[call-overload]


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


def tagging_client() -> TaggingClient:
    """Resource Groups Tagging API: finds alarms by tag in one paginated call."""
    return _client("resourcegroupstaggingapi")  # type: ignore[no-any-return]
