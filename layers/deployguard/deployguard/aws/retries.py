"""Retries of AWS calls: botocore's standard mode (exponential backoff with full jitter), bounded by
the invocation's deadline (``deployguard.deadlines``) as well as by a number of attempts.

Throttling is not failure: a call refused with a throttling error (Lambda's
TooManyRequestsException, CloudWatch's Throttling, ThrottlingException…) is retried after
``random(0, 1) * min(2^attempt, 5)`` seconds, up to ``CONTROL_PLANE_ATTEMPTS`` attempts, but only
while the backoff and one more attempt fit before the deadline. A backoff that would not fit is
shortened to a random part of the time left (a last chance before the deadline, jittered so that
a fleet's last retries do not land together); when no time is left, the retry is not made: the
call fails at once with the throttling error, marked ``DeadlineReached`` in its
``ResponseMetadata`` (beside botocore's own ``MaxAttemptsReached``), and the adapters' error
(``deployguard.aws.errors.aws_call``) says it was throttled until the deadline.

NOTE: why not botocore's "adaptive" mode: its client-side rate limiter sleeps *before* sending,
with no deadline, and learns the rate per client, i.e. per Lambda execution environment (one
invocation at a time): it cannot pace a fleet of environments, and it could hold a hook past the
time it must report in. The jittered backoff spreads a burst's retries as well, and stops in time.
"""

from __future__ import annotations

import random
from typing import Any, Final

from botocore.retries import standard

from deployguard import deadlines

CONTROL_PLANE_ATTEMPTS: Final = 20
"""Attempts per call (the first included); the deadline usually ends them first."""
MAX_BACKOFF: Final = 5.0
"""Seconds: the longest backoff (botocore's is 20). A fleet's clients retry often enough to keep
the quota's bucket busy (a bucket left idle while every client sleeps is throughput lost), and a
hook gets several more chances before its deadline."""
ATTEMPT_ALLOWANCE: Final = 0.5
"""Seconds kept for the retried attempt itself after its backoff, before the deadline."""
THROTTLING_CODES: Final = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "RequestThrottledException",
        "TooManyRequestsException",
        "RequestLimitExceeded",
        "RequestThrottled",
        "SlowDown",
    }
)
MIN_BACKOFF: Final = 0.05
"""Seconds: a backoff shorter than this before the deadline is not worth a retry."""
DEADLINE_REACHED: Final = "DeadlineReached"


class _DeadlineBound:
    """A ``needs-retry`` handler: botocore's standard one, vetoed when the retry would pass the deadline."""

    def __init__(self, standard_handler: Any) -> None:
        self._standard = standard_handler

    def __call__(self, **kwargs: Any) -> Any:
        delay = self._standard(**kwargs)
        if delay is None or delay is False:
            return delay
        if delay > MAX_BACKOFF:  # drawn again within the cap: full jitter, at most MAX_BACKOFF
            delay = random.uniform(0, MAX_BACKOFF)  # noqa: S311 - jitter, not secrecy
        left = deadlines.seconds_left()
        if left is None or delay + ATTEMPT_ALLOWANCE <= left:
            return delay
        room = left - ATTEMPT_ALLOWANCE
        if room >= MIN_BACKOFF:  # a last retry in the time that is left, jittered within it
            return random.uniform(MIN_BACKOFF, room)  # noqa: S311 - jitter, not secrecy
        response = kwargs.get("response")
        if response is not None and isinstance(response[1], dict):
            response[1].setdefault("ResponseMetadata", {})[DEADLINE_REACHED] = True
        return False  # NOTE: False, not None: botocore stops at the first answer that is not None


def bound_by_deadline(client: Any, max_attempts: int) -> Any:
    """Replace ``client``'s standard retry handler with one bounded by the invocation's deadline."""
    events = client.meta.events
    service = client.meta.service_model.service_id.hyphenize()
    event, unique_id = f"needs-retry.{service}", f"retry-config-{service}"
    events.unregister(event, unique_id=unique_id)
    handler = standard.register_retry_handler(client, max_attempts=max_attempts)
    events.unregister(event, unique_id=unique_id)
    events.register(event, _DeadlineBound(handler.needs_retry), unique_id=unique_id)
    return client
