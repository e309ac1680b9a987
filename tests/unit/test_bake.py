"""The bake window's logic with a controllable clock: pure functions, no AWS."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from deployguard.bake import (
    BakeState,
    BakeStepEvent,
    BakeWindow,
    Verdict,
    WorkflowDocument,
    decide_poll,
    execution_name,
    first_wait,
    open_window,
    output,
)
from deployguard.findings import CheckResult, Decision, Result
from deployguard.policy import Bake

T0 = datetime(2026, 3, 2, 17, 0, tzinfo=UTC)
PASSED = CheckResult(name="alarms", result=Result.PASSED)
INCONCLUSIVE = CheckResult(name="version-health", result=Result.INCONCLUSIVE)
FAILED = CheckResult(name="alarms", result=Result.FAILED)


def window(minutes: int = 10, poll_seconds: int = 60) -> BakeWindow:
    return open_window(T0, Bake(minutes=minutes, poll_seconds=poll_seconds))


def test_a_poll_inside_the_window_continues_after_one_interval() -> None:
    outcome = decide_poll(window(), [PASSED, INCONCLUSIVE], T0 + timedelta(minutes=3))

    assert (outcome.verdict, outcome.decision, outcome.wait_seconds) == (Verdict.CONTINUE, None, 60)


def test_the_last_wait_lands_on_the_end_of_the_window() -> None:
    outcome = decide_poll(window(), [PASSED], T0 + timedelta(minutes=9, seconds=45))

    assert outcome.wait_seconds == 15


def test_a_blocking_check_ends_the_bake_at_once() -> None:
    outcome = decide_poll(window(), [PASSED, FAILED], T0 + timedelta(seconds=1))

    assert (outcome.verdict, outcome.decision) == (Verdict.DONE, Decision.FAILED)


def test_the_poll_at_the_end_of_the_window_decides() -> None:
    assert (
        decide_poll(window(), [PASSED, INCONCLUSIVE], T0 + timedelta(minutes=10)).decision
        is Decision.SUCCEEDED
    )


def test_a_window_of_zero_minutes_decides_at_the_first_poll() -> None:
    outcome = decide_poll(window(minutes=0), [PASSED], T0)

    assert (outcome.verdict, outcome.decision) == (Verdict.DONE, Decision.SUCCEEDED)


@given(minutes=st.integers(0, 55), poll_seconds=st.integers(10, 900), late=st.integers(0, 5))
def test_any_window_ends_on_time_within_the_hook_deadline(minutes: int, poll_seconds: int, late: int) -> None:
    # GIVEN a workflow whose waits each run ``late`` seconds over (Step Functions is not exact)
    bake = window(minutes, poll_seconds)
    now, polls = T0, 0
    outcome = decide_poll(bake, [PASSED], now)
    while outcome.verdict is Verdict.CONTINUE:
        assert 1 <= outcome.wait_seconds <= poll_seconds
        now += timedelta(seconds=outcome.wait_seconds + late)
        polls += 1
        outcome = decide_poll(bake, [PASSED], now)

    # THEN it decides at or just after the end, never an hour after the hook started
    assert outcome.decision is Decision.SUCCEEDED
    assert bake.until <= now < bake.until + timedelta(seconds=poll_seconds + late)
    assert now - T0 < timedelta(minutes=59)
    assert polls <= -(-minutes * 60 // poll_seconds) + 1


EXECUTION_ID = "eyJlbmNyeXB0ZWREYXRhIjoiWjNqb0hNeWRIQWFTMmNtZz09In0="


def state(**fields: Any) -> dict[str, Any]:
    """A bake state as the workflow carries it (JSON), with ``fields`` replaced or added."""
    return {
        "deployment_id": "d-ABCDEF123",
        "lifecycle_event_hook_execution_id": EXECUTION_ID,
        "window": window().model_dump(mode="json"),
        **fields,
    }


def test_the_state_round_trips_through_the_workflow_document() -> None:
    baked = BakeState.model_validate(state(polls=3))
    document = output(baked, decide_poll(baked.window, [PASSED], T0), reason="x")

    assert (document["verdict"], document["wait_seconds"]) == ("continue", 60)
    assert BakeState.model_validate(document["state"]) == baked
    assert WorkflowDocument.model_validate({**document, "error": {"Error": "States.ALL"}}).state == baked


@pytest.mark.parametrize(
    ("forged", "rejected"),
    [
        # what an older state carried, and could be forged to pass a bake
        (
            {
                "target": {
                    "function_name": "unguarded",
                    "alias": "live",
                    "current_version": "1",
                    "target_version": "2",
                }
            },
            "target",
        ),
        ({"deployment_started_at": "2099-01-01T00:00:00+00:00"}, "deployment_started_at"),
        ({"alarm_names": ["an-alarm-that-is-always-ok"]}, "alarm_names"),
        ({"stage": "dev"}, "stage"),
    ],
)
def test_the_state_holds_ids_window_and_counters_only(forged: dict[str, Any], rejected: str) -> None:
    with pytest.raises(ValidationError) as error:
        BakeState.model_validate(state(**forged))

    assert [e["loc"] for e in error.value.errors()] == [(rejected,)]
    assert error.value.errors()[0]["type"] == "extra_forbidden"


@pytest.mark.parametrize(
    ("fields", "said"),
    [
        ({"deployment_id": 12345}, "DeploymentId must be a string"),
        ({"lifecycle_event_hook_execution_id": ["x"]}, "LifecycleEventHookExecutionId must be a string"),
        ({"deployment_id": "d-" + "A" * 80}, "not 82 characters"),
        ({"polls": -1}, "greater than or equal to 0"),
    ],
)
def test_the_states_ids_and_counters_are_validated(fields: dict[str, Any], said: str) -> None:
    with pytest.raises(ValidationError, match=said):
        BakeState.model_validate(state(**fields))


@pytest.mark.parametrize(
    ("started", "until"),
    [(T0, T0 - timedelta(seconds=1)), (T0, T0 + timedelta(minutes=56))],
)
def test_a_window_ends_after_it_starts_and_within_the_hook_deadline(
    started: datetime, until: datetime
) -> None:
    with pytest.raises(ValidationError, match="at most 55 minutes"):
        BakeWindow(started_at=started, until=until, poll_seconds=60)


def test_the_step_event_carries_the_document_and_the_execution_name() -> None:
    event = BakeStepEvent.model_validate(
        {
            "input": output(BakeState.model_validate(state()), decide_poll(window(), [PASSED], T0)),
            "execution_name": execution_name("d-ABCDEF123", EXECUTION_ID),
        }
    )

    assert event.action == "poll"
    assert event.input.state.deployment_id == "d-ABCDEF123"
    with pytest.raises(ValidationError, match="execution_name"):
        BakeStepEvent.model_validate({"input": event.input.model_dump(mode="json")})


def test_the_execution_name_is_stable_short_and_allowed() -> None:
    name = execution_name("d-ABCDEF123", "eyJlbmNyeXB0ZWREYXRhIjoi" * 10)

    assert name == execution_name("d-ABCDEF123", "eyJlbmNyeXB0ZWREYXRhIjoi" * 10)
    assert name != execution_name("d-ABCDEF123", "another execution")
    assert len(name) <= 80 and name.replace("-", "").isalnum()


def test_bakes_started_in_the_same_second_poll_at_different_seconds_of_the_interval() -> None:
    # GIVEN 100 deployments whose bakes open in the same second (a fleet deployed at once)
    opened = window(minutes=30, poll_seconds=60)
    waits = [first_wait(opened, T0, f"d-{index:09d}") for index in range(100)]

    # THEN their first polls (and every later one, a poll interval apart) spread over the minute:
    # no second holds more than DescribeAlarms' 9 calls per second
    per_second = Counter(wait % 60 for wait in waits)
    assert all(60 <= wait < 120 for wait in waits)  # one interval, and the phase: never sooner
    assert len(per_second) >= 40
    assert max(per_second.values()) <= 9
    # AND a retried hook starts the same schedule
    assert first_wait(opened, T0, "d-000000007") == waits[7]
