"""Lambda's function-configuration limits on the embedded AWS (``localaws/moto_lambda_limits.py``):
CreateFunction and UpdateFunctionConfiguration refuse what AWS refuses, with AWS's error code, and a
template ``sam deploy`` would fail on fails its rehearsal too.

Sources: the botocore model (``Timeout`` 1-5400 and its documentation's 1,800 seconds without
Managed Instances, ``MemorySize`` 128-32768, ``FunctionName``'s pattern and its 64 characters as a
plain name), Lambda quotas (memory up to 10,240 MB, environment variables 4 KB), and how Lambda
measures the 4 KB (the variables' compact JSON, as AWS's ``String measured:`` quotes it).
"""

from __future__ import annotations

import contextlib
import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from deployguard_cli import main as cli
from deployguard_cli.localaws import moto_lambda_limits
from deployguard_cli.localaws.moto_lambda_limits import (
    MAX_ENVIRONMENT_BYTES,
    MAX_MEMORY_MB,
    MAX_TIMEOUT_SECONDS,
    environment_size,
)
from tests.support.aws import ROLE_POLICY, code_zip

VALIDATION = "ValidationException"
INVALID = "InvalidParameterValueException"
MANAGED_INSTANCES = {
    "LambdaManagedInstancesCapacityProviderConfig": {
        "CapacityProviderArn": "arn:aws:lambda:us-east-1:123456789012:capacity-provider:fleet"
    }
}


def variables_of_size(size: int) -> dict[str, str]:
    """One variable whose compact JSON, ``{"BIG":"xx…"}``, is ``size`` bytes."""
    overhead = environment_size({"BIG": ""})
    return {"BIG": "x" * (size - overhead)}


class Functions:
    """A Lambda client that leaves every check to the server (botocore would refuse a value below
    the model's minimum before sending it; other SDKs and ``localaws serve`` clients send it)."""

    def __init__(self) -> None:
        self.lam = boto3.client("lambda", config=Config(parameter_validation=False))
        self.role = boto3.client("iam").create_role(RoleName="fn-role", AssumeRolePolicyDocument=ROLE_POLICY)[
            "Role"
        ]["Arn"]

    def create(self, name: str = "fn", **config: Any) -> Any:
        answer: Any = self.lam.create_function(
            FunctionName=name,
            Runtime="python3.12",
            Role=self.role,
            Handler="app.handler",
            Code={"ZipFile": code_zip()},
            **config,
        )
        return answer

    def exists(self, name: str) -> bool:
        try:
            self.lam.get_function(FunctionName=name)
        except self.lam.exceptions.ResourceNotFoundException:
            return False
        return True


@pytest.fixture
def functions(aws: None) -> Iterator[Functions]:
    moto_lambda_limits.install()  # NOTE: local_aws installs it too; said here, this file tests it
    yield Functions()


def refusal(error: pytest.ExceptionInfo[ClientError]) -> tuple[str, int, str]:
    response = error.value.response
    return (
        response["Error"]["Code"],
        response["ResponseMetadata"]["HTTPStatusCode"],
        response["Error"]["Message"],
    )


# --- just inside passes ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "config",
    [
        {"Timeout": 1},
        {"Timeout": MAX_TIMEOUT_SECONDS},
        {"MemorySize": 128},
        {"MemorySize": MAX_MEMORY_MB},
        {"Environment": {"Variables": variables_of_size(MAX_ENVIRONMENT_BYTES)}},
    ],
    ids=["timeout-1", "timeout-max", "memory-128", "memory-max", "environment-4096-bytes"],
)
def test_a_configuration_at_the_limit_is_created_and_updated_to(
    functions: Functions, config: dict[str, Any]
) -> None:
    created = functions.create(**config)
    updated: Any = functions.lam.update_function_configuration(FunctionName="fn", **config)

    for answer in (created, updated):
        assert {key: answer[key] for key in config} == config


def test_a_name_of_64_characters_and_an_arn_of_140_are_accepted(functions: Functions) -> None:
    arn = f"arn:aws:lambda:us-east-1:123456789012:function:{'a' * 93}"
    functions.create("n" * 64)

    assert functions.exists("n" * 64)
    assert len(arn) == 140
    assert "FunctionArn" in functions.create(arn)  # NOTE: moto names it by the whole ARN; AWS does not


def test_the_4kb_counts_keys_values_and_the_jsons_quotes_colons_and_commas() -> None:
    assert environment_size({"A": "1", "BB": "22"}) == len('{"A":"1","BB":"22"}') == 19


# --- just outside fails, with AWS's code --------------------------------------------------------------
OUTSIDE = [
    ({"Timeout": 0}, VALIDATION, "Value '0' at 'timeout' failed to satisfy constraint"),
    (
        {"Timeout": MAX_TIMEOUT_SECONDS + 1},
        INVALID,
        f"'timeout' failed to satisfy constraint: Member must have value less than or equal to {MAX_TIMEOUT_SECONDS}",
    ),
    (
        {"Timeout": 5401},
        VALIDATION,
        "at 'timeout' failed to satisfy constraint: Member must have value less than or equal to 5400",
    ),
    (
        {"MemorySize": 127},
        VALIDATION,
        "Value '127' at 'memorySize' failed to satisfy constraint: Member must have value greater than or equal to 128",
    ),
    (
        {"MemorySize": MAX_MEMORY_MB + 1},
        INVALID,
        f"'memorySize' failed to satisfy constraint: Member must have value less than or equal to {MAX_MEMORY_MB}",
    ),
    (
        {"MemorySize": 32769},
        VALIDATION,
        "at 'memorySize' failed to satisfy constraint: Member must have value less than or equal to 32768",
    ),
    (
        {"Environment": {"Variables": variables_of_size(MAX_ENVIRONMENT_BYTES + 1)}},
        INVALID,
        "exceeded the 4KB limit. String measured: 4097 bytes (the compact JSON of Environment.Variables",
    ),
]
OUTSIDE_IDS = [
    "timeout-0",
    "timeout-above-quota",
    "timeout-above-model",
    "memory-127",
    "memory-above-quota",
    "memory-above-model",
    "environment-4097-bytes",
]


