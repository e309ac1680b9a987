"""Each configuration rule, violated on its own, yields exactly its finding."""

from __future__ import annotations

from dataclasses import replace
from datetime import date
from typing import Any

import pytest

from deployguard.config_check import validate_config
from deployguard.findings import Severity
from deployguard.policy import (
    ConfigRules,
    DriftRules,
    ReferenceRules,
    SettingsRules,
    TimeoutBounds,
    ValueRule,
)
from deployguard.secrets import Reference
from deployguard.snapshot import FunctionSnapshot
from deployguard.stages import Stage

TODAY = date(2026, 11, 28)
GOOD_ENV = {
    "STAGE": "staging",
    "DATABASE_URL": "postgres://db.staging.example.com/orders",
    "DB_PASSWORD_PARAM": "/orders/staging/db-password",
}
RULES = ConfigRules(
    stage_variable="STAGE",
    required=["DATABASE_URL"],
    rules=[ValueRule(variable="DATABASE_URL", part="host", allow=[r"\.staging\."], deny=[r"\.prod\."])],
    references=ReferenceRules(required=["DB_PASSWORD_PARAM"]),
    settings=SettingsRules(
        timeout=TimeoutBounds(min_seconds=3, max_seconds=30),
        tracing="error",
        on_failure_destination="warning",
    ),
)


def snapshot(**changes: Any) -> FunctionSnapshot:
    base = FunctionSnapshot(
        function_name="orders",
        version="4",
        runtime="python3.12",
        timeout=10,
        environment=GOOD_ENV,
        tracing_mode="Active",
        dead_letter_target="arn:aws:sqs:us-east-1:123456789012:dlq",
    )
    return replace(base, **changes)


def check(
    target: FunctionSnapshot, current: FunctionSnapshot | None = None, rules: ConfigRules = RULES
) -> dict[str, list[str]]:
    existing = {"/orders/staging/db-password"}
    findings = validate_config(
        target,
        current,
        rules,
        Stage.STAGING,
        reference_exists=lambda r: r.identifier in existing,
        today=TODAY,
    )
    codes: dict[str, list[str]] = {}
    for finding in findings:
        codes.setdefault(finding.code, []).append(finding.message)
    return codes


def test_a_good_configuration_has_no_findings() -> None:
    assert check(snapshot(), snapshot(version="3")) == {}


@pytest.mark.parametrize(
    ("env_change", "code", "words"),
    [
        ({"DATABASE_URL": ""}, "CFG001", "DATABASE_URL is empty"),
        ({"DATABASE_URL": None}, "CFG001", "DATABASE_URL is missing"),
        ({"STAGE": "prod"}, "CFG002", "STAGE is 'prod' but this is a staging deployment"),
        ({"STAGE": None}, "CFG002", "set it to 'staging'"),
        (
            {"DATABASE_URL": "postgres://db.prod.example.com/orders"},
            "CFG003",
            "host 'db.prod.example.com' matches the denied",
        ),
        ({"DATABASE_URL": "postgres://localhost/orders"}, "CFG004", "does not match"),
        ({"AWS_KEY": "AKIA" + "IOSFODNN7EXAMPLE"}, "SEC001", "AWS access key id"),
        ({"DB_PASSWORD": "hunter2"}, "SEC002", "named like a secret but holds a literal"),
        ({"DB_PASSWORD_PARAM": "hunter2"}, "REF003", "must reference"),
        ({"DB_PASSWORD_PARAM": "/orders/staging/missing"}, "REF001", "does not exist"),
        (
            {"API_SECRET": "arn:aws:secretsmanager:us-east-1:123456789012:secret:gone-AbCdEf"},
            "REF002",
            "does not exist",
        ),
    ],
)
def test_each_environment_rule_violated_on_its_own(
    env_change: dict[str, str | None], code: str, words: str
) -> None:
    env = {k: v for k, v in {**GOOD_ENV, **env_change}.items() if v is not None}

    codes = check(snapshot(environment=env))

    assert code in codes, codes
    assert set(codes) <= {code, "CFG004"}, codes  # a denied host also fails the allow list
    assert any(words in message for message in codes[code]), codes[code]


