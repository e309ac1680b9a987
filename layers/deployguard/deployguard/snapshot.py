"""A function version's configuration as the checks see it (built by the Lambda adapter)."""

from __future__ import annotations

from dataclasses import field

from deployguard.records import datarecord


@datarecord
class FunctionSnapshot:
    function_name: str
    version: str
    runtime: str | None = None
    architectures: tuple[str, ...] = ("x86_64",)
    memory_size: int = 128
    timeout: int = 3
    layers: tuple[str, ...] = ()
    environment: dict[str, str] = field(default_factory=dict)
    tracing_mode: str | None = None
    dead_letter_target: str | None = None
    on_failure_destination: str | None = None
    arn: str | None = None  # the version's qualified ARN (GetFunctionConfiguration's FunctionArn)


@datarecord
class InvocationResult:
    """What one synchronous invocation answered."""

    function_error: str | None
    payload: bytes
    executed_version: str | None
    latency_ms: float


@datarecord
class AliasState:
    function_name: str
    alias: str
    function_version: str
    additional_version_weights: dict[str, float] = field(default_factory=dict)
    revision_id: str | None = None
