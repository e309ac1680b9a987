"""Lambda aliases on moto: ``UpdateAlias`` validates and honours ``RevisionId``, as AWS does.

moto 5.2 ignores ``RevisionId`` on ``UpdateAlias`` and never changes an alias's revision, so the
lock DeployGuard's rollback relies on ("never overwrite a newer change") cannot be exercised. After
:func:`install`:

- ``UpdateAlias`` with a ``RevisionId`` that is not the alias's current one fails with
  ``PreconditionFailedException`` (HTTP 412) and changes nothing, and every successful update gives
  the alias a new ``RevisionId`` (``GetAlias``/``UpdateAlias`` answer it);
- ``UpdateAlias`` checks ``RoutingConfig.AdditionalVersionWeights`` as Lambda does (the botocore
  model's ``Weight`` is 0.0-1.0 and a key is a version number; AWS's errors as LocalStack's
  AWS-validated provider records them): one additional version at most
  (``InvalidParameterValueException``), a weight outside [0.0, 1.0] or a key that is not a version
  number (``ValidationException``), the alias's own primary version
  (``InvalidParameterValueException``), a version that does not exist
  (``ResourceNotFoundException``);
- an alias without routing answers no ``RoutingConfig`` member (moto wrote ``null``).
"""

from __future__ import annotations

import json
import re
import threading
import uuid
from collections.abc import Callable, Mapping
from typing import Any, Final
from urllib.parse import unquote

from moto.awslambda.exceptions import (
    InvalidParameterValueException,
    PreconditionFailedException,
    ValidationException,
)
from moto.awslambda.models import LambdaAlias
from moto.awslambda.responses import LambdaResponse

_PATCH_MARK: Final = "_deployguard_moto_lambda_alias"
_WEIGHTS: Final = "routingConfig.additionalVersionWeights"
_lock = threading.RLock()  # a ThreadedMotoServer serves requests on several threads
_original_to_json = LambdaAlias.to_json


def _check_routing(response: LambdaResponse, function_name: str, primary: str, routing: Any) -> None:
    weights = routing.get("AdditionalVersionWeights") if isinstance(routing, Mapping) else None
    if not weights:
        return
    if len(weights) > 1:
        raise InvalidParameterValueException(
            "Number of items in AdditionalVersionWeights cannot be greater than 1"
        )
    ((version, weight),) = weights.items()
    if isinstance(weight, bool) or not isinstance(weight, int | float) or not 0.0 <= weight <= 1.0:
        raise ValidationException(
            f"{{{version}={weight}}}",
            _WEIGHTS,
            "Map value must satisfy constraint: [Member must have value less than or equal to 1.0, "
            "Member must have value greater than or equal to 0.0]",
        )
    if not re.fullmatch(r"[0-9]+", str(version)):
        raise ValidationException(
            f"{{{version}={weight}}}",
            _WEIGHTS,
            "Map keys must satisfy constraint: [Member must have length less than or equal to 1024, "
            "Member must have length greater than or equal to 1, Member must satisfy regular expression "
            "pattern: [0-9]+]",
        )
    if str(version) == primary:
        raise InvalidParameterValueException(
            f"Invalid function version {primary}. Function version {primary} is already included in "
            "routing configuration."
        )
    response.backend.get_function(function_name, str(version))  # ResourceNotFoundException: no such version


def _wrap(original: Callable[[LambdaResponse], Any]) -> Callable[[LambdaResponse], Any]:
    def update_alias(self: LambdaResponse) -> Any:
        function_name = unquote(self.path.rsplit("/")[-3])
        alias_name = unquote(self.path.rsplit("/", 2)[-1])
        body = json.loads(self.body or "{}")
        with _lock:
            # NOTE: self.backend, not lambda_backends: without Docker moto answers from its
            # 'lambda simple' backend, a BackendDict of its own.
            alias = self.backend.get_alias(alias_name, function_name)  # ResourceNotFoundException
            expected = body.get("RevisionId")
            if expected is not None and expected != alias.revision_id:
                raise PreconditionFailedException(
                    "The Revision Id provided does not match the latest Revision Id. "
                    "Call the GetAlias API to retrieve the latest Revision Id"
                )
            primary = str(body.get("FunctionVersion") or alias.function_version)
            _check_routing(self, function_name, primary, body.get("RoutingConfig"))
            answer = original(self)
            alias.revision_id = str(uuid.uuid4())
            status, headers, text = answer
            return status, headers, json.dumps({**json.loads(text), "RevisionId": alias.revision_id})

    return update_alias


def _to_json(self: LambdaAlias) -> dict[str, Any]:
    document: dict[str, Any] = _original_to_json(self)
    if document.get("RoutingConfig") is None:
        document.pop("RoutingConfig", None)
    return document


def install() -> None:
    """Patch moto's UpdateAlias and alias documents (in-process ``mock_aws`` and moto servers). Idempotent."""
    with _lock:
        if getattr(LambdaResponse, _PATCH_MARK, False):
            return
        LambdaResponse.update_alias = _wrap(LambdaResponse.update_alias)  # type: ignore[method-assign,assignment]
        LambdaAlias.to_json = _to_json  # type: ignore[method-assign]
        setattr(LambdaResponse, _PATCH_MARK, True)