@pytest.mark.parametrize(
    ("current_change", "code"),
    [
        ({"environment": {**GOOD_ENV, "FEATURE_FLAGS": "x"}}, "DRF001"),
        ({"runtime": "python3.11"}, "DRF002"),
        ({"architectures": ("arm64",)}, "DRF003"),
        ({"memory_size": 512}, "DRF004"),
        ({"timeout": 20}, "DRF005"),
        ({"layers": ("arn:aws:lambda:us-east-1:123456789012:layer:deps:1",)}, "DRF006"),
    ],
)
def test_each_drift_from_the_live_version(current_change: dict[str, Any], code: str) -> None:
    current = replace(snapshot(version="3"), **current_change)

    codes = check(snapshot(), current)

    assert list(codes) == [code]
    assert (
        "versions 3 and 4" in codes[code][0] or "live version 3 but missing from version 4" in codes[code][0]
    )


def test_drift_severity_comes_from_the_policy() -> None:
    rules = RULES.model_copy(update={"drift": DriftRules(runtime="warning", memory="ignore")})
    current = snapshot(version="3", runtime="python3.11", memory_size=1024)

    findings = validate_config(snapshot(), current, rules, Stage.STAGING, reference_exists=None, today=TODAY)

    assert [(f.code, f.severity) for f in findings] == [("DRF002", Severity.WARNING)]


@pytest.mark.parametrize(
    ("current_runtime", "target_runtime", "why"),
    [
        ("python3.9", "python3.12", "python3.9 is deprecated since 2025-12-15"),
        ("nodejs20.x", "nodejs24.x", "nodejs24.x is the successor of nodejs20.x"),
        ("python3.11", "python3.12", "python3.12 is supported until 2028-10-31, python3.11 until 2027-06-30"),
    ],
)
def test_an_upgrade_to_a_supported_runtime_is_never_a_drift_error(
    current_runtime: str, target_runtime: str, why: str
) -> None:
    current = snapshot(version="3", runtime=current_runtime)

    findings = validate_config(
        snapshot(runtime=target_runtime), current, RULES, Stage.STAGING, reference_exists=None, today=TODAY
    )

    assert RULES.drift.runtime == "error"
    assert [(f.code, f.severity) for f in findings] == [("DRF002", Severity.WARNING)]
    assert f"an upgrade to a supported runtime ({why})" in findings[0].message


@pytest.mark.parametrize(
    ("current_runtime", "target_runtime", "codes"),
    [
        ("python3.12", "python3.11", ["DRF002"]),  # a downgrade: supported for less long
        ("nodejs16.x", "nodejs20.x", ["DRF002", "SET001"]),  # onto a runtime deprecated already
        ("python3.12", "nodejs22.x", ["DRF002"]),  # another language: supported less long
    ],
)
def test_a_change_that_is_no_upgrade_to_a_supported_runtime_stays_a_drift_error(
    current_runtime: str, target_runtime: str, codes: list[str]
) -> None:
    current = snapshot(version="3", runtime=current_runtime)

    findings = validate_config(
        snapshot(runtime=target_runtime), current, RULES, Stage.STAGING, reference_exists=None, today=TODAY
    )

    assert sorted((f.code, f.severity) for f in findings) == [(code, Severity.ERROR) for code in codes]


def test_the_live_version_on_a_deprecated_runtime_does_not_block_the_release_that_upgrades_it() -> None:
    """SET001 judges the target version's runtime only."""
    current = snapshot(version="3", runtime="nodejs20.x")

    codes = check(snapshot(runtime="nodejs24.x"), current)

    assert "SET001" not in codes


def test_a_runtime_deprecated_later_than_today_is_not_deprecated_yet() -> None:
    """python3.10's date (2026-10-31 in cfn-lint 1.58.0) against two days."""
    before = validate_config(
        snapshot(runtime="python3.10"),
        None,
        RULES,
        Stage.STAGING,
        reference_exists=None,
        today=date(2026, 10, 30),
    )
    after = validate_config(
        snapshot(runtime="python3.10"),
        None,
        RULES,
        Stage.STAGING,
        reference_exists=None,
        today=date(2026, 10, 31),
    )

    assert before == []
    (finding,) = after
    assert finding.code == "SET001"
    assert finding.message.startswith(
        "runtime python3.10 is deprecated since 2026-10-31; Lambda blocks updating"
    )
    assert "move to python3.14 or another supported runtime" in finding.message


def test_the_stage_variable_is_not_checked_unless_the_policy_sets_it() -> None:
    """Existing apps have no STAGE variable (and adding one trips checkov CKV_AWS_173)."""
    env = {k: v for k, v in GOOD_ENV.items() if k != "STAGE"}
    rules = RULES.model_copy(update={"stage_variable": None})

    assert ConfigRules().stage_variable is None
    assert check(snapshot(environment=env), rules=rules) == {}
    assert "CFG002" in check(snapshot(environment=env))  # RULES sets stage_variable: STAGE