@pytest.mark.parametrize(("config", "code", "message"), OUTSIDE, ids=OUTSIDE_IDS)
def test_create_function_outside_a_limit_is_refused_and_creates_nothing(
    functions: Functions, config: dict[str, Any], code: str, message: str
) -> None:
    with pytest.raises(ClientError) as error:
        functions.create(**config)

    assert refusal(error)[:2] == (code, 400)
    assert message in refusal(error)[2]
    assert not functions.exists("fn")


@pytest.mark.parametrize(("config", "code", "message"), OUTSIDE, ids=OUTSIDE_IDS)
def test_update_function_configuration_outside_a_limit_is_refused_and_changes_nothing(
    functions: Functions, config: dict[str, Any], code: str, message: str
) -> None:
    before = functions.create(Timeout=3, MemorySize=256, Environment={"Variables": {"KEPT": "yes"}})

    with pytest.raises(ClientError) as error:
        functions.lam.update_function_configuration(FunctionName="fn", **config)

    assert refusal(error)[:2] == (code, 400)
    assert message in refusal(error)[2]
    after = functions.lam.get_function_configuration(FunctionName="fn")
    assert [after[key] for key in ("Timeout", "MemorySize", "Environment")] == [
        before[key] for key in ("Timeout", "MemorySize", "Environment")
    ]


@pytest.mark.parametrize(
    ("name", "constraint"),
    [
        ("n" * 65, "Member must have length less than or equal to 64"),
        ("orders.v2", "Member must satisfy regular expression pattern"),
        (
            f"arn:aws:lambda:us-east-1:123456789012:function:{'a' * 94}",
            "Member must have length less than or equal to 140",
        ),
    ],
    ids=["name-65", "name-pattern", "arn-141"],
)
def test_a_function_name_aws_refuses_is_a_validation_exception(
    functions: Functions, name: str, constraint: str
) -> None:
    with pytest.raises(ClientError) as error:
        functions.create(name)

    code, status, message = refusal(error)
    assert (code, status, f"at 'functionName' failed to satisfy constraint: {constraint}" in message) == (
        VALIDATION,
        400,
        True,
    )


def test_every_model_constraint_broken_is_named_in_one_refusal(functions: Functions) -> None:
    with pytest.raises(ClientError) as error:
        functions.create("n" * 65, Timeout=0, MemorySize=64)

    code, _status, message = refusal(error)
    assert code == VALIDATION
    assert message.startswith("3 validation errors detected: ")
    assert all(f"at '{member}'" in message for member in ("functionName", "timeout", "memorySize"))


def test_the_environment_refusal_quotes_no_value(functions: Functions) -> None:
    value = "s3cr3t-" + "q" * (MAX_ENVIRONMENT_BYTES)

    with pytest.raises(ClientError) as error:
        functions.create(Environment={"Variables": {"DB_PASSWORD": value}})

    assert "s3cr3t" not in refusal(error)[2]
    assert "qqqqqqqq" not in refusal(error)[2]


def test_managed_instances_have_the_models_bounds_on_create_and_update(functions: Functions) -> None:
    functions.create(Timeout=5400, MemorySize=32768, CapacityProviderConfig=MANAGED_INSTANCES)
    updated = functions.lam.update_function_configuration(FunctionName="fn", Timeout=3600)

    assert updated["Timeout"] == 3600


def test_a_refusal_comes_before_the_name_is_found_taken(functions: Functions) -> None:
    functions.create()

    with pytest.raises(ClientError) as error:
        functions.create(Timeout=0)

    assert refusal(error)[0] == VALIDATION


# --- the rehearsal of a team's template --------------------------------------------------------------
TEMPLATE = """\
Transform: AWS::Serverless-2016-10-31
Resources:
  Fn:
    Type: AWS::Serverless::Function
    Properties:
      CodeUri: src/
      Handler: app.handler
      Runtime: python3.12
      AutoPublishAlias: live
      DeploymentPreference:
        Type: AllAtOnce
"""


@pytest.mark.parametrize(
    ("properties", "field"),
    [
        ({"Timeout": MAX_TIMEOUT_SECONDS + 1}, "'timeout'"),
        ({"MemorySize": MAX_MEMORY_MB + 1}, "'memorySize'"),
        ({"Environment": {"Variables": variables_of_size(MAX_ENVIRONMENT_BYTES + 1)}}, "4KB limit"),
    ],
    ids=["timeout", "memory", "environment"],
)
def test_a_template_sam_deploy_would_fail_fails_its_rehearsal_with_the_field(
    tmp_path: Path, aws_env: None, properties: dict[str, Any], field: str
) -> None:
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "app.py").write_text("def handler(event, context):\n    return {}\n")
    extra = "".join(f"      {key}: {json.dumps(value)}\n" for key, value in properties.items())
    (tmp_path / "template.yaml").write_text(
        TEMPLATE.replace("      AutoPublishAlias", extra + "      AutoPublishAlias")
    )

    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        code = cli.main(["rehearse", "--json", "--template", str(tmp_path / "template.yaml")])

    assert (code, "refused Fn" in err.getvalue(), field in err.getvalue()) == (2, True, True), err.getvalue()
