"""Plaintext-secret detection, and the promise that a secret value never reaches any output."""

from __future__ import annotations

import json
import string
from dataclasses import replace
from datetime import date

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from deployguard.config_check import validate_config
from deployguard.findings import CheckResult, Result
from deployguard.outcome import OutcomeRecord, Role, json_types
from deployguard.policy import ConfigRules, ValueRule
from deployguard.secrets import Redactor, detect_key_formats, is_reference, is_secret_name, parse_reference
from deployguard.snapshot import FunctionSnapshot
from deployguard.stages import Stage

AWS_KEY = "AKIA" + "IOSFODNN7EXAMPLE"
PRIVATE_KEY = "-----BEGIN RSA PRIVATE KEY-----\nMIIEpAIBAAKCAQEA7\n-----END RSA PRIVATE KEY-----"
GITHUB = "ghp_" + "a" * 36


@pytest.mark.parametrize(
    ("value", "kind"),
    [
        (AWS_KEY, "AWS access key id"),
        (PRIVATE_KEY, "private key block"),
        (GITHUB, "GitHub token"),
        ("xoxb-" + "1234567890-abcdef", "Slack token"),
        ("sk_live_" + "0123456789abcdefABCD", "Stripe key"),
        ("postgres://app:hunter2@db.staging.example.com/orders", "password in a URL"),
    ],
)
def test_well_known_key_formats_are_recognised(value: str, kind: str) -> None:
    assert kind in detect_key_formats(value)


@pytest.mark.parametrize(
    "value", ["postgres://db.staging.example.com/orders", "staging", "https://api.example.com", "12345"]
)
def test_ordinary_config_is_not_a_secret(value: str) -> None:
    assert detect_key_formats(value) == []


@pytest.mark.parametrize("name", ["DB_PASSWORD", "JWT_SECRET", "GITHUB_TOKEN", "STRIPE_API_KEY", "APIKEY"])
def test_secret_names(name: str) -> None:
    assert is_secret_name(name)


@pytest.mark.parametrize("name", ["DB_PASSWORD_PARAM", "SECRET_ARN", "TOKEN_TTL", "STAGE"])
def test_names_that_point_at_secrets_are_not_secret_names(name: str) -> None:
    assert not is_secret_name(name)


def test_references_are_recognised() -> None:
    secret_arn = "arn:aws:secretsmanager:us-east-1:123456789012:secret:db-AbCdEf"
    assert parse_reference(secret_arn) is not None
    reference = parse_reference("arn:aws:ssm:us-east-1:123456789012:parameter/app/db")
    assert reference is not None and reference.identifier == "/app/db"
    assert is_reference("{{resolve:secretsmanager:db}}")
    assert not is_reference("hunter2")


def _all_outputs(snapshot: FunctionSnapshot) -> str:
    """Everything a guard would emit about this configuration: findings and the outcome record."""
    findings = validate_config(
        snapshot,
        None,
        ConfigRules(
            required=list(snapshot.environment),
            rules=[
                ValueRule(variable=name, deny=["prod"], allow=["staging"]) for name in snapshot.environment
            ],
        ),
        Stage.STAGING,
        reference_exists=lambda _ref: False,
        today=date(2026, 11, 28),
    )
    record = OutcomeRecord(
        role=Role.PRE_TRAFFIC,
        checks=[CheckResult(name="config", result=Result.FAILED, findings=findings, message="x")],
        reason="; ".join(f.message for f in findings),
    ).redacted(Redactor.for_environment(snapshot.environment))
    return json.dumps(record.document()) + json.dumps(json_types(findings))


secret_text = st.text(
    alphabet=string.ascii_letters + string.digits + "!@#$%^&*()_+-=/\"'\\\n ", min_size=8, max_size=60
)
key_shaped = st.one_of(
    st.text(alphabet=string.ascii_uppercase + "234567", min_size=16, max_size=16).map(lambda s: "AKIA" + s),
    st.text(alphabet=string.ascii_letters + string.digits, min_size=36, max_size=50).map(
        lambda s: "ghp_" + s
    ),
    st.text(alphabet=string.ascii_letters + string.digits, min_size=8, max_size=30).map(
        lambda s: f"postgres://app:{s}@db.staging.example.com/orders"
    ),
)


@settings(max_examples=150, deadline=None)
@given(
    value=st.one_of(secret_text, key_shaped), name=st.sampled_from(["DB_PASSWORD", "API_KEY", "APP_TOKEN"])
)
def test_a_secret_value_never_appears_in_any_output(value: str, name: str) -> None:
    snapshot = FunctionSnapshot(
        function_name="orders", version="2", environment={name: value, "STAGE": "staging", "PLAIN": value}
    )

    secret = value.split(":", 2)[-1].split("@", maxsplit=1)[0] if value.startswith("postgres") else value
    # a value that is part of what any record says anyway (a key such as "schema_version") proves nothing
    innocuous = replace(snapshot, environment={name: "x", "STAGE": "staging", "PLAIN": "x"})
    assume(secret not in _all_outputs(innocuous))

    output = _all_outputs(snapshot)

    assert secret not in output


@settings(max_examples=100, deadline=None)
@given(value=key_shaped)
def test_key_formats_in_ordinarily_named_variables_are_masked_too(value: str) -> None:
    snapshot = FunctionSnapshot(function_name="orders", version="2", environment={"SETTING": value})

    output = _all_outputs(snapshot)

    assert value not in output
    assert "SEC001" in output
