"""The stage's guard policy, read from SSM Parameter Store through Powertools Parameters.

The provider caches the document across warm invocations (``max_age``); a missing parameter or an
invalid document is a PolicyError, which fails the deployment with the reason.

Parsing needs pydantic and the policy models: the largest part of a cold start after boto3 itself
(≈ 0.4 G instructions, ``scripts/bench.py``). It is not paid at init: :meth:`PolicyStore.prepare`
builds the parser on a background thread when an invocation starts, so it overlaps the network
waits of the calls before the policy is needed (GetDeployment, GetApplicationRevision,
GetParameter) instead of following them; :meth:`PolicyStore.load` waits for it before parsing.
"""

from __future__ import annotations

import threading
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
    """The ``PolicySource`` port. ``load`` raises PolicyError."""

    def __init__(self, client: SSMClient, parameter_name: str, *, max_age: int) -> None:
        self._provider = SSMProvider(boto3_client=client)
        self._name = parameter_name
        self._max_age = max_age
        self._parsed: tuple[str, Policy] | None = None
        self._parser: threading.Thread | None = None
        self._lock = threading.Lock()

    def prepare(self) -> None:
        """Start building the policy parser in the background (once; later calls do nothing)."""
        with self._lock:
            if self._parser is None:
                self._parser = threading.Thread(
                    target=_build_parser, name="deployguard-policy-parser", daemon=True
                )
                self._parser.start()

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
            if self._parser is not None:
                self._parser.join()  # never two builds of the same models at once
            # NOTE: imported here, not at module level: pydantic is not part of the init (see above)
            from deployguard.policy import load_policy

            self._parsed = (text, load_policy(text, f"ssm:{self._name}", stage=stage))
        return self._parsed[1]


def _build_parser() -> None:
    try:
        from deployguard.policy import build_parser

        build_parser()
    except Exception:  # noqa: S110 — only the head start is lost: load() imports, parses and reports
        pass
