"""Retries bounded by the invocation's deadline (``deployguard.aws.retries``), around botocore's own
retry handler: no AWS, the standard handler's answers are given."""

from __future__ import annotations

import time
from typing import Any

from deployguard.aws.retries import ATTEMPT_ALLOWANCE, DEADLINE_REACHED, MAX_BACKOFF, _DeadlineBound
from deployguard.deadlines import deadline_at, in_context, seconds_left


def retry_after(standard_delay: float | None, *, left: float | None) -> tuple[Any, dict[str, Any]]:
    """What the bounded handler answers when botocore's would wait ``standard_delay`` (None: no retry)
    with ``left`` seconds to the deadline; and the parsed response it may mark."""
    parsed: dict[str, Any] = {"Error": {"Code": "TooManyRequestsException"}}
    handler = _DeadlineBound(lambda **_kwargs: standard_delay)
    with deadline_at(None if left is None else time.monotonic() + left):
        answer = handler(response=(None, parsed), attempts=3)
    return answer, parsed


def test_without_a_deadline_botocores_backoff_stands_up_to_the_cap() -> None:
    assert retry_after(1.5, left=None)[0] == 1.5
    assert 0 <= retry_after(16.0, left=None)[0] <= MAX_BACKOFF


def test_a_retry_that_fits_before_the_deadline_is_made_as_botocore_says() -> None:
    assert retry_after(2.0, left=10.0)[0] == 2.0


def test_a_backoff_past_the_deadline_is_shortened_into_the_time_left() -> None:
    for _ in range(50):
        delay, _parsed = retry_after(4.0, left=3.0)
        assert 0 < delay <= 3.0 - ATTEMPT_ALLOWANCE


def test_with_no_time_left_the_call_gives_up_at_once_and_says_why() -> None:
    answer, parsed = retry_after(1.0, left=0.3)

    assert answer is False  # not None: botocore stops at the first answer that is not None
    assert parsed["ResponseMetadata"][DEADLINE_REACHED] is True


def test_no_retry_stays_no_retry() -> None:
    assert retry_after(None, left=10.0)[0] is None


def test_a_nested_deadline_never_extends_the_outer_one_and_work_on_a_thread_carries_it() -> None:
    from concurrent.futures import ThreadPoolExecutor

    with deadline_at(time.monotonic() + 5), deadline_at(time.monotonic() + 60):
        inner = seconds_left()
        with ThreadPoolExecutor(max_workers=1) as pool:
            carried = pool.submit(in_context(seconds_left)).result()
            bare = pool.submit(seconds_left).result()

    assert inner is not None and inner <= 5
    assert carried is not None and carried <= 5
    assert bare is None  # a thread does not inherit context variables unless handed them
    assert seconds_left() is None
