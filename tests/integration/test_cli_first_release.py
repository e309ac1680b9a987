"""`deployguard check` for a function's first release (moto behind boto3): nothing is deployed yet,
so `--template` checks the configuration the SAM template declares, and without it the command
says so in one line."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Any

import boto3
import pytest

from deployguard_cli.main import main
from tests.support.aws import publish_policy
from tests.support.release import POLICY, POLICY_BUCKET

pytestmark = pytest.mark.usefixtures("aws")

TEMPLATE = textwrap.dedent(
    """
    AWSTemplateFormatVersion: '2010-09-09'
    Transform: AWS::Serverless-2016-10-31
    Parameters:
      DbHost:
        Type: String
    Globals:
      Function:
        Runtime: python3.12
        Tracing: Active
        Environment:
          Variables:
            STAGE: staging
    Resources:
      OrdersFunction:
        Type: AWS::Serverless::Function
        Properties:
          FunctionName: orders
          Handler: app.handler
          CodeUri: src/
          AutoPublishAlias: live
          DeploymentPreference:
            Type: Canary10Percent5Minutes
          Tags:
            deployguard:stage: staging
            deployguard:app: orders
          Environment:
            Variables:
              DATABASE_URL: {database_url}
              DB_PASSWORD_PARAM: /orders/staging/db-password
    """
)


def template(tmp_path: Path, database_url: str = "postgres://db.staging.example.com/orders") -> Path:
    path = tmp_path / "template.yaml"
    path.write_text(TEMPLATE.format(database_url=database_url))
    return path


@pytest.fixture
def store(aws: None, monkeypatch: pytest.MonkeyPatch) -> None:
    """The staging baseline and the orders document in the policy bucket; no function deployed."""
    publish_policy(POLICY_BUCKET, POLICY)
    boto3.client("ssm").put_parameter(
        Name="/orders/staging/db-password", Value="not-read", Type="SecureString"
    )
    monkeypatch.setenv("DEPLOYGUARD_POLICY_BUCKET", POLICY_BUCKET)


def check(*args: str) -> int:
    return main(["check", "--stage", "staging", "--function", "orders", *args])


@pytest.mark.usefixtures("store")
def test_a_first_release_is_checked_from_its_template_with_the_smoke_tests_left_to_the_deployment(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN a function that does not exist yet, its application's policy in the store
    assert boto3.client("lambda").list_functions()["Functions"] == []

    # WHEN the pipeline checks it from the template (Globals merged)
    code = check("--template", str(template(tmp_path)), "--json")

    # THEN the declared configuration passes, and each smoke case waits for the first deployment
    record = json.loads(capsys.readouterr().out)
    assert code == 0, record
    assert [(c["name"], c["result"]) for c in record["checks"]] == [
        ("policy", "passed"),
        ("config", "passed"),
        ("smoke:quote", "skipped"),
        ("smoke:stage", "skipped"),
    ]
    assert "the pre-traffic hook runs it at the first guarded deployment" in record["checks"][2]["message"]
    assert "smoke tests run at its first guarded deployment" in record["reason"]


@pytest.mark.usefixtures("store")
def test_a_template_pointing_at_another_stage_fails_the_first_release(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = check("--template", str(template(tmp_path, "postgres://db.prod.example.com/orders")))

    out = capsys.readouterr().out
    assert code == 1
    assert "error CFG003 DATABASE_URL" in out
    assert "as OrdersFunction is declared in the template" in out


@pytest.mark.usefixtures("store")
def test_an_intrinsic_value_is_reported_unresolved_not_guessed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN the database URL comes from a parameter (!Ref), known only at deploy time
    code = check("--template", str(template(tmp_path, "!Ref DbHost")), "--json")

    record: dict[str, Any] = json.loads(capsys.readouterr().out)
    config = record["checks"][1]
    assert code == 0  # a warning: the pre-traffic hook judges the deployed value
    assert [(f["code"], f["subject"], f["severity"]) for f in config["findings"]] == [
        ("TPL001", "DATABASE_URL", "warning")
    ]
    assert "given by !Ref, known only at deploy time" in config["findings"][0]["message"]


def test_a_function_the_template_does_not_declare_exits_2_naming_its_functions(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(
        ["check", "--stage", "staging", "--function", "payments", "--template", str(template(tmp_path))]
    )

    assert code == 2
    err = capsys.readouterr().err
    assert (
        "declares no function payments (as logical id or FunctionName); its functions: OrdersFunction" in err
    )


@pytest.mark.usefixtures("store")
def test_without_a_template_a_function_not_deployed_yet_is_one_line_naming_the_fix(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code = check("--version", "1")

    assert code == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith(
        "deployguard: orders has no version 1 to check (ListTags: ResourceNotFoundException)"
    )
    assert line.endswith("deployguard check --stage staging --function orders --template template.yaml")
    assert "Traceback" not in line
