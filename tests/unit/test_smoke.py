"""The smoke engine: expectations, errors, latency budgets, timeouts and the hook deadline."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from deployguard.errors import AwsCallError, DeployGuardError
from deployguard.findings import Result
from deployguard.policy import Expectation, FunctionPolicy, Policy, SmokeCase, inline_payloads
from deployguard.smoke import check_expectation, json_equal, run_smoke
from deployguard.snapshot import InvocationResult
from deployguard.stages import Stage


def answer(body: Any, *, error: str | None = None, latency_ms: float = 5.0) -> InvocationResult:
    return InvocationResult(
        function_error=error, payload=json.dumps(body).encode(), executed_version="2", latency_ms=latency_ms
    )


def case(**fields: Any) -> SmokeCase:
    return SmokeCase.model_validate({"name": "quote", "payload": {"action": "quote"}, **fields})


def test_a_string_where_a_number_is_expected_fails_and_says_so() -> None:
    problem = check_expectation({"total": "12.00"}, Expectation(path="$.total", equals=12))

    assert (
        problem
        == '$.total is the string "12.00" but the number 12 was expected: return a number, not a string'
    )


@pytest.mark.parametrize(
    ("body", "expectation", "ok"),
    [
        ({"total": 12.0}, {"path": "$.total", "equals": 12}, True),
        ({"total": True}, {"path": "$.total", "equals": 1}, False),
        ({"items": [{"sku": "A-1"}]}, {"path": "$.items[0].sku", "regex": "^A-"}, True),
        ({"items": [{"sku": "A-1"}]}, {"path": "$.items[-1].sku", "equals": "B"}, False),
        ({"id": "ord-1"}, {"path": "$.id", "type": "string"}, True),
        ({"n": 2.5}, {"path": "$.n", "type": "integer"}, False),
        ({"n": 2}, {"path": "$.n", "type": "integer"}, True),
        ({}, {"path": "$.missing", "exists": False}, True),
        ({}, {"path": "$.missing", "exists": True}, False),
        ({"a": {"b c": 1}}, {"path": "$.a['b c']", "equals": 1}, True),
        ({"x": None}, {"path": "$.x", "equals": None}, True),
        ({"x": 0}, {"path": "$.x", "equals": None}, False),
    ],
)
def test_expectations(body: Any, expectation: dict[str, Any], ok: bool) -> None:
    assert (check_expectation(body, Expectation.model_validate(expectation)) is None) is ok


def test_json_equality_is_type_strict() -> None:
    assert json_equal({"a": [1, 2.0]}, {"a": [1.0, 2]})
    assert not json_equal("12", 12)
    assert not json_equal(0, False)


def test_passing_and_failing_cases_are_reported_in_policy_order() -> None:
    cases = [
        case(name="good", expect=[{"path": "$.total", "equals": 12}]),
        case(name="bad", expect=[{"path": "$.total", "equals": 13}]),
    ]

    results = run_smoke(cases, lambda _payload: answer({"total": 12}), concurrency=4)

    assert [(r.name, r.result) for r in results] == [
        ("smoke:good", Result.PASSED),
        ("smoke:bad", Result.FAILED),
    ]
    assert "$.total is 12 but 13 was expected" in results[1].message


def test_a_function_error_fails_with_its_type_and_message() -> None:
    body = {"errorType": "OperationalError", "errorMessage": "no such column: profile_image"}

    (result,) = run_smoke([case()], lambda _p: answer(body, error="Unhandled"), concurrency=1)

    assert result.result is Result.FAILED
    assert result.message == "the function raised OperationalError: no such column: profile_image"


def test_a_function_error_can_be_expected() -> None:
    body = {"errorType": "ValueError", "errorMessage": "unknown sku"}
    expected = case(allow_function_error=True, expect=[{"path": "$.errorType", "equals": "ValueError"}])

    (result,) = run_smoke([expected], lambda _p: answer(body, error="Unhandled"), concurrency=1)

    assert result.result is Result.PASSED


def test_latency_over_budget_fails() -> None:
    (result,) = run_smoke([case(max_latency_ms=100)], lambda _p: answer({}, latency_ms=250), concurrency=1)

    assert result.result is Result.FAILED
    assert "took 250 ms; the budget is 100 ms" in result.message


def test_a_case_that_hangs_fails_at_its_own_timeout_while_others_finish() -> None:
    release = threading.Event()

    def invoker(payload: bytes) -> InvocationResult:
        if json.loads(payload)["action"] == "hang":
            release.wait(5)
        return answer({})

    cases = [case(name="hang", payload={"action": "hang"}, timeout_ms=200), case(name="fine")]
    started = time.monotonic()
    try:
        results = run_smoke(cases, invoker, concurrency=2)
        returned_after = time.monotonic() - started
    finally:
        release.set()

    assert [r.result for r in results] == [Result.FAILED, Result.PASSED]
    assert "no answer within 200 ms" in results[0].message
    assert returned_after < 3.5  # it returned at the case's timeout, not when the invocation did


def test_the_hook_deadline_stops_unfinished_cases() -> None:
    release = threading.Event()
    try:
        results = run_smoke(
            [case(timeout_ms=60_000)],
            lambda _p: (release.wait(5), answer({}))[1],
            concurrency=1,
            deadline=time.monotonic() + 0.2,
        )
    finally:
        release.set()

    assert results[0].result is Result.FAILED
    assert "hook deadline" in results[0].message


def test_an_aws_error_is_an_error_result_not_a_crash() -> None:
    def invoker(_payload: bytes) -> InvocationResult:
        raise AwsCallError("Invoke", "TooManyRequestsException", "Rate exceeded")

    (result,) = run_smoke([case()], invoker, concurrency=1)

    assert result.result is Result.ERROR
    assert "Invoke failed with TooManyRequestsException" in result.message


def test_payload_files_are_inlined_relative_to_the_policy(tmp_path: Path) -> None:
    (tmp_path / "quote.json").write_text('{"action": "quote", "items": []}')
    policy = Policy(
        stage=Stage.DEV,
        functions={"f": FunctionPolicy(smoke=[SmokeCase(name="q", payload_file="quote.json")])},
    )

    inlined = inline_payloads(policy, tmp_path)

    assert inlined.functions["f"].smoke[0].payload == {"action": "quote", "items": []}
    with pytest.raises(DeployGuardError, match="payload_file: cannot read"):
        inline_payloads(policy, tmp_path / "elsewhere")


# --- what the function answered, quoted into findings: redacted first, then clipped ---------------

SECRET = "bluebird-orchard-42"  # a DB_PASSWORD value: no key format, so only its value can find it


def pieces(secret: str) -> list[str]:
    return [secret[i : i + 8] for i in range(len(secret) - 7)]


def straddling(offset: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """A function error and an answer whose secret starts at ``offset``: across the old cuts at 200
    characters (error messages) and 80 (quoted values)."""
    text = "x" * offset + SECRET + " was refused"
    return {"errorType": "ConnectError", "errorMessage": text}, {"token": text}


@pytest.mark.parametrize("offset", [150, 185, 195, 60, 70])
def test_a_secret_across_a_clip_never_survives_in_part(offset: int) -> None:
    from deployguard.outcome import OutcomeRecord, Role
    from deployguard.secrets import Redactor

    redactor = Redactor.for_environment({"DB_PASSWORD": SECRET})
    error, body = straddling(offset)
    cases = [
        case(name="raises", payload={"raises": True}),
        case(name="answers", expect=[{"path": "$.token", "equals": "other"}]),
    ]

    def invoker(payload: bytes) -> InvocationResult:
        return answer(error, error="Unhandled") if b"raises" in payload else answer(body)

    # WHEN the quotes reach a record without the redactor (kept whole), or with it (redacted, clipped)
    unredacted = run_smoke(cases, invoker, concurrency=2)
    redacted = run_smoke(cases, invoker, concurrency=2, redactor=redactor)

    # THEN the record, redacted with the invocation's redactor, holds no 8 characters of the secret
    for results in (unredacted, redacted):
        record = OutcomeRecord(role=Role.CLI, checks=results).redacted(redactor)
        text = json.dumps([(c.message, [f.message for f in c.findings]) for c in record.checks])
        assert not any(piece in text for piece in pieces(SECRET)), text
    # and with the redactor the quotes are bounded: 200 characters of an error, 80 of a value
    assert len(redacted[0].message) <= len("the function raised ConnectError: ") + 200
    assert all(len(f.message) < 300 for f in redacted[1].findings)


def _peak_concurrency(cases: int, policy: FunctionPolicy, expected: int) -> int:
    """How many of ``cases`` slow cases the engine ran at once under ``policy``'s setting.

    Each case holds on until ``expected`` run at once (or 5 s pass), then 50 ms more: on a loaded
    machine threads start late, and a case that finished before the last one started would hide
    the concurrency the engine allowed."""
    running, peak = 0, 0
    all_in = threading.Condition()

    def invoker(_payload: bytes) -> InvocationResult:
        nonlocal running, peak
        with all_in:
            running += 1
            peak = max(peak, running)
            all_in.notify_all()
            all_in.wait_for(lambda: peak >= expected, timeout=5)
        time.sleep(0.05)
        with all_in:
            running -= 1
        return answer({})

    run_smoke([case(name=f"c{i}") for i in range(cases)], invoker, concurrency=policy.smoke_concurrency)
    return peak


@pytest.mark.parametrize(("cases", "expected"), [(1, 1), (10, 10), (40, 32)])
def test_without_a_setting_every_case_runs_at_once_up_to_32(cases: int, expected: int) -> None:
    assert _peak_concurrency(cases, FunctionPolicy(), expected) == expected


def test_a_policys_smoke_concurrency_holds_the_cases_back() -> None:
    assert _peak_concurrency(10, FunctionPolicy(smoke_concurrency=3), 3) == 3
