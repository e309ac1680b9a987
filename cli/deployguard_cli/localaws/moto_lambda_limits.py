"""Lambda on moto with the function-configuration limits AWS enforces on CreateFunction and
UpdateFunctionConfiguration.

moto 5.2 stores any ``Timeout``, ``MemorySize``, ``FunctionName`` and environment, so a template
``sam deploy`` would fail to deploy rehearses cleanly. After :func:`install`, moto refuses them as
Lambda does, before anything is created or changed:

- **the botocore model's constraints** (``ValidationException``, HTTP 400, AWS's front-end message,
  every violated constraint in one ``N validation error(s) detected: …``): ``Timeout`` 1-5400,
  ``MemorySize`` 128-32768, a ``FunctionName`` matching the model's pattern, 140 characters at most
  as an ARN and 64 as a plain name (the model's own documentation of ``FunctionName``: "If you
  specify only the function name, it is limited to 64 characters in length");
- **the quotas of a function without Lambda Managed Instances** (no ``CapacityProviderConfig``),
  inside the model's range but above them (``InvalidParameterValueException``, HTTP 400): a
  ``Timeout`` above 1,800 seconds (the model's ``Timeout`` documentation: "the maximum allowed value
  is 1,800 seconds"; 5,400 with Managed Instances) and a ``MemorySize`` above 10,240 MB (Lambda
  quotas, "Function memory allocation: 128 MB to 10,240 MB");
- **the environment's 4 KB** (``InvalidParameterValueException``, HTTP 400): the variables measured
  as Lambda measures them, the compact JSON of ``Environment.Variables``
  (``{"KEY":"value",…}``, keys, values, quotes, colons and commas) in UTF-8 bytes, more than 4,096
  refused. AWS's message quotes the measured string (``String measured: {…}``); this one gives its
  size instead, because that string holds every variable's value.

PublishVersion needs no check: it copies a configuration these already checked.
"""

from __future__ import annotations

import functools
import json
import re
import threading
from collections.abc import Callable, Mapping
from typing import Any, Final
from urllib.parse import unquote

from moto.awslambda.exceptions import InvalidParameterValueException, LambdaClientError
from moto.awslambda.responses import LambdaResponse

MIN_TIMEOUT_SECONDS: Final = 1
MAX_TIMEOUT_SECONDS: Final = 1800
"""A function without Lambda Managed Instances (botocore's ``Timeout`` documentation)."""
MODEL_MAX_TIMEOUT_SECONDS: Final = 5400
"""The model's ``Timeout`` maximum: Lambda Managed Instances."""
MIN_MEMORY_MB: Final = 128
MAX_MEMORY_MB: Final = 10240
"""A function without Lambda Managed Instances (Lambda quotas)."""
MODEL_MAX_MEMORY_MB: Final = 32768
"""The model's ``MemorySize`` maximum."""
MAX_NAME_LENGTH: Final = 64
MAX_ARN_LENGTH: Final = 140
MAX_ENVIRONMENT_BYTES: Final = 4096

# The botocore model's FunctionName pattern (CreateFunctionRequest), whole-value as AWS applies it.
FUNCTION_NAME_PATTERN: Final = (
    r"(arn:(aws[a-zA-Z-]*)?:lambda:)?((eusc-)?[a-z]{2}((-gov)|(-iso([a-z]?)))?-[a-z]+-\d{1}:)?"
    r"(\d{12}:)?(function:)?([a-zA-Z0-9-_]+)(:(\$LATEST|[a-zA-Z0-9-_]+))?"
)
_NAME: Final = re.compile(FUNCTION_NAME_PATTERN)
_PATCH_MARK: Final = "_deployguard_moto_lambda_limits"
_MANAGED_INSTANCES: Final = "_deployguard_managed_instances"
_lock = threading.Lock()


class LambdaValidationException(LambdaClientError):
    """AWS's front-end refusal of a request that breaks the service model (HTTP 400)."""

    def __init__(self, violations: list[str]) -> None:
        count = len(violations)
        detected = f"{count} validation error{'s' if count > 1 else ''} detected: "
        super().__init__("ValidationException", detected + "; ".join(violations))


def environment_size(variables: Mapping[str, str]) -> int:
    """The bytes Lambda counts against the 4 KB: the variables' compact JSON, in UTF-8."""
    return len(json.dumps(dict(variables), separators=(",", ":")).encode())


