"""Translate botocore errors into :class:`deployguard.errors.AwsCallError` — one place for it."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

from botocore.exceptions import BotoCoreError, ClientError

from deployguard.aws.retries import DEADLINE_REACHED, THROTTLING_CODES
from deployguard.errors import AwsCallError
from deployguard.secrets import Redactor

T = TypeVar("T")

# An AWS error message is kept whole up to this many characters, after a formats-only redaction:
# the record redacts it again with the invocation's redactor, and only then clips it.
AWS_MESSAGE_MAX = 4096


def error_code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", "Unknown"))


@contextmanager
def aws_call(operation: str) -> Iterator[None]:
    """Run one AWS call; a failure becomes AwsCallError naming the operation and the error code.

    Only the error code and botocore's message travel on. An AWS message can echo a parameter's
    value (a ValidationException quoting what it rejected), and no redactor that knows the
    function's values exists yet here: the message is redacted with the key formats first, then
    bounded to AWS_MESSAGE_MAX (never clipped short before redaction: the invocation's redactor
    masks it whole when the record is written, then clips it).
    """
    try:
        yield
    except ClientError as exc:
        message = Redactor().clip(str(exc.response.get("Error", {}).get("Message", "")), AWS_MESSAGE_MAX)
        code, metadata = error_code(exc), exc.response.get("ResponseMetadata", {})
        raise AwsCallError(
            operation,
            code,
            message,
            throttled=code in THROTTLING_CODES,
            out_of_time=bool(metadata.get(DEADLINE_REACHED)),
            attempts=int(metadata.get("RetryAttempts", 0)) + 1,
        ) from exc
    except BotoCoreError as exc:  # timeouts, connection errors, retries exhausted
        raise AwsCallError(operation, type(exc).__name__, "no answer from AWS") from exc


def unless(codes: set[str], operation: str, call: Callable[[], T]) -> T | None:
    """Run one AWS call; None when it fails with one of ``codes`` (an expected answer such as
    'not found' or 'already completed'); any other failure becomes AwsCallError."""
    with aws_call(operation):
        try:
            return call()
        except ClientError as exc:
            if error_code(exc) in codes:
                return None
            raise
