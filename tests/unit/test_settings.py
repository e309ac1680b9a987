"""The hook functions' DEPLOYGUARD_* settings: defaults, and one error that names every bad variable."""

from __future__ import annotations

import pytest

from deployguard.settings import HookSettings, SettingsError
from deployguard.stages import Stage

BUCKET = "deployguard-staging-policies-123456789012-us-east-1"
REQUIRED = {"DEPLOYGUARD_STAGE": "staging", "DEPLOYGUARD_POLICY_BUCKET": BUCKET}


def test_only_the_stage_and_the_policy_bucket_are_required() -> None:
    settings = HookSettings.from_environ({**REQUIRED, "PATH": "/usr/bin", "DEPLOYGUARD_UNKNOWN": "x"})

    assert settings == HookSettings(stage=Stage.STAGING, policy_bucket=BUCKET)
    assert (settings.policy_cache_seconds, settings.time_reserve_seconds) == (300, 10.0)
    assert settings.bake_state_machine_arn is None and settings.alert_topic_arn is None


def test_every_variable_is_read_and_parsed() -> None:
    arn = "arn:aws:states:us-east-1:123456789012:stateMachine:bake"
    settings = HookSettings.from_environ(
        {
            **REQUIRED,
            "DEPLOYGUARD_POLICY_CACHE_SECONDS": "0",
            "DEPLOYGUARD_TIME_RESERVE_SECONDS": "2.5",
            "DEPLOYGUARD_BAKE_STATE_MACHINE_ARN": arn,
            "DEPLOYGUARD_ALERT_TOPIC_ARN": "arn:aws:sns:us-east-1:123456789012:alerts",
        }
    )

    assert settings.policy_cache_seconds == 0 and settings.time_reserve_seconds == 2.5
    assert settings.bake_state_machine_arn == arn
    assert settings.alert_topic_arn == "arn:aws:sns:us-east-1:123456789012:alerts"


def test_an_empty_optional_variable_keeps_its_default() -> None:
    """Templates pass "" when a condition leaves a value out (!If [HasTopic, !Ref Topic, ""])."""
    settings = HookSettings.from_environ(
        {**REQUIRED, "DEPLOYGUARD_ALERT_TOPIC_ARN": " ", "DEPLOYGUARD_TIME_RESERVE_SECONDS": ""}
    )

    assert settings.alert_topic_arn is None and settings.time_reserve_seconds == 10.0


@pytest.mark.parametrize(
    ("variable", "value", "says"),
    [
        ("DEPLOYGUARD_STAGE", "production", "must be one of 'dev', 'staging', 'prod', not 'production'"),
        ("DEPLOYGUARD_STAGE", "", "required, but not set"),
        (
            "DEPLOYGUARD_POLICY_BUCKET",
            "/deployguard/prod/policy",
            "must be an S3 bucket name",
        ),
        ("DEPLOYGUARD_POLICY_CACHE_SECONDS", "5m", "must be an integer, not '5m'"),
        ("DEPLOYGUARD_POLICY_CACHE_SECONDS", "7200", "must be between 0 and 3600, not 7200"),
        ("DEPLOYGUARD_TIME_RESERVE_SECONDS", "0.5", "must be between 1 and 120, not 0.5"),
        ("DEPLOYGUARD_TIME_RESERVE_SECONDS", "ten", "must be a number, not 'ten'"),
        ("DEPLOYGUARD_ALERT_TOPIC_ARN", "alerts", "must be an SNS topic ARN"),
    ],
)
def test_a_bad_variable_is_named_with_what_it_must_be(variable: str, value: str, says: str) -> None:
    with pytest.raises(SettingsError) as raised:
        HookSettings.from_environ({**REQUIRED, variable: value})

    message = str(raised.value)
    assert f"{variable}: {says}" in message
    assert message.endswith("fix the variables in template.yaml")


def test_every_bad_variable_is_named_at_once() -> None:
    with pytest.raises(SettingsError) as raised:
        HookSettings.from_environ({"DEPLOYGUARD_STAGE": "qa", "DEPLOYGUARD_POLICY_CACHE_SECONDS": "-1"})

    message = str(raised.value)
    for variable in ("DEPLOYGUARD_STAGE", "DEPLOYGUARD_POLICY_BUCKET", "DEPLOYGUARD_POLICY_CACHE_SECONDS"):
        assert variable in message
