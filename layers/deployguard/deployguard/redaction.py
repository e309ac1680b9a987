"""One redactor per invocation, built before any check runs, from the environments of the versions a
deployment moves between: every path that writes text (records, log lines, return values, alerts,
CLI output) masks with it. The engine and its detection table are :mod:`deployguard.secrets`.

An error raised once the redactor exists leaves through :func:`redacting`: its message (and, for a
bug, its traceback) is redacted with the invocation's redactor before anything can log or record it.
Where no environment could be read yet, the formats-only ``Redactor()`` is the fallback.
"""

from __future__ import annotations

import traceback
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING

from deployguard.errors import DeployGuardError
from deployguard.findings import error_findings
from deployguard.secrets import Redactor

if TYPE_CHECKING:
    from deployguard.ports import LambdaPort

# Bounds on an error's text, applied after redaction (the record clips again, after its own).
ERROR_MESSAGE_MAX = 4096
TRACEBACK_MAX = 16384


def environments_redactor(environments: Iterable[Mapping[str, str]]) -> Redactor:
    """The redactor of several environments at once: every value of each that could be a secret,
    plus the engine's key formats."""
    redactor = Redactor()
    for environment in environments:
        redactor = redactor.merge(Redactor.for_environment(environment))
    return redactor


def version_redactor(functions: LambdaPort, function_name: str, versions: Iterable[str | None]) -> Redactor:
    """The redactor of ``function_name`` at each of ``versions`` (None and repeats skipped), read
    with one GetFunctionConfiguration per version. A caller that already holds the versions'
    snapshots builds it from their environments instead (:func:`environments_redactor`)."""
    return environments_redactor(
        functions.environment(function_name, version) for version in dict.fromkeys(v for v in versions if v)
    )


class RedactedError(DeployGuardError):
    """An error raised after the invocation's redactor was built, its text redacted with it.

    ``error_type`` and ``code`` are the original's; ``crashed`` is True for a bug (not a
    ``DeployGuardError``), whose ``traceback`` is kept, redacted, for the crash log. The original
    exception is not chained (``from None``): a traceback printed by Lambda or the CLI cannot show
    its raw message. ``redactor`` goes on to the record of the failure.
    """

    def __init__(self, error: Exception, redactor: Redactor) -> None:
        self.error_type = type(error).__name__
        self.crashed = not isinstance(error, DeployGuardError)
        self.code = "INTERNAL" if self.crashed else getattr(error, "code", DeployGuardError.code)
        self.redactor = redactor
        self.findings = error_findings(error)  # AWS001: the cause stays visible through redaction
        message = redactor.clip(str(error), ERROR_MESSAGE_MAX)
        self.traceback = (
            redactor.clip("".join(traceback.format_exception(error)), TRACEBACK_MAX) if self.crashed else ""
        )
        super().__init__(f"internal error ({self.error_type}): {message}" if self.crashed else message)


@contextmanager
def redacting(redactor: Redactor) -> Iterator[None]:
    """Any exception raised inside leaves as a :class:`RedactedError` redacted with ``redactor``
    (one already redacted passes as it is). Wrap everything a use case does after building its
    redactor."""
    try:
        yield
    except RedactedError:
        raise
    except Exception as exc:
        raise RedactedError(exc, redactor) from None
