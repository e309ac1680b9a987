"""Do the SSM parameters and Secrets Manager secrets that variables point at exist?

Metadata calls only (DescribeParameters, DescribeSecret): a secret's value is never read.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from deployguard.aws.errors import aws_call, unless
from deployguard.secrets import Reference

if TYPE_CHECKING:
    from mypy_boto3_secretsmanager import SecretsManagerClient
    from mypy_boto3_ssm import SSMClient


class ReferenceResolver:
    """The ``ReferencePort``: metadata calls only. Raises AwsCallError."""

    def __init__(self, ssm: SSMClient, secretsmanager: Callable[[], SecretsManagerClient]) -> None:
        # NOTE: the Secrets Manager client is made on first use: most functions reference no
        # secret, and a client costs tens of milliseconds of cold start.
        self._ssm = ssm
        self._secretsmanager = secretsmanager

    def exists(self, reference: Reference) -> bool:
        if reference.kind == "ssm":
            with aws_call("DescribeParameters"):
                answer = self._ssm.describe_parameters(
                    ParameterFilters=[{"Key": "Name", "Option": "Equals", "Values": [reference.identifier]}]
                )
            return bool(answer.get("Parameters"))
        secret = unless(
            {"ResourceNotFoundException"},
            "DescribeSecret",
            lambda: self._secretsmanager().describe_secret(SecretId=reference.identifier),
        )
        return secret is not None and "DeletedDate" not in secret
