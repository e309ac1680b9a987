"""Custom checks without AWS: how a check function's answer is judged, which functions and
qualifiers are invoked, and what the policy accepts."""

from __future__ import annotations

import json
from typing import Any

import pytest

from deployguard.custom_checks import (
    CheckContext,
    check_context,
    judge_answer,
    run_custom_checks,
    split_function,
)
from deployguard.policy import CustomCheck, FunctionPolicy, InvalidPolicyError, load_policy
from deployguard.secrets import Redactor
from deployguard.snapshot import InvocationResult

CHECK = CustomCheck(name="table", function="orders-table-check")
CONTEXT = CheckContext(
    deployment_id="d-EXAMPLE11",
    stage="staging",
    application="orders",
    function_name="orders",
    alias="live",
    target_version="2",
    target_version_arn="arn:aws:lambda:us-east-1:123456789012:function:orders:2",
    current_version="1",
)


def answered(payload: Any, *, error: str | None = None, raw: bytes | None = None) -> InvocationResult:
    body = raw if raw is not None else json.dumps(payload).encode()
    return InvocationResult(function_error=error, payload=body, executed_version="$LATEST", latency_ms=5)


@pytest.mark.parametrize(
    ("answer", "result", "codes"),
    [
        ({"result": "pass"}, "passed", []),
        (
            {"result": "pass", "findings": [{"code": "W", "level": "warning", "message": "slow"}]},
            "warned",
            ["CHK001"],
        ),
        ({"result": "fail", "findings": []}, "failed", ["CHK001"]),
        (
            {"result": "pass", "findings": [{"code": "E", "level": "error", "message": "bad"}]},
            "failed",
            ["CHK001"],
        ),
        ({"result": "ok"}, "failed", ["CHK004"]),
        (
            {"result": "pass", "findings": [{"code": "E", "level": "fatal", "message": "x"}]},
            "failed",
            ["CHK004"],
        ),
        ({"result": "pass", "findings": "none"}, "failed", ["CHK004"]),
        (["pass"], "failed", ["CHK004"]),
        (None, "failed", ["CHK004"]),
    ],
)
def test_an_answer_passes_only_when_it_says_pass_in_the_contracts_shape(
    answer: Any, result: str, codes: list[str]
) -> None:
    judged = judge_answer(CHECK, answered(answer), Redactor())

    assert (judged.result, sorted({f.code for f in judged.findings})) == (result, codes)


def test_an_answer_that_is_not_json_or_a_raised_error_fails() -> None:
    garbled = judge_answer(CHECK, answered(None, raw=b"<html>"), Redactor())
    raised = judge_answer(
        CHECK, answered({"errorType": "KeyError", "errorMessage": "'TABLE'"}, error="Unhandled"), Redactor()
    )

    assert garbled.findings[0].code == "CHK004" and "not JSON" in garbled.message
    assert raised.findings[0].code == "CHK003" and "raised KeyError: 'TABLE'" in raised.message


def test_the_findings_a_check_reports_are_bounded() -> None:
    many = [{"code": f"W{i}", "level": "warning", "message": "m" * 1000} for i in range(100)]

    judged = judge_answer(CHECK, answered({"result": "pass", "findings": many}), Redactor())

    assert judged.result == "warned" and len(judged.findings) == 21
    assert judged.findings[-1].message == "80 more finding(s)"
    assert all(len(f.message) <= 300 for f in judged.findings)


@pytest.mark.parametrize(
    ("function", "expected"),
    [
        ("orders-check", ("orders-check", "$LATEST")),
        ("orders-check:live", ("orders-check", "live")),
        (
            "arn:aws:lambda:us-east-1:123456789012:function:orders-check",
            ("arn:aws:lambda:us-east-1:123456789012:function:orders-check", "$LATEST"),
        ),
        (
            "arn:aws:lambda:us-east-1:123456789012:function:orders-check:3",
            ("arn:aws:lambda:us-east-1:123456789012:function:orders-check", "3"),
        ),
    ],
)
def test_a_check_function_is_a_name_or_an_arn_with_an_optional_qualifier(
    function: str, expected: tuple[str, str]
) -> None:
    assert split_function(function) == expected


def test_the_context_names_the_deployment_and_the_lifecycle_event() -> None:
    event = check_context(CONTEXT, "post_traffic", CHECK)

    assert event["lifecycle_event"] == "AfterAllowTraffic"
    assert (event["target_version_arn"], event["previous_version"]) == (CONTEXT.target_version_arn, "1")


def test_only_the_checks_of_the_phase_run() -> None:
    invoked: list[tuple[str, str]] = []

    class Functions:
        def invoke(self, function_name: str, qualifier: str, payload: bytes, **_: Any) -> InvocationResult:
            invoked.append((function_name, json.loads(payload)["lifecycle_event"]))
            return answered({"result": "pass"})

    checks = [
        CustomCheck(name="a", function="a", when=["pre_traffic"]),
        CustomCheck(name="b", function="b", when=["post_traffic"]),
        CustomCheck(name="c", function="c"),
    ]

    results = run_custom_checks(checks, "pre_traffic", CONTEXT, Functions())  # type: ignore[arg-type]

    assert [r.name for r in results] == ["custom:a", "custom:c"]
    assert sorted(invoked) == [("a", "BeforeAllowTraffic"), ("c", "BeforeAllowTraffic")]


def test_the_policy_refuses_repeated_check_names_and_unknown_phases() -> None:
    base: dict[str, Any] = {"version": 1, "stage": "staging", "functions": {"orders": {}}}
    repeated = {**base, "functions": {"orders": {"custom_checks": [{"name": "a", "function": "x"}] * 2}}}
    phase = {
        **base,
        "functions": {"orders": {"custom_checks": [{"name": "a", "function": "x", "when": ["later"]}]}},
    }

    with pytest.raises(InvalidPolicyError, match="custom check names must be unique; repeated: a"):
        load_policy(json.dumps(repeated))
    with pytest.raises(InvalidPolicyError, match="when"):
        load_policy(json.dumps(phase))
    assert FunctionPolicy().custom_checks == [] and FunctionPolicy().prune is None
