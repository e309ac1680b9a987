"""Lambda: a version's configuration, synthetic invocations, and the alias."""

from __future__ import annotations

import base64
import json
import re
import time
from typing import TYPE_CHECKING, Any

from deployguard.aws.errors import aws_call, unless
from deployguard.aws.warm_cache import WarmCache
from deployguard.snapshot import AliasState, FunctionSnapshot, InvocationResult

if TYPE_CHECKING:
    from collections.abc import Callable

    from mypy_boto3_lambda import LambdaClient
    from mypy_boto3_sts import STSClient

ENVIRONMENTS_KEPT = 512  # published versions whose environment is remembered while warm
VERSION_ENVIRONMENT_MAX_AGE = 900.0  # seconds (see Lambda.__init__)
TAGS_KEPT = 1024  # functions whose tags are remembered (with tags_max_age)
ROLLBACK_TAGS_MAX_AGE = 60.0  # seconds the alarm rollback remembers a function's tags (its scope)
PLAIN_FUNCTION_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")  # Lambda's rule for a function name
SYNTHETIC_MARKER = "deployguard-synthetic"
"""Client-context key set on every smoke invocation: the application can skip side effects."""


def synthetic_client_context(deployment_id: str | None) -> str:
    custom = {SYNTHETIC_MARKER: "true"}
    if deployment_id:
        custom["deployguard-deployment-id"] = deployment_id
    return base64.b64encode(json.dumps({"custom": custom}).encode()).decode()


