"""A function version's configuration as the checks see it (built by the Lambda adapter)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class FunctionSnapshot(BaseModel):
    model_config = ConfigDict(frozen=True)

    function_name: str
    version: str
    runtime: str | None = None
    architectures: tuple[str, ...] = ("x86_64",)
    memory_size: int = 128
    timeout: int = 3
    layers: tuple[str, ...] = ()
    environment: dict[str, str] = Field(default_factory=dict)
    tracing_mode: str | None = None
    dead_letter_target: str | None = None
    on_failure_destination: str | None = None


class InvocationResult(BaseModel):
    """What one synchronous invocation answered."""

    model_config = ConfigDict(frozen=True)

    function_error: str | None
    payload: bytes
    executed_version: str | None
    latency_ms: float


class AliasState(BaseModel):
    model_config = ConfigDict(frozen=True)

    function_name: str
    alias: str
    function_version: str
    additional_version_weights: dict[str, float] = Field(default_factory=dict)
    revision_id: str | None = None
