"""The hook protocol with a stand-alone CodeDeploy fake: Failed unless checks that finish in time say
otherwise, exactly one report, and a hook that returns at its deadline whatever its checks do."""

from __future__ import annotations

import threading
import time

from deployguard import deadlines
from deployguard.errors import AwsCallError
from deployguard.findings import THROTTLED, CheckResult, Decision, Result
from deployguard.hook import Evaluate, Evaluation, HookRun
from deployguard.outcome import OutcomeRecord, failed_codes
from tests.support.outcomes import FakeCodeDeploy, captured_output, guard_event


def guard(evaluate: Evaluate, codedeploy: FakeCodeDeploy, *, remaining_ms: int = 60_000) -> OutcomeRecord:
    with captured_output():
        return guard_event(evaluate, codedeploy, remaining_ms=remaining_ms)


def test_checks_past_the_deadline_are_reported_failed_at_the_deadline_without_waiting_for_them() -> None:
    release = threading.Event()
    codedeploy = FakeCodeDeploy()

    def stuck(run: HookRun) -> Evaluation:
        release.wait(10)
        return Evaluation(checks=[CheckResult(name="config", result=Result.PASSED)])

    began = time.monotonic()
    record = guard(stuck, codedeploy, remaining_ms=1_300)  # 1 s kept in reserve: 0.3 s for the checks
    took = time.monotonic() - began
    release.set()

    assert took < 5  # not the 10 s the checks would take
    assert codedeploy.reports == [("d-ABCDEF123", "exec-1", Decision.FAILED)]
    assert [(c.name, c.result) for c in record.checks] == [("deadline", Result.ERROR)]
    assert "did not finish before the hook's deadline" in record.reason


def test_a_crashing_check_is_reported_failed_naming_the_error() -> None:
    codedeploy = FakeCodeDeploy()

    def crashing(run: HookRun) -> Evaluation:
        raise KeyError("Runtime")

    record = guard(crashing, codedeploy)

    assert codedeploy.reports == [("d-ABCDEF123", "exec-1", Decision.FAILED)]
    assert record.reason == "internal error (KeyError): 'Runtime'"


def test_a_retried_hook_runs_no_checks_and_reports_nothing() -> None:
    codedeploy = FakeCodeDeploy(already="Succeeded")
    ran: list[HookRun] = []

    def checks(run: HookRun) -> Evaluation:
        ran.append(run)
        return Evaluation()

    record = guard(checks, codedeploy)

    assert ran == [] and codedeploy.reports == []
    assert record.decision is None and "already has status Succeeded" in record.reason


def test_the_checks_see_the_hooks_deadline_so_their_aws_calls_end_by_it() -> None:
    seen: list[float | None] = []

    def checks(run: HookRun) -> Evaluation:
        seen.append(deadlines.seconds_left())
        return Evaluation(checks=[CheckResult(name="config", result=Result.PASSED)])

    guard(checks, FakeCodeDeploy(), remaining_ms=30_000)  # 1 s kept in reserve

    assert seen and seen[0] is not None and 27 < seen[0] <= 29


def test_a_check_throttled_until_the_deadline_fails_with_its_own_finding_code() -> None:
    # GIVEN a check whose AWS call was throttled until its last retry would pass the deadline
    codedeploy = FakeCodeDeploy()

    def throttled(run: HookRun) -> Evaluation:
        raise AwsCallError(
            "GetFunctionConfiguration",
            "TooManyRequestsException",
            "Rate exceeded",
            throttled=True,
            out_of_time=True,
            attempts=6,
        )

    # WHEN the hook runs
    record = guard(throttled, codedeploy)

    # THEN it fails closed, and the record says the cause is throttling (AWS001), not the release
    assert codedeploy.reports == [("d-ABCDEF123", "exec-1", Decision.FAILED)]
    (check,) = record.checks
    assert check.result is Result.ERROR
    assert [(f.code, f.subject) for f in check.findings] == [(THROTTLED, "GetFunctionConfiguration")]
    assert (
        "throttled (rate exceeded) until the hook's deadline, after 6 attempt(s)" in check.findings[0].message
    )
    assert failed_codes(check) == [THROTTLED]
    assert "throttled on 6 attempt(s) until the deadline" in record.reason
