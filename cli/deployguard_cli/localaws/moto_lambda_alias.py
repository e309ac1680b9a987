"""Lambda aliases on moto: ``UpdateAlias`` honours ``RevisionId``, as AWS does.

moto 5.2 ignores ``RevisionId`` on ``UpdateAlias`` and never changes an alias's revision, so the
lock DeployGuard's rollback relies on ("never overwrite a newer change") cannot be exercised. After
:func:`install`, ``UpdateAlias`` with a ``RevisionId`` that is not the alias's current one fails with
``PreconditionFailedException`` (HTTP 412) and changes nothing, and every successful update gives
the alias a new ``RevisionId`` (``GetAlias``/``UpdateAlias`` answer it).
"""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Callable
from typing import Any, Final
from urllib.parse import unquote

from moto.awslambda.exceptions import PreconditionFailedException
from moto.awslambda.responses import LambdaResponse

_PATCH_MARK: Final = "_deployguard_moto_lambda_alias"
_lock = threading.RLock()  # a ThreadedMotoServer serves requests on several threads


def _wrap(original: Callable[[LambdaResponse], Any]) -> Callable[[LambdaResponse], Any]:
    def update_alias(self: LambdaResponse) -> Any:
        function_name = unquote(self.path.rsplit("/")[-3])
        alias_name = unquote(self.path.rsplit("/", 2)[-1])
        expected = json.loads(self.body or "{}").get("RevisionId")
        with _lock:
            # NOTE: self.backend, not lambda_backends: without Docker moto answers from its
            # 'lambda simple' backend, a BackendDict of its own.
            alias = self.backend.get_alias(alias_name, function_name)  # ResourceNotFoundException
            if expected is not None and expected != alias.revision_id:
                raise PreconditionFailedException(
                    "The Revision Id provided does not match the latest Revision Id. "
                    "Call the GetAlias API to retrieve the latest Revision Id"
                )
            answer = original(self)
            alias.revision_id = str(uuid.uuid4())
            status, headers, body = answer
            return status, headers, json.dumps({**json.loads(body), "RevisionId": alias.revision_id})

    return update_alias


def install() -> None:
    """Patch moto's UpdateAlias (in-process ``mock_aws`` and moto servers). Idempotent."""
    with _lock:
        if getattr(LambdaResponse, _PATCH_MARK, False):
            return
        LambdaResponse.update_alias = _wrap(LambdaResponse.update_alias)  # type: ignore[method-assign,assignment]
        setattr(LambdaResponse, _PATCH_MARK, True)
