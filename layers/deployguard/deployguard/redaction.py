"""One redactor per invocation, built before any check runs, from the environments of the versions a
deployment moves between: every path that writes text (records, log lines, return values, alerts,
CLI output) masks with it. The engine and its detection table are :mod:`deployguard.secrets`."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from deployguard.secrets import Redactor

if TYPE_CHECKING:
    from deployguard.ports import LambdaPort


def version_redactor(functions: LambdaPort, function_name: str, versions: Iterable[str | None]) -> Redactor:
    """The redactor of ``function_name`` at each of ``versions`` (None and repeats skipped): every
    value of their environments that could be a secret, plus the engine's key formats."""
    redactor = Redactor()
    for version in dict.fromkeys(v for v in versions if v):
        redactor = redactor.merge(Redactor.for_environment(functions.environment(function_name, version)))
    return redactor
