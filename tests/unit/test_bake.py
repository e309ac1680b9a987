"""The bake window's logic with a controllable clock: pure functions, no AWS."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from deployguard.bake import BakeState, BakeWindow, Verdict, decide_poll, execution_name, open_window
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


def test_the_state_round_trips_through_the_workflow_and_ignores_what_rides_along() -> None:
    state = BakeState(
        deployment_id="d-1",
        lifecycle_event_hook_execution_id="exec",
        stage="prod",
        target={"function_name": "orders", "alias": "live", "current_version": "1", "target_version": "2"},  # type: ignore[arg-type]
        deployment_started_at=T0,
        window=window(),
        alarm_names=["a"],
    )
    output = state.output(decide_poll(state.window, [PASSED], T0), reason="x")

    assert (output["verdict"], output["wait_seconds"]) == ("continue", 60)
    assert BakeState.model_validate({**output, "error": {"Error": "States.ALL"}}) == state


def test_the_execution_name_is_stable_short_and_allowed() -> None:
    name = execution_name("d-ABCDEF123", "eyJlbmNyeXB0ZWREYXRhIjoi" * 10)

    assert name == execution_name("d-ABCDEF123", "eyJlbmNyeXB0ZWREYXRhIjoi" * 10)
    assert name != execution_name("d-ABCDEF123", "another execution")
    assert len(name) <= 80 and name.replace("-", "").isalnum()
