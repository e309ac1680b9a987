"""A stage's baseline and an application's document: the merge, the floors, and where each value
of the effective policy comes from (no AWS: the documents as the store holds them)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from deployguard.errors import PolicyError
from deployguard.policy import (
    InvalidPolicyError,
    Policy,
    application_document,
    effective_policy,
    load_baseline,
    value_origins,
)
from deployguard.stages import Stage
from tests.support.policies import PROD_BASELINE

APPLICATION: dict[str, Any] = {
    "version": 1,
    "stage": "prod",
    "application": "orders",
    "functions": {
        "orders": {"match": "orders-prod", "config": {"settings": {"timeout": {"max_seconds": 15}}}},
        "workers": {"match": "orders-prod-worker-*", "bake": {"minutes": 30}},
    },
}


def effective(document: dict[str, Any], baseline: dict[str, Any] | None = None, **kwargs: Any) -> Policy:
    loaded = load_baseline(json.dumps(baseline or PROD_BASELINE))
    return effective_policy(loaded, application_document(json.dumps(document), "s3"), "s3", **kwargs)


def issues(document: dict[str, Any], baseline: dict[str, Any] | None = None) -> dict[str, str]:
    with pytest.raises(InvalidPolicyError) as caught:
        effective(document, baseline)
    return {issue.path: issue.problem for issue in caught.value.issues}


def with_entry(**entry: Any) -> dict[str, Any]:
    return {**APPLICATION, "functions": {"orders": {"match": "orders-prod", **entry}}}


def test_an_entry_is_the_baseline_defaults_with_the_application_merged_over_them() -> None:
    entry = effective(APPLICATION).functions["orders"]

    assert entry.config.settings.timeout is not None and entry.config.settings.timeout.max_seconds == 15
    assert entry.config.settings.deprecated_runtime == "error"  # the defaults' sibling key stays
    assert entry.bake.minutes == 15 and entry.bake.poll_seconds == 60  # baseline, then built-in
    assert effective(APPLICATION).functions["workers"].bake.minutes == 30


@pytest.mark.parametrize(
    ("entry", "path", "says"),
    [
        (
            {"bake": {"minutes": 5}},
            "functions.orders.bake.minutes",
            "5 is weaker than the baseline's floor bake.minutes: 10",
        ),
        (
            {"config": {"plaintext_secrets": "warning"}},
            "functions.orders.config.plaintext_secrets",
            "'warning' is weaker than the baseline's floor config.plaintext_secrets: 'error'",
        ),
        (
            {"version_health": {"max_error_rate": 0.2}},
            "functions.orders.version_health.max_error_rate",
            "0.2 is weaker than the baseline's floor version_health.max_error_rate: 0.05",
        ),
        (
            {"version_health": {"inconclusive": "pass"}},
            "functions.orders.version_health.inconclusive",
            "'pass' is weaker than the baseline's floor version_health.inconclusive: 'fail'",
        ),
    ],
)
def test_a_value_weaker_than_a_floor_names_the_floor_and_the_fix(
    entry: dict[str, Any], path: str, says: str
) -> None:
    found = issues(with_entry(**entry))

    assert found[path].startswith(says)


def test_a_stricter_value_than_the_floor_is_accepted() -> None:
    entry = effective(with_entry(bake={"minutes": 55}, version_health={"max_error_rate": 0.001})).functions[
        "orders"
    ]

    assert entry.bake.minutes == 55


def test_a_floor_on_a_section_requires_the_section() -> None:
    baseline = {**PROD_BASELINE, "floors": {"alarms.pre_existing": "block"}}

    found = issues(APPLICATION, baseline)

    assert (
        "'alarms' is not set, but the baseline's floor alarms.pre_existing is 'block'"
        in found["functions.orders.alarms.pre_existing"]
    )


def test_a_baseline_whose_defaults_break_its_own_floors_is_refused() -> None:
    weak = {**PROD_BASELINE, "defaults": {"bake": {"minutes": 1}}}

    with pytest.raises(PolicyError, match=r"defaults\.bake\.minutes: 1 is weaker than the baseline's floor"):
        load_baseline(json.dumps(weak))


def test_an_application_document_cannot_set_what_only_the_baseline_sets() -> None:
    with pytest.raises(InvalidPolicyError) as caught:
        application_document(json.dumps({**APPLICATION, "unguarded": "pass"}), "s3")

    (issue,) = caught.value.issues
    assert issue.path == "unguarded" and "the stage's baseline does" in issue.problem


def test_a_document_stored_under_another_applications_name_is_refused() -> None:
    with pytest.raises(
        InvalidPolicyError, match="this is application orders's document, stored as payments's"
    ):
        effective(APPLICATION, application="payments")


def test_a_hook_validates_only_the_entry_guarding_its_function() -> None:
    document = json.loads(json.dumps(APPLICATION))
    document["functions"]["broken"] = {"match": "other", "bake": {"minutes": "soon"}}

    policy = effective(document, function_name="orders-prod-worker-7", stage=Stage.PROD)

    assert list(policy.functions) == ["workers"]  # the glob; the broken entry was never validated
    with pytest.raises(InvalidPolicyError, match=r"functions\.broken\.bake\.minutes"):
        effective(document)  # as `policy publish` validates: every entry


def test_a_function_the_document_does_not_name_gets_a_policy_that_says_so() -> None:
    policy = effective(APPLICATION, function_name="billing-prod")

    assert policy.functions == {} and policy.unguarded == "fail"
    assert policy.unnamed_reason is not None and "application orders's document" in policy.unnamed_reason


def test_each_value_says_where_it_comes_from() -> None:
    baseline = load_baseline(json.dumps(PROD_BASELINE))
    document = application_document(json.dumps(APPLICATION), "s3")
    policy = effective_policy(baseline, document, "s3")

    origins = value_origins(baseline, document, policy)["orders"]

    assert origins["config.settings.timeout.max_seconds"] == "application"
    assert origins["bake.minutes"] == "baseline default"
    assert origins["bake.poll_seconds"] == "built-in default"
    assert origins["match"] == "application"
