"""Step Functions: start the bake workflow (a STANDARD state machine, statemachine/bake.asl.json)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from deployguard.aws.errors import unless

if TYPE_CHECKING:
    from mypy_boto3_stepfunctions import SFNClient


class BakeWorkflow:
    """The ``BakeStarter`` port. Raises AwsCallError."""

    def __init__(self, client: SFNClient, state_machine_arn: str) -> None:
        self._client = client
        self._state_machine_arn = state_machine_arn

    def start(self, name: str, payload: Mapping[str, Any]) -> str:
        """StartExecution; the execution's ARN. A name already used (a retried hook) is not an
        error: that execution is already baking this deployment."""
        answer = unless(
            {"ExecutionAlreadyExists"},
            "StartExecution",
            lambda: self._client.start_execution(
                stateMachineArn=self._state_machine_arn, name=name, input=json.dumps(payload)
            ),
        )
        if answer is None:
            return f"{self._state_machine_arn.replace(':stateMachine:', ':execution:', 1)}:{name}"
        return str(answer["executionArn"])
