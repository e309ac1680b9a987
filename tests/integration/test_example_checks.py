"""The sample custom check (examples/custom_checks/table_schema) against moto's Lambda and DynamoDB:
it passes a release whose table exists with the expected keys and fails one that does not."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import boto3
import pytest

from tests.support.aws import Version, function_with_versions
from tests.support.handlers import FakeLambdaContext, load_module

pytestmark = pytest.mark.usefixtures("aws")

SAMPLE = Path(__file__).resolve().parents[2] / "examples" / "custom_checks" / "table_schema" / "app.py"


def table(name: str, keys: list[tuple[str, str]]) -> None:
    boto3.client("dynamodb").create_table(
        TableName=name,
        KeySchema=[{"AttributeName": k, "KeyType": t} for k, t in keys],
        AttributeDefinitions=[{"AttributeName": k, "AttributeType": "S"} for k, _ in keys],
        BillingMode="PAY_PER_REQUEST",
    )


@pytest.fixture
def run_check(monkeypatch: pytest.MonkeyPatch) -> Callable[[dict[str, str]], dict[str, Any]]:
    """The sample check, expecting keys (pk, sk), judging version 2 of 'orders' with ``environment``."""
    monkeypatch.setenv("EXPECTED_KEYS", "pk:HASH,sk:RANGE")
    sample = load_module(SAMPLE, "example_table_schema_check")

    def run(environment: dict[str, str]) -> dict[str, Any]:
        function_with_versions("orders", [Version(), Version(environment=environment)])
        arn = boto3.client("lambda").get_function_configuration(FunctionName="orders", Qualifier="2")[
            "FunctionArn"
        ]
        event = {
            "deployment_id": "d-EXAMPLE11",
            "lifecycle_event": "BeforeAllowTraffic",
            "stage": "staging",
            "function_name": "orders",
            "alias": "live",
            "target_version": "2",
            "target_version_arn": arn,
            "previous_version": "1",
        }
        answer: dict[str, Any] = sample.handler(event, FakeLambdaContext())
        return answer

    return run


def codes(answer: dict[str, Any]) -> list[str]:
    return [f["code"] for f in answer["findings"]]


def test_the_table_with_the_expected_keys_passes(
    run_check: Callable[[dict[str, str]], dict[str, Any]],
) -> None:
    table("orders-staging", [("pk", "HASH"), ("sk", "RANGE")])

    assert run_check({"TABLE_NAME": "orders-staging"}) == {"result": "pass", "findings": []}


def test_a_missing_table_fails_naming_it(run_check: Callable[[dict[str, str]], dict[str, Any]]) -> None:
    answer = run_check({"TABLE_NAME": "orders-stagign"})

    assert answer["result"] == "fail" and codes(answer) == ["TABLE002"]
    assert "orders-stagign" in answer["findings"][0]["message"]


def test_a_table_with_other_keys_fails_showing_both(
    run_check: Callable[[dict[str, str]], dict[str, Any]],
) -> None:
    table("orders-staging", [("id", "HASH")])

    answer = run_check({"TABLE_NAME": "orders-staging"})

    assert answer["result"] == "fail" and codes(answer) == ["TABLE003"]
    assert (
        "has keys (id:HASH) but the release expects (pk:HASH, sk:RANGE)" in answer["findings"][0]["message"]
    )


def test_a_version_without_the_variable_fails(run_check: Callable[[dict[str, str]], dict[str, Any]]) -> None:
    answer = run_check({})

    assert answer["result"] == "fail" and codes(answer) == ["TABLE001"]


def test_an_invalid_setting_is_refused_with_the_fix() -> None:
    sample = load_module(SAMPLE, "example_table_schema_check")

    with pytest.raises(ValueError, match="EXPECTED_KEYS must look like 'pk:HASH'"):
        sample.expected_keys("pk:PRIMARY")
