"""`deployguard policy …` and `deployguard check` as a pipeline runs them (moto behind boto3)."""

from __future__ import annotations

import json
from pathlib import Path

import boto3
import pytest
import yaml

from deployguard_cli.main import main
from tests.support.release import GOOD_ENV, POLICY, Release

POLICY_YAML = yaml.safe_dump(POLICY)


@pytest.fixture
def policy_file(tmp_path: Path) -> Path:
    path = tmp_path / "staging.yaml"
    path.write_text(POLICY_YAML)
    return path


def test_policy_check_accepts_a_valid_file(policy_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["policy", "check", str(policy_file)]) == 0
    assert capsys.readouterr().out.strip() == f"{policy_file}: ok"


def test_policy_check_lists_every_error_with_path_and_fix(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        POLICY_YAML.replace("equals: 12", "equal: 12").replace("max_latency_ms: 5000", "max_latency_ms: fast")
    )

    code = main(["policy", "check", "--json", str(bad)])

    (report,) = json.loads(capsys.readouterr().out)
    assert code == 1
    paths = {e["path"]: e["fix"] for e in report["errors"]}
    assert paths["functions.orders.smoke[0].expect[0].equal"].startswith("did you mean 'equals'?")
    assert paths["functions.orders.smoke[0].max_latency_ms"] == "use a whole number"


def test_policy_check_of_an_unreadable_file_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["policy", "check", str(tmp_path / "missing.yaml")]) == 2
    assert "cannot read policy" in capsys.readouterr().out


def test_policy_schema_is_json_schema(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["policy", "schema"]) == 0
    schema = json.loads(capsys.readouterr().out)
    assert schema["title"] == "DeployGuard policy"
    assert "SmokeCase" in schema["$defs"]


@pytest.mark.usefixtures("aws")
def test_policy_publish_stores_the_inlined_policy_where_the_hook_reads_it(tmp_path: Path) -> None:
    (tmp_path / "quote.json").write_text('{"action": "quote"}')
    document = json.loads(json.dumps(POLICY))
    document["functions"]["orders"]["smoke"][0].pop("payload")
    document["functions"]["orders"]["smoke"][0]["payload_file"] = "quote.json"
    path = tmp_path / "staging.yaml"
    path.write_text(yaml.safe_dump(document))

    assert main(["policy", "publish", "--stage", "staging", str(path)]) == 0

    stored = json.loads(
        boto3.client("ssm").get_parameter(Name="/deployguard/staging/policy")["Parameter"]["Value"]
    )
    assert stored["functions"]["orders"]["smoke"][0]["payload"] == {"action": "quote"}
    assert "payload_file" not in stored["functions"]["orders"]["smoke"][0]


@pytest.mark.usefixtures("aws")
def test_policy_publish_refuses_another_stages_policy(
    policy_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["policy", "publish", "--stage", "prod", str(policy_file)]) == 2
    assert "staging policy but the guard runs in prod" in capsys.readouterr().err


@pytest.mark.usefixtures("aws")
def test_check_passes_a_good_version(policy_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    Release().create()

    code = main(
        [
            "check",
            "--stage",
            "staging",
            "--policy",
            str(policy_file),
            "--function",
            "orders",
            "--version",
            "2",
            "--current",
            "1",
        ]
    )

    out = capsys.readouterr().out
    assert code == 0, out
    assert "orders (staging) 1 -> 2: Succeeded" in out
    assert "[PASS] smoke:quote" in out


@pytest.mark.usefixtures("aws")
def test_check_reports_findings_with_exit_1_and_json(
    policy_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    Release(
        target_env={
            **GOOD_ENV,
            "DATABASE_URL": "postgres://db.prod.example.com/orders",
            "API_TOKEN": "t0ps3cr3t-value",
        }
    ).create()

    code = main(
        [
            "check",
            "--stage",
            "staging",
            "--policy",
            str(policy_file),
            "--function",
            "orders",
            "--version",
            "2",
            "--json",
        ]
    )

    out = capsys.readouterr().out
    record = json.loads(out)
    assert code == 1
    assert record["decision"] == "Failed"
    assert {f["code"] for f in record["checks"][1]["findings"]} >= {"CFG003", "SEC002"}
    assert "t0ps3cr3t-value" not in out


@pytest.mark.usefixtures("aws")
def test_check_that_cannot_reach_the_function_exits_2(
    policy_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(
        [
            "check",
            "--stage",
            "staging",
            "--policy",
            str(policy_file),
            "--function",
            "orders",
            "--version",
            "9",
        ]
    )

    assert code == 2
    assert "GetFunctionConfiguration failed with ResourceNotFoundException" in capsys.readouterr().err