@pytest.mark.parametrize(
    ("change", "code"),
    [
        ({"runtime": "python3.9"}, "SET001"),
        ({"timeout": 60}, "SET002"),
        ({"timeout": 1}, "SET002"),
        ({"tracing_mode": "PassThrough"}, "SET003"),
        ({"dead_letter_target": None}, "SET004"),
    ],
)
def test_each_function_setting(change: dict[str, object], code: str) -> None:
    assert list(check(snapshot(**change))) == [code]


def test_an_on_failure_destination_satisfies_the_dlq_rule() -> None:
    target = snapshot(dead_letter_target=None, on_failure_destination="arn:aws:sqs:us-east-1:123456789012:q")

    assert check(target) == {}


def test_reference_lookups_see_only_names_never_values() -> None:
    seen: list[Reference] = []

    def exists(reference: Reference) -> bool:
        seen.append(reference)
        return True

    target = snapshot(environment={**GOOD_ENV, "DB_PASSWORD": "hunter2"})
    validate_config(target, None, RULES, Stage.STAGING, reference_exists=exists, today=TODAY)

    assert [r.identifier for r in seen] == ["/orders/staging/db-password"]


# --- issue 11: plaintext secrets the check missed, '/'-literals, URLs urlsplit rejects ------------

HEX_KEY = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
RANDOM_TOKEN = "x7Kq9Lm2PzR4tV8wB3nC6dF1"


@pytest.mark.parametrize(
    ("variable", "value", "kind"),
    [
        ("PARTNER_HMAC", HEX_KEY, "long hex string"),
        ("PARTNER_SETTING", RANDOM_TOKEN, "random-looking token"),
        ("WEBHOOK_SIGNING_KEY", HEX_KEY, "long hex string"),  # secret-named: the kind is named too
    ],
)
def test_long_hex_and_random_tokens_are_plaintext_secrets_in_any_variable(
    variable: str, value: str, kind: str
) -> None:
    codes = check(snapshot(environment={**GOOD_ENV, variable: value}))

    assert list(codes) == ["SEC001"], codes
    assert kind in codes["SEC001"][0] and value not in codes["SEC001"][0]


def test_a_hex_value_in_a_variable_named_as_an_identifier_is_not_a_secret() -> None:
    assert (
        check(snapshot(environment={**GOOD_ENV, "GIT_SHA": HEX_KEY[:40], "CONFIG_CHECKSUM": HEX_KEY})) == {}
    )


def test_a_slash_literal_in_a_secret_named_variable_is_never_looked_up_nor_quoted() -> None:
    # GIVEN a password that starts with '/', in a secret-named variable and copied into another one
    password = "/hunter2/Pa55word"
    env = {**GOOD_ENV, "DB_PASSWORD": password, "LEGACY_DB": password}
    looked_up: list[str] = []

    def exists(reference: Reference) -> bool:
        looked_up.append(reference.identifier)
        return reference.identifier != password  # were it looked up, REF001 would quote it

    # WHEN the configuration is checked, references verified
    findings = validate_config(
        snapshot(environment=env), None, RULES, Stage.STAGING, reference_exists=exists, today=TODAY
    )

    # THEN it is SEC002 (a literal), never sent to AWS as a parameter name, and no finding quotes it
    assert [(f.code, f.subject) for f in findings] == [("SEC002", "DB_PASSWORD")]
    assert "starting with '/' is taken for a literal" in findings[0].message
    assert password not in looked_up
    assert not any(password in f.message for f in findings)


def test_an_arn_in_a_secret_named_variable_is_a_reference_and_is_verified() -> None:
    arn = "arn:aws:ssm:us-east-1:123456789012:parameter/orders/staging/db-password"

    assert check(snapshot(environment={**GOOD_ENV, "DB_PASSWORD": arn})) == {}


def test_a_url_that_urlsplit_rejects_is_a_clear_finding_that_quotes_nothing_not_a_crash() -> None:
    # a fullwidth '@' (U+FF20) in the password: urlsplit raises ValueError quoting the netloc
    url = "postgres://app:hunter2\uff20Pa55@db.staging.example.com/orders"

    codes = check(snapshot(environment={**GOOD_ENV, "DATABASE_URL": url}))

    assert set(codes) == {"CFG005", "SEC001"}, codes  # the password in it is a plaintext secret too
    assert "is not a URL whose host can be read" in codes["CFG005"][0]
    assert "hunter2" not in codes["CFG005"][0]