class Lambda:
    """Adapter over the Lambda API (the ``LambdaPort``). All methods raise AwsCallError."""

    def __init__(
        self,
        client: LambdaClient,
        invoke_client: LambdaClient | None = None,
        *,
        sts_client: Callable[[], STSClient] | None = None,
        account: Callable[[], str | None] = lambda: None,
        tags_max_age: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._client = client
        self._invoke_client = invoke_client or client
        # the account of the ARNs tags() builds: ``account()`` (a Lambda handler knows its own from
        # its context), else STS (the CLI), else none (the ARN is read)
        self._account_of = account
        self._sts_client = sts_client
        self._account: str | None = None
        # NOTE: a published version's configuration is immutable, so its environment is remembered
        # while warm (the alarm rollback's redactor reads both versions on every event); never
        # $LATEST or an alias, whose configuration changes. VERSION_ENVIRONMENT_MAX_AGE bounds it
        # because a function deleted and created again numbers its versions from 1 again.
        self._environments: WarmCache[tuple[str, str], dict[str, str]] = WarmCache(
            ENVIRONMENTS_KEPT, VERSION_ENVIRONMENT_MAX_AGE, clock
        )
        self._tags: WarmCache[str, dict[str, str]] | None = (
            WarmCache(TAGS_KEPT, tags_max_age, clock) if tags_max_age else None
        )

    def snapshot(self, function_name: str, version: str, *, destinations: bool = True) -> FunctionSnapshot:
        """GetFunctionConfiguration of exactly ``version``; with ``destinations``, also its
        on-failure destination (GetFunctionEventInvokeConfig), unless it has a dead-letter queue."""
        with aws_call("GetFunctionConfiguration"):
            config: dict[str, Any] = dict(
                self._client.get_function_configuration(FunctionName=function_name, Qualifier=version)
            )
        dead_letter_target = config.get("DeadLetterConfig", {}).get("TargetArn")
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
            dead_letter_target=dead_letter_target,
            on_failure_destination=(
                self._on_failure_destination(function_name, version)
                if destinations and not dead_letter_target
                else None
            ),
            arn=config.get("FunctionArn"),
        )

    def environment(self, function_name: str, version: str) -> dict[str, str]:
        """The environment variables of exactly ``version`` (one GetFunctionConfiguration); a
        published version's (a number: immutable) is remembered while warm."""
        published = version.isdigit()
        known = self._environments.get((function_name, version)) if published else None
        if known is not None:
            return dict(known)
        with aws_call("GetFunctionConfiguration"):
            config = self._client.get_function_configuration(FunctionName=function_name, Qualifier=version)
        variables = dict(config.get("Environment", {}).get("Variables", {}))
        if published and config.get("Version", version) == version:
            self._environments.put((function_name, version), dict(variables))
        return variables

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

    def versions(self, function_name: str) -> list[str]:
        found: list[str] = []
        marker = ""
        while True:  # NOTE: by hand, not get_paginator: tests/unit/test_template.py reads the calls
            with aws_call("ListVersionsByFunction"):
                page = (
                    self._client.list_versions_by_function(FunctionName=function_name, Marker=marker)
                    if marker
                    else self._client.list_versions_by_function(FunctionName=function_name)
                )
            found += [str(v["Version"]) for v in page.get("Versions", [])]
            marker = page.get("NextMarker", "")
            if not marker:
                return found

    def aliases(self, function_name: str) -> list[AliasState]:
        found: list[AliasState] = []
        marker = ""
        while True:
            with aws_call("ListAliases"):
                page = (
                    self._client.list_aliases(FunctionName=function_name, Marker=marker)
                    if marker
                    else self._client.list_aliases(FunctionName=function_name)
                )
            found += [
                AliasState(
                    function_name=function_name,
                    alias=a["Name"],
                    function_version=a["FunctionVersion"],
                    additional_version_weights=dict(
                        a.get("RoutingConfig", {}).get("AdditionalVersionWeights", {})
                    ),
                    revision_id=a.get("RevisionId"),
                )
                for a in page.get("Aliases", [])
            ]
            marker = page.get("NextMarker", "")
            if not marker:
                return found

    def version_arn(self, function_name: str, version: str) -> str:
        """The qualified ARN of ``version`` (GetFunctionConfiguration's FunctionArn)."""
        with aws_call("GetFunctionConfiguration"):
            config = self._client.get_function_configuration(FunctionName=function_name, Qualifier=version)
        return str(config["FunctionArn"])

    def delete_version(self, function_name: str, version: str) -> None:
        if not version.isdigit():  # NOTE: without a Qualifier DeleteFunction deletes the function
            raise ValueError(f"only a published version can be pruned, not {version!r}")
        with aws_call("DeleteFunction"):
            self._client.delete_function(FunctionName=function_name, Qualifier=version)

    # issue 12: tags()
    def tags(self, function_name: str) -> dict[str, str]:
        """The function's tags (:meth:`read_tags`); remembered for ``tags_max_age`` seconds when the
        adapter was made with one (the alarm rollback's: a storm reads each function's many times)."""
        if self._tags is None:
            return self.read_tags(function_name)
        known = self._tags.get(function_name)
        if known is None:
            known = self.read_tags(function_name)
            self._tags.put(function_name, known)
        return dict(known)

    def read_tags(self, function_name: str) -> dict[str, str]:
        """The function's tags: ListTags on its unqualified ARN (GetFunctionConfiguration does not
        return tags, so it is read first for the ARN unless ``function_name`` is an ARN already)."""
        arn = unqualified_arn(function_name) or self._function_arn(function_name)
        if arn is None:
            with aws_call("GetFunctionConfiguration"):
                config = self._client.get_function_configuration(FunctionName=function_name)
            arn = unqualified_arn(config["FunctionArn"]) or config["FunctionArn"]
        with aws_call("ListTags"):
            answer = self._client.list_tags(Resource=arn)
        return dict(answer.get("Tags", {}))

    def _function_arn(self, function_name: str) -> str | None:
        """The unqualified ARN of a plain ``function_name`` in this account, partition and region;
        None without an STS client, or for a name that is not plain.

        NOTE: built, not read: GetFunctionConfiguration is allowed only on functions tagged for the
        stage (the roles' tag condition), and tags() must work on a function outside the scope to
        say so. The account is the running function's own (hooks are invoked in the account of the
        deployment they judge), else STS GetCallerIdentity's, once per adapter (it needs no
        permission: https://docs.aws.amazon.com/STS/latest/APIReference/API_GetCallerIdentity.html).
        """
        if not PLAIN_FUNCTION_NAME.fullmatch(function_name):
            return None
        if self._account is None:
            self._account = self._account_of()
        if self._account is None:
            if self._sts_client is None:
                return None
            with aws_call("GetCallerIdentity"):
                self._account = self._sts_client().get_caller_identity()["Account"]
        meta = self._client.meta
        return f"arn:{meta.partition}:lambda:{meta.region_name}:{self._account}:function:{function_name}"


def unqualified_arn(name: str) -> str | None:
    """``arn:aws:lambda:<region>:<account>:function:<name>`` without a ``:<qualifier>``; None
    when ``name`` is not a function ARN (a plain name or a partial ``<account>:function:<name>``)."""
    parts = name.split(":")
    if len(parts) >= 7 and parts[0] == "arn" and parts[5] == "function":
        return ":".join(parts[:7])
    return None
