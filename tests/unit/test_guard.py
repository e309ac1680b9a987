"""The guard step every decision starts with: which entry guards a function, and whether the policy
bypasses this very deployment (logged at WARNING once, here)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from deployguard.findings import Result
from deployguard.guard import Bypassed, Guarded, Unguarded, bypass_reason, guard_function
from deployguard.policy import Policy, load_policy
from deployguard.stages import Stage
from tests.support.outcomes import captured_output, json_lines

BYPASS = {"deployment_id": "d-HOTFIX", "reason": "hot fix for INC-7 shipping now", "approved_by": "oncall"}


def policy(unguarded: str = "fail", **orders: Any) -> Policy:
    document = {"version": 1, "stage": "prod", "unguarded": unguarded, "functions": {"orders-*": orders}}
    return load_policy(json.dumps(document), "test", stage=Stage.PROD)


def bypass_warnings(output: str) -> list[dict[str, Any]]:
    return [line for line in json_lines(output) if line.get("message") == "checks bypassed by policy"]


def test_a_function_named_by_an_entry_is_guarded_by_it_and_says_so() -> None:
    found = guard_function(policy(), "arn:aws:lambda:us-east-1:123456789012:function:orders-api:live")

    assert isinstance(found, Guarded)
    assert found.key == "orders-*"
    assert (found.policy_check.result, found.policy_check.message) == (
        Result.PASSED,
        "guarded by functions.orders-*",
    )


@pytest.mark.parametrize(("unguarded", "result"), [("fail", Result.FAILED), ("pass", Result.SKIPPED)])
def test_an_unnamed_function_is_unguarded_and_the_policy_says_whether_that_fails(
    unguarded: str, result: Result
) -> None:
    found = guard_function(policy(unguarded), "payments")

    assert isinstance(found, Unguarded)
    assert found.policy_check.result is result
    assert "payments is not named in the prod policy" in found.policy_check.message


def test_a_bypass_applies_to_its_deployment_only_and_is_logged_once_at_warning() -> None:
    with captured_output() as out:
        other = guard_function(policy(bypass=BYPASS), "orders-api", deployment_id="d-OTHER")
        found = guard_function(policy(bypass=BYPASS), "orders-api", deployment_id="d-HOTFIX")

    assert isinstance(other, Guarded)
    assert isinstance(found, Bypassed)
    assert (found.bypass.reason, found.bypass.approved_by) == (BYPASS["reason"], "oncall")
    (warning,) = bypass_warnings(out.getvalue())
    assert warning["level"] == "WARNING"
    assert (warning["deployment_id"], warning["function_name"]) == ("d-HOTFIX", "orders-api")


def test_without_a_deployment_nothing_is_bypassed() -> None:
    """``deployguard check`` runs before any deployment: a bypass cannot apply."""
    with captured_output() as out:
        found = guard_function(policy(bypass=BYPASS), "orders-api")

    assert isinstance(found, Guarded)
    assert bypass_warnings(out.getvalue()) == []


def test_the_bypass_reason_names_what_was_skipped_who_approved_and_why() -> None:
    found = guard_function(policy(bypass=BYPASS), "orders-api", deployment_id="d-HOTFIX")
    assert isinstance(found, Bypassed)

    assert bypass_reason(found.bypass) == (
        "checks bypassed by policy for this deployment: hot fix for INC-7 shipping now (approved by oncall)"
    )
    assert bypass_reason(found.bypass, skipped="rollback").startswith("rollback bypassed by policy")
