"""Lambda: a version's configuration, synthetic invocations, and the alias."""

from __future__ import annotations

import base64
import json
import time
from typing import TYPE_CHECKING, Any

from deployguard.aws.errors import aws_call, unless
from deployguard.snapshot import AliasState, FunctionSnapshot, InvocationResult

if TYPE_CHECKING:
    from mypy_boto3_lambda import LambdaClient

SYNTHETIC_MARKER = "deployguard-synthetic"
"""Client-context key set on every smoke invocation: the application can skip side effects."""


def synthetic_client_context(deployment_id: str | None) -> str:
    custom = {SYNTHETIC_MARKER: "true"}
    if deployment_id:
        custom["deployguard-deployment-id"] = deployment_id
    return base64.b64encode(json.dumps({"custom": custom}).encode()).decode()


class Lambda:
    """Adapter over the Lambda API (the ``LambdaPort``). All methods raise AwsCallError."""

    def __init__(self, client: LambdaClient, invoke_client: LambdaClient | None = None) -> None:
        self._client = client
        self._invoke_client = invoke_client or client

    def snapshot(self, function_name: str, version: str) -> FunctionSnapshot:
        """GetFunctionConfiguration (and the event-invoke config) of exactly ``version``."""
        with aws_call("GetFunctionConfiguration"):
            config: dict[str, Any] = dict(
                self._client.get_function_configuration(FunctionName=function_name, Qualifier=version)
            )
        return FunctionSnapshot(
            function_name=config.get("FunctionName", function_name),
            version=config.get("Version", version),
            runtime=config.get("Runtime"),
            architectures=tuple(config.get("Architectures") or ("x86_64",)),
            memory_size=config.get("MemorySize", 128),
            timeout=config.get("Timeout", 3),
            layers=tuple(layer["Arn"] for layer in config.get("Layers", [])),
            environment=dict(config.get("Environment", {}).get("Variables", {})),
            tracing_mode=config.get("TracingConfig", {}).get("Mode"),
            dead_letter_target=config.get("DeadLetterConfig", {}).get("TargetArn"),
            on_failure_destination=self._on_failure_destination(function_name, version),
        )

    def environment(self, function_name: str, version: str) -> dict[str, str]:
        """The environment variables of exactly ``version`` (one GetFunctionConfiguration)."""
        with aws_call("GetFunctionConfiguration"):
            config = self._client.get_function_configuration(FunctionName=function_name, Qualifier=version)
        return dict(config.get("Environment", {}).get("Variables", {}))

    def _on_failure_destination(self, function_name: str, version: str) -> str | None:
        answer = unless(
            {"ResourceNotFoundException"},
            "GetFunctionEventInvokeConfig",
            lambda: self._client.get_function_event_invoke_config(
                FunctionName=function_name, Qualifier=version
            ),
        )
        if answer is None:
            return None
        destination = answer.get("DestinationConfig", {}).get("OnFailure", {}).get("Destination")
        return str(destination) if destination else None

    def invoke(
        self, function_name: str, qualifier: str, payload: bytes, *, deployment_id: str | None = None
    ) -> InvocationResult:
        """A synchronous (RequestResponse) invocation, marked synthetic in the client context."""
        started = time.perf_counter()
        with aws_call("Invoke"):
            answer = self._invoke_client.invoke(
                FunctionName=function_name,
                Qualifier=qualifier,
                InvocationType="RequestResponse",
                Payload=payload,
                ClientContext=synthetic_client_context(deployment_id),
            )
            body = answer["Payload"].read()
        return InvocationResult(
            function_error=answer.get("FunctionError"),
            payload=body,
            executed_version=answer.get("ExecutedVersion"),
            latency_ms=(time.perf_counter() - started) * 1000,
        )

    def alias(self, function_name: str, alias: str) -> AliasState:
        with aws_call("GetAlias"):
            answer = self._client.get_alias(FunctionName=function_name, Name=alias)
        return AliasState(
            function_name=function_name,
            alias=alias,
            function_version=answer["FunctionVersion"],
            additional_version_weights=dict(
                answer.get("RoutingConfig", {}).get("AdditionalVersionWeights", {})
            ),
            revision_id=answer.get("RevisionId"),
        )

    def point_alias(self, state: AliasState, version: str) -> AliasState:
        """Put the alias on ``version`` with routing cleared, only if nobody changed it since ``state``.

        RevisionId is the lock: a newer change (PreconditionFailedException) is never overwritten.
        """
        with aws_call("UpdateAlias"):
            answer = self._client.update_alias(
                FunctionName=state.function_name,
                Name=state.alias,
                FunctionVersion=version,
                RoutingConfig={"AdditionalVersionWeights": {}},
                **({"RevisionId": state.revision_id} if state.revision_id else {}),
            )
        return AliasState(
            function_name=state.function_name,
            alias=state.alias,
            function_version=answer["FunctionVersion"],
            additional_version_weights=dict(
                answer.get("RoutingConfig", {}).get("AdditionalVersionWeights", {})
            ),
            revision_id=answer.get("RevisionId"),
        )
