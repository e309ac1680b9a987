"""The guard step every decision starts with: is the function in this stage's scope (its
``deployguard:stage`` tag), which entry guards it, and whether the policy bypasses this very
deployment (logged at WARNING once, here)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from deployguard.findings import Result, Severity
from deployguard.guard import Bypassed, Guarded, Unguarded, bypass_reason, guard_function
from deployguard.policy import Policy, load_policy
from deployguard.stages import STAGE_TAG, Stage
from tests.support.outcomes import captured_output, json_lines

PROD = {STAGE_TAG: "prod"}
BYPASS = {"deployment_id": "d-HOTFIX", "reason": "hot fix for INC-7 shipping now", "approved_by": "oncall"}


def policy(unguarded: str = "fail", **orders: Any) -> Policy:
    document = {"version": 1, "stage": "prod", "unguarded": unguarded, "functions": {"orders-*": orders}}
    return load_policy(json.dumps(document), "test", stage=Stage.PROD)


def bypass_warnings(output: str) -> list[dict[str, Any]]:
    return [line for line in json_lines(output) if line.get("message") == "checks bypassed by policy"]


def test_a_function_named_by_an_entry_is_guarded_by_it_and_says_so() -> None:
    found = guard_function(
        policy(), "arn:aws:lambda:us-east-1:123456789012:function:orders-api:live", tags=PROD
    )

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
    found = guard_function(policy(unguarded), "payments", tags=PROD)

    assert isinstance(found, Unguarded)
    assert found.policy_check.result is result
    assert "payments is not named in the prod policy" in found.policy_check.message


def test_a_bypass_applies_to_its_deployment_only_and_is_logged_once_at_warning() -> None:
    with captured_output() as out:
        other = guard_function(policy(bypass=BYPASS), "orders-api", tags=PROD, deployment_id="d-OTHER")
        found = guard_function(policy(bypass=BYPASS), "orders-api", tags=PROD, deployment_id="d-HOTFIX")

    assert isinstance(other, Guarded)
    assert isinstance(found, Bypassed)
    assert (found.bypass.reason, found.bypass.approved_by) == (BYPASS["reason"], "oncall")
    (warning,) = bypass_warnings(out.getvalue())
    assert warning["level"] == "WARNING"
    assert (warning["deployment_id"], warning["function_name"]) == ("d-HOTFIX", "orders-api")


def test_without_a_deployment_nothing_is_bypassed() -> None:
    """``deployguard check`` runs before any deployment: a bypass cannot apply."""
    with captured_output() as out:
        found = guard_function(policy(bypass=BYPASS), "orders-api", tags=PROD)

    assert isinstance(found, Guarded)
    assert bypass_warnings(out.getvalue()) == []


def test_the_bypass_reason_names_what_was_skipped_who_approved_and_why() -> None:
    found = guard_function(policy(bypass=BYPASS), "orders-api", tags=PROD, deployment_id="d-HOTFIX")
    assert isinstance(found, Bypassed)

    assert bypass_reason(found.bypass) == (
        "checks bypassed by policy for this deployment: hot fix for INC-7 shipping now (approved by oncall)"
    )
    assert bypass_reason(found.bypass, skipped="rollback").startswith("rollback bypassed by policy")


# --- scope: the deployguard:stage tag, not the name ---------------------------------------------


@pytest.mark.parametrize(("unguarded", "result"), [("fail", Result.FAILED), ("pass", Result.SKIPPED)])
def test_a_function_without_the_stage_tag_is_out_of_scope_even_when_the_policy_names_it(
    unguarded: str, result: Result
) -> None:
    found = guard_function(policy(unguarded), "orders-api", tags={"team": "orders"})

    assert isinstance(found, Unguarded)
    assert found.policy_check.result is result
    (finding,) = found.policy_check.findings
    assert (finding.code, finding.subject) == ("SCP001", "deployguard:stage")
    assert finding.severity is (Severity.ERROR if unguarded == "fail" else Severity.WARNING)
    assert "orders-api has no tag deployguard:stage" in finding.message
    assert "Tags: {deployguard:stage: prod}" in finding.message  # the SAM fix
    assert found.policy_check.message == finding.message


def test_a_function_tagged_for_another_stage_is_out_of_scope_and_the_other_stage_is_named() -> None:
    found = guard_function(policy(), "orders-api", tags={STAGE_TAG: "staging"}, deployment_id="d-1")

    assert isinstance(found, Unguarded)
    assert found.policy_check.result is Result.FAILED
    (finding,) = found.policy_check.findings
    assert "tagged deployguard:stage='staging', not prod: another stage guards it" in finding.message


def test_a_tag_value_that_is_no_stage_is_not_quoted() -> None:
    found = guard_function(policy(), "orders-api", tags={STAGE_TAG: "x" * 40})

    assert isinstance(found, Unguarded)
    assert "deployguard:stage=another value" in found.policy_check.message
    assert "x" * 40 not in found.policy_check.message


def test_a_function_tagged_for_this_stage_is_guarded_whatever_its_name() -> None:
    """No naming convention: 'LegacyOrdersFn' matches no *-prod-* pattern, the tag is what counts."""
    document = {"version": 1, "stage": "prod", "functions": {"LegacyOrdersFn": {}}}
    found = guard_function(
        load_policy(json.dumps(document), "test", stage=Stage.PROD), "LegacyOrdersFn", tags=PROD
    )

    assert isinstance(found, Guarded)
    assert found.policy_check.findings == []


def test_the_scope_is_judged_before_a_bypass_applies() -> None:
    """A bypass is an entry's, and an out-of-scope function has none: its deployment is not bypassed."""
    found = guard_function(policy(bypass=BYPASS), "orders-api", tags={}, deployment_id="d-HOTFIX")

    assert isinstance(found, Unguarded)