def _integer(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _violation(value: object, member: str, constraint: str) -> str:
    return f"Value '{value}' at '{member}' failed to satisfy constraint: {constraint}"


def _name_violations(name: Any) -> list[str]:
    if not isinstance(name, str):
        return []  # moto answers a missing name itself
    violations = []
    if not _NAME.fullmatch(name):
        violations.append(
            _violation(
                name,
                "functionName",
                f"Member must satisfy regular expression pattern: {FUNCTION_NAME_PATTERN}",
            )
        )
    limit = MAX_ARN_LENGTH if ":" in name else MAX_NAME_LENGTH
    if len(name) > limit:
        violations.append(
            _violation(name, "functionName", f"Member must have length less than or equal to {limit}")
        )
    return violations


def _range_violations(body: Mapping[str, Any]) -> list[str]:
    violations = []
    for key, member, low, high in (
        ("Timeout", "timeout", MIN_TIMEOUT_SECONDS, MODEL_MAX_TIMEOUT_SECONDS),
        ("MemorySize", "memorySize", MIN_MEMORY_MB, MODEL_MAX_MEMORY_MB),
    ):
        value = _integer(body.get(key))
        if value is not None and value < low:
            violations.append(
                _violation(value, member, f"Member must have value greater than or equal to {low}")
            )
        elif value is not None and value > high:
            violations.append(
                _violation(value, member, f"Member must have value less than or equal to {high}")
            )
    return violations


def _check_quotas(body: Mapping[str, Any], *, managed_instances: bool) -> None:
    if not managed_instances:  # NOTE: Managed Instances have the model's bounds only
        for key, member, high in (
            ("Timeout", "timeout", MAX_TIMEOUT_SECONDS),
            ("MemorySize", "memorySize", MAX_MEMORY_MB),
        ):
            value = _integer(body.get(key))
            if value is not None and value > high:
                raise InvalidParameterValueException(
                    _violation(value, member, f"Member must have value less than or equal to {high}")
                    + " (a function without CapacityProviderConfig)"
                )
    environment = body.get("Environment")
    variables = environment.get("Variables") if isinstance(environment, Mapping) else None
    if isinstance(variables, Mapping) and (size := environment_size(variables)) > MAX_ENVIRONMENT_BYTES:
        raise InvalidParameterValueException(
            "Lambda was unable to configure your environment variables because the environment variables "
            f"you have provided exceeded the 4KB limit. String measured: {size} bytes (the compact JSON "
            f"of Environment.Variables; at most {MAX_ENVIRONMENT_BYTES}; its text is not repeated here "
            "because it holds the values)"
        )


def _check_model(body: Mapping[str, Any], *, name: Any = None) -> None:
    """The front end's model constraints, all at once (AWS checks them before anything else)."""
    violations = [*_name_violations(name), *_range_violations(body)]
    if violations:
        raise LambdaValidationException(violations)


def _body(response: LambdaResponse) -> dict[str, Any]:
    document = json.loads(response.body or "{}")
    return document if isinstance(document, dict) else {}


def _wrap_create(original: Callable[[LambdaResponse], Any]) -> Callable[[LambdaResponse], Any]:
    @functools.wraps(original)
    def create_function(self: LambdaResponse) -> Any:
        body = _body(self)
        managed_instances = body.get("CapacityProviderConfig") is not None
        _check_model(body, name=body.get("FunctionName"))
        _check_quotas(body, managed_instances=managed_instances)
        answer = original(self)
        if managed_instances:  # NOTE: moto keeps no CapacityProviderConfig; later updates need it
            name = str(body["FunctionName"]).rsplit(":", 1)[-1]
            setattr(self.backend.get_function(name, None), _MANAGED_INSTANCES, True)
        return answer

    return create_function


def _wrap_update(original: Callable[[LambdaResponse], Any]) -> Callable[[LambdaResponse], Any]:
    @functools.wraps(original)
    def update_function_configuration(self: LambdaResponse) -> Any:
        body = _body(self)
        _check_model(body)
        # NOTE: self.backend, not lambda_backends: without Docker moto answers from its 'lambda
        # simple' backend. A name that names no function is moto's ResourceNotFoundException.
        function = self.backend.get_function(unquote(self.path.rsplit("/", 2)[-2]), None)
        _check_quotas(body, managed_instances=getattr(function, _MANAGED_INSTANCES, False))
        return original(self)

    return update_function_configuration


def install() -> None:
    """Patch moto's CreateFunction and UpdateFunctionConfiguration (in-process ``mock_aws`` and moto
    servers). Idempotent."""
    with _lock:
        if getattr(LambdaResponse, _PATCH_MARK, False):
            return
        LambdaResponse.create_function = _wrap_create(  # type: ignore[method-assign,assignment]
            LambdaResponse.create_function
        )
        LambdaResponse.update_function_configuration = _wrap_update(  # type: ignore[method-assign,assignment]
            LambdaResponse.update_function_configuration
        )
        setattr(LambdaResponse, _PATCH_MARK, True)
