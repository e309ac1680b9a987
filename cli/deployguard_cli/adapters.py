"""The AWS adapters the commands work with: the layer's own (``deployguard.entrypoints`` builds
them), so a command calls AWS exactly as the guard functions do — same clients, timeouts, retries.

The one CLI module that reaches for the composition root: each command's ``run(args)`` builds the
adapters it needs here and passes them to the command's logic, which takes ports.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from deployguard import entrypoints
from deployguard.aws import clients
from deployguard.aws.lambda_functions import Lambda
from deployguard_cli.report import OutcomeLogs

if TYPE_CHECKING:
    from mypy_boto3_ssm import SSMClient

    from deployguard.ports import CodeDeployPort, LambdaPort, ReferencePort


def codedeploy() -> CodeDeployPort:
    return entrypoints.codedeploy_adapter()


def functions(*, invoke_read_timeout: float | None = None) -> LambdaPort:
    """The Lambda adapter; ``invoke_read_timeout`` (seconds) bounds each synchronous invocation."""
    if invoke_read_timeout is None:
        return entrypoints.lambda_adapter()
    return Lambda(clients.lambda_client(), clients.lambda_invoke_client(invoke_read_timeout))


def references() -> ReferencePort:
    return entrypoints.references_adapter()


def outcome_logs() -> OutcomeLogs:
    return OutcomeLogs(clients.logs_client())


def ssm() -> SSMClient:
    return clients.ssm_client()


def s3() -> Any:
    """The policy bucket's client (the layer's, as the hooks read with)."""
    return clients.s3_client()
