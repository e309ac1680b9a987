"""Domain exceptions. Adapters translate botocore errors into these (``raise ... from exc``)."""

from __future__ import annotations


class DeployGuardError(Exception):
    """Base class: something DeployGuard could not decide. The hook reports Failed (fail closed)."""

    code = "DG000"


class PolicyError(DeployGuardError):
    """The guard policy is missing or invalid."""

    code = "POLICY"


class ResolutionError(DeployGuardError):
    """The deployment could not be resolved to a function, alias and versions."""

    code = "RESOLVE"


class AwsCallError(DeployGuardError):
    """An AWS call failed. The message names the operation and the error code, never a payload."""

    code = "AWS"

    def __init__(
        self,
        operation: str,
        error_code: str,
        message: str,
        *,
        throttled: bool = False,
        out_of_time: bool = False,
        attempts: int = 1,
    ) -> None:
        self.operation = operation
        self.error_code = error_code
        self.throttled = throttled  # refused for the rate of calls (retried first, then given up)
        self.out_of_time = out_of_time  # the last retry would have passed the invocation's deadline
        self.attempts = attempts
        if throttled:
            ended = "until the deadline" if out_of_time else "until retries were exhausted"
            message = f"{message} (throttled on {attempts} attempt(s) {ended})"
        super().__init__(f"{operation} failed with {error_code}: {message}")


class EventError(DeployGuardError):
    """The Lambda event is malformed."""

    code = "EVENT"
