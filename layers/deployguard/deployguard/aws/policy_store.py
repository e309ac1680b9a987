"""The stage's guard policy, read from SSM Parameter Store through Powertools Parameters.

The provider caches the document across warm invocations (``max_age``); a missing parameter or an
invalid document is a PolicyError, which fails the deployment with the reason.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from aws_lambda_powertools.utilities.parameters import SSMProvider
from aws_lambda_powertools.utilities.parameters.exceptions import GetParameterError
from botocore.exceptions import ClientError

from deployguard.aws.errors import error_code
from deployguard.errors import PolicyError
from deployguard.stages import Stage

if TYPE_CHECKING:
    from mypy_boto3_ssm import SSMClient

    from deployguard.policy import Policy


class PolicyStore:
    def __init__(self, client: SSMClient, parameter_name: str, *, max_age: int) -> None:
        self._provider = SSMProvider(boto3_client=client)
        self._name = parameter_name
        self._max_age = max_age
        self._parsed: tuple[str, Policy] | None = None

    def load(self, stage: Stage) -> Policy:
        try:
            text = self._provider.get(self._name, max_age=self._max_age)
        except GetParameterError as exc:
            cause = exc.__cause__
            why = (
                f"GetParameter failed with {error_code(cause)}"
                if isinstance(cause, ClientError)
                else f"GetParameter failed with {type(cause or exc).__name__}"
            )
            raise PolicyError(
                f"the {stage.value} policy could not be read from SSM parameter {self._name} ({why}): "
                f"if it is missing, publish it with `deployguard policy publish --stage {stage.value} FILE`"
            ) from exc
        if not isinstance(text, str) or not text.strip():
            raise PolicyError(f"SSM parameter {self._name} is empty: publish the {stage.value} policy")
        if self._parsed is None or self._parsed[0] != text:  # parse once per document version
            # NOTE: imported here, not at module level: pydantic (≈80 ms of import and model
            # building) is paid when a policy is first parsed, not by every cold start's init.
            from deployguard.policy import load_policy

            self._parsed = (text, load_policy(text, f"ssm:{self._name}", stage=stage))
        return self._parsed[1]
