"""The guard policy: parsing, strictness, and errors that name the path and the fix."""

from __future__ import annotations

import json

import pytest

from deployguard.policy import InvalidPolicyError, load_policy, policy_json_schema
from deployguard.stages import Stage

VALID = """
version: 1
stage: staging
functions:
  orders:
    match: deployguard-staging-orders
    config:
      required: [DATABASE_URL]
      rules:
        - variable: DATABASE_URL
          part: host
          allow: ['\\.staging\\.']
          deny: ['\\.prod\\.']
    smoke:
      - name: quote
        payload: {action: quote}
        expect:
          - {path: $.total, equals: 12}
        max_latency_ms: 500
  "billing-*": {}
"""


def test_a_valid_policy_loads_with_defaults() -> None:
    policy = load_policy(VALID, stage=Stage.STAGING)

    orders = policy.functions["orders"]
    assert orders.config.stage_variable is None  # off unless set: existing apps have no STAGE variable
    assert orders.config.drift.removed_variables == "error"
    assert orders.smoke[0].expect[0].equals == 12
    assert policy.unguarded == "fail"


def test_functions_are_matched_by_name_arn_and_glob() -> None:
    policy = load_policy(VALID)

    assert policy.for_function("deployguard-staging-orders") is not None
    arn = "arn:aws:lambda:us-east-1:123456789012:function:deployguard-staging-orders:live"
    match = policy.for_function(arn)
    assert match is not None and match[0] == "orders"
    glob = policy.for_function("billing-api")
    assert glob is not None and glob[0] == "billing-*"
    assert policy.for_function("unknown") is None


def _issues(text: str) -> dict[str, tuple[str, str]]:
    with pytest.raises(InvalidPolicyError) as caught:
        load_policy(text, "p.yaml")
    return {i.path: (i.problem, i.fix) for i in caught.value.issues}


def test_every_error_is_reported_with_its_path_and_fix() -> None:
    issues = _issues(
        """
version: 1
stage: staging
functions:
  orders:
    confg: {}
    smoke:
      - name: a
        expect: [{path: $.x}]
      - name: b
        expect: [{path: $.x, equals: 1}]
      - name: c
        max_latency_ms: -5
        expect: [{path: $.y, eqals: 2}]
"""
    )

    assert issues["functions.orders.confg"][1].startswith("did you mean 'config'?")
    assert "one of 'equals'" in issues["functions.orders.smoke[0].expect[0]"][0]
    assert "greater than or equal to 1" in issues["functions.orders.smoke[2].max_latency_ms"][0]
    assert "functions.orders.smoke[2].expect[0].eqals" in issues
    assert "functions.orders.smoke[1].expect[0]" not in str(issues.keys())


@pytest.mark.parametrize(
    ("text", "path", "words"),
    [
        ("version: 2\nstage: dev\nfunctions: {a: {}}", "version", "1"),
        ("version: 1\nstage: qa\nfunctions: {a: {}}", "stage", "dev"),
        ("version: 1\nstage: dev\nfunctions: {}", "functions", "at least 1"),
        ("version: 1\nstage: dev\nfunctions: {a: {smoke: [{name: x}, {name: x}]}}", "functions.a", "unique"),
        (
            "version: 1\nstage: dev\nfunctions: {a: {config: {rules: [{variable: X}]}}}",
            "functions.a.config.rules[0]",
            "allow",
        ),
        (
            "version: 1\nstage: dev\nfunctions: {a: {config: {rules: [{variable: X, deny: ['(']}]}}}",
            "functions.a.config.rules[0].deny",
            "regular expression",
        ),
        ("version: 1\nstage: dev\nfunctions: {a: {bake: {minutes: 60}}}", "functions.a.bake.minutes", "55"),
    ],
)
def test_semantic_errors_name_the_field(text: str, path: str, words: str) -> None:
    issues = _issues(text)

    assert path in issues, issues
    assert words in issues[path][0]


def test_a_policy_for_another_stage_is_refused() -> None:
    with pytest.raises(InvalidPolicyError) as caught:
        load_policy(VALID, "ssm:/deployguard/prod/policy", stage=Stage.PROD)

    (issue,) = caught.value.issues
    assert issue.path == "stage"
    assert "staging policy but the guard runs in prod" in issue.problem


def test_syntax_errors_and_non_mappings_are_clear() -> None:
    assert "not valid YAML or JSON" in _issues("functions: [")["(document)"][0]
    assert "must be a mapping" in _issues("- a\n- b")["(document)"][0]


def test_json_documents_are_accepted() -> None:
    policy = load_policy(json.dumps({"version": 1, "stage": "prod", "functions": {"a": {}}}))

    assert policy.stage is Stage.PROD


def test_schema_is_strict_json_schema() -> None:
    schema = policy_json_schema()

    assert schema["additionalProperties"] is False
    assert schema["$defs"]["SmokeCase"]["additionalProperties"] is False
    assert set(schema["required"]) == {"stage", "functions"}
