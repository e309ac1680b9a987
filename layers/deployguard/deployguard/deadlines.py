"""The invocation's deadline, where every AWS call can see it: retries must not run past it.

A hook's checks run against a deadline (the Lambda's remaining time minus the reserve kept to
report); the AWS adapters' retry handler (``deployguard.aws.retries``) retries a throttled call
only while its backoff and one more attempt fit before it. The deadline is a context variable, so
concurrent invocations in one process (the load test, the CLI) each have their own; work handed to
a thread pool carries it with :func:`in_context` (a thread does not inherit context variables).
"""

from __future__ import annotations

import contextvars
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import ParamSpec, TypeVar

P = ParamSpec("P")
T = TypeVar("T")

_deadline: contextvars.ContextVar[float | None] = contextvars.ContextVar("deployguard_deadline", default=None)


@contextmanager
def deadline_at(instant: float | None) -> Iterator[None]:
    """AWS calls inside the block end by ``instant`` (a ``time.monotonic()`` value; None: no deadline).
    A nested deadline never extends an outer one."""
    outer = _deadline.get()
    if instant is not None and outer is not None:
        instant = min(instant, outer)
    token = _deadline.set(instant if instant is not None else outer)
    try:
        yield
    finally:
        _deadline.reset(token)


def seconds_left() -> float | None:
    """Seconds until the deadline of the running invocation; None when it has none."""
    instant = _deadline.get()
    return None if instant is None else instant - time.monotonic()


def in_context(call: Callable[P, T]) -> Callable[P, T]:
    """``call`` bound to the current context (deadline included), to run on another thread."""
    context = contextvars.copy_context()

    def bound(*args: P.args, **kwargs: P.kwargs) -> T:
        return context.run(call, *args, **kwargs)

    return bound
