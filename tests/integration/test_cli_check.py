"""`deployguard policy …` and `deployguard check` as a pipeline runs them (moto behind boto3)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
import yaml

from deployguard_cli.main import main
from deployguard_cli.policy_store import split_policy
from tests.support.handlers import ROOT
from tests.support.release import GOOD_ENV, POLICY, POLICY_BUCKET, Release

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


def split_files(folder: Path, document: dict[str, Any] | None = None) -> tuple[Path, Path]:
    """A whole-stage policy as policies/<stage>/baseline.yaml and apps/orders.yaml."""
    baseline, application = split_policy(document or POLICY, "orders")
    (folder / "apps").mkdir(exist_ok=True)
    (folder / "baseline.yaml").write_text(yaml.safe_dump(baseline))
    (folder / "apps" / "orders.yaml").write_text(yaml.safe_dump(application))
    return folder / "baseline.yaml", folder / "apps" / "orders.yaml"


@pytest.fixture
def bucket(monkeypatch: pytest.MonkeyPatch) -> str:
    boto3.client("s3").create_bucket(Bucket=POLICY_BUCKET)
    monkeypatch.setenv("DEPLOYGUARD_POLICY_BUCKET", POLICY_BUCKET)
    return POLICY_BUCKET


@pytest.mark.usefixtures("aws")
def test_policy_publish_stores_the_inlined_policy_where_the_hook_reads_it(
    tmp_path: Path, bucket: str
) -> None:
    (tmp_path / "apps").mkdir()
    (tmp_path / "apps" / "quote.json").write_text('{"action": "quote"}')
    document = json.loads(json.dumps(POLICY))
    document["functions"]["orders"]["smoke"][0].pop("payload")
    document["functions"]["orders"]["smoke"][0]["payload_file"] = "quote.json"
    baseline, application = split_files(tmp_path, document)

    assert main(["policy", "publish", "--stage", "staging", "--baseline", str(baseline)]) == 0
    assert main(["policy", "publish", "--stage", "staging", "--app", "orders", str(application)]) == 0

    s3 = boto3.client("s3")
    stored = json.loads(s3.get_object(Bucket=bucket, Key="staging/apps/orders.json")["Body"].read())
    assert stored["functions"]["orders"]["smoke"][0]["payload"] == {"action": "quote"}
    assert "payload_file" not in stored["functions"]["orders"]["smoke"][0]
    assert (
        json.loads(s3.get_object(Bucket=bucket, Key="staging/baseline.json")["Body"].read())["stage"]
        == "staging"
    )


@pytest.mark.usefixtures("aws")
def test_policy_publish_refuses_another_stages_document(
    tmp_path: Path, bucket: str, capsys: pytest.CaptureFixture[str]
) -> None:
    baseline, _ = split_files(tmp_path)

    assert main(["policy", "publish", "--stage", "prod", "--baseline", str(baseline)]) == 2
    assert "this is a staging document but the guard runs in prod" in capsys.readouterr().err


@pytest.mark.usefixtures("aws")
def test_policy_publish_without_baseline_or_app_explains_the_store(
    policy_file: Path, bucket: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["policy", "publish", "--stage", "staging", str(policy_file)]) == 2
    assert "say what FILE is: --baseline" in capsys.readouterr().err


@pytest.mark.usefixtures("aws")
def test_policy_show_prints_the_effective_policy_and_each_values_origin(
    tmp_path: Path, bucket: str, capsys: pytest.CaptureFixture[str]
) -> None:
    baseline, application = split_files(tmp_path)
    main(["policy", "publish", "--stage", "staging", "--baseline", str(baseline)])
    main(["policy", "publish", "--stage", "staging", "--app", "orders", str(application)])
    capsys.readouterr()

    assert main(["policy", "show", "--stage", "staging", "--app", "orders"]) == 0
    text = capsys.readouterr().out
    assert 'unguarded: "fail"  (baseline)' in text
    assert 'functions.orders.config.references.required: ["DB_PASSWORD_PARAM"]  (application)' in text
    assert "functions.orders.bake.minutes: 0  (built-in default)" in text

    assert main(["policy", "show", "--stage", "staging", "--app", "orders", "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["policy"]["functions"]["orders"]["config"]["required"] == ["DATABASE_URL"]

    assert main(["policy", "show", "--stage", "staging", "--app", "payments"]) == 2
    assert "application payments has no staging policy" in capsys.readouterr().err


def test_policy_check_checks_an_application_against_its_baselines_floors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    baseline, application = split_files(tmp_path)
    document = yaml.safe_load(baseline.read_text())
    document["floors"] = {"config.plaintext_secrets": "error"}
    baseline.write_text(yaml.safe_dump(document))
    weak = yaml.safe_load(application.read_text())
    weak["functions"]["orders"]["config"]["plaintext_secrets"] = "ignore"
    application.write_text(yaml.safe_dump(weak))

    assert main(["policy", "check", "--json", str(baseline), str(application)]) == 1

    ok, bad = json.loads(capsys.readouterr().out)
    assert (ok["kind"], ok["valid"]) == ("baseline", True)
    assert bad["kind"] == "application"
    assert bad["errors"][0]["path"] == "functions.orders.config.plaintext_secrets"
    assert "weaker than the baseline's floor config.plaintext_secrets: 'error'" in bad["errors"][0]["problem"]


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
def test_check_without_a_policy_file_reads_the_functions_policy_from_the_store(
    capsys: pytest.CaptureFixture[str],
) -> None:
    Release().create()  # the baseline and the orders document in the bucket; orders tagged orders

    command = [
        "check",
        "--stage",
        "staging",
        "--function",
        "orders",
        "--version",
        "2",
        "--bucket",
        POLICY_BUCKET,
    ]
    code = main(command)

    out = capsys.readouterr().out
    assert code == 0, out
    assert "[PASS] smoke:quote" in out


@pytest.mark.usefixtures("aws")
def test_check_takes_an_application_file_with_the_baseline_beside_its_folder(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    Release().create()
    _, application = split_files(tmp_path)

    code = main(
        [
            "check",
            "--stage",
            "staging",
            "--policy",
            str(application),
            "--function",
            "orders",
            "--version",
            "2",
        ]
    )

    out = capsys.readouterr().out
    assert code == 0, out
    assert "guarded by functions.orders" in out or "[PASS] smoke:quote" in out


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
    (line,) = capsys.readouterr().err.splitlines()  # one line, no traceback
    assert line == (
        "deployguard: orders has no version 9 to check (GetFunctionConfiguration: ResourceNotFoundException): "
        "for a function's first release, check its template instead: "
        "deployguard check --stage staging --function orders --template template.yaml"
    )


# --- a smoke case that hangs: the case timeout bounds the whole command --------------------------


@pytest.fixture
def moto_server(aws_env: None, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """moto behind HTTP (a real socket, so the CLI's client timeouts apply), the local Lambda runner
    running each version's real code in a subprocess."""
    from moto.core.config import default_user_config
    from moto.server import ThreadedMotoServer

    from deployguard import entrypoints
    from deployguard_cli.localaws import lambda_runner, moto_codedeploy

    monkeypatch.setitem(default_user_config, "lambda", {"use_docker": False})
    for extension in (moto_codedeploy, lambda_runner):
        extension.install()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    _, port = server.get_host_and_port()
    endpoint = f"http://127.0.0.1:{port}"
    monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint)
    entrypoints.reset()
    try:
        yield endpoint
    finally:
        urllib.request.urlopen(urllib.request.Request(f"{endpoint}/moto-api/reset", method="POST"))
        server.stop()
        entrypoints.reset()


HANGS_FOR_SECONDS = 20
CASE_TIMEOUT_MS = 1000


def run_check(tmp_path: Path, smoke: list[dict[str, Any]]) -> tuple[subprocess.CompletedProcess[str], float]:
    """`deployguard check` of version 2 in its own process, as a CI step runs it; and its seconds."""
    policy = json.loads(json.dumps(POLICY))
    policy["functions"]["orders"]["smoke"] = smoke
    path = tmp_path / "staging.yaml"
    path.write_text(yaml.safe_dump(policy))
    command = [sys.executable, "-m", "deployguard_cli.main", "check", "--stage", "staging"]
    command += ["--policy", str(path), "--function", "orders", "--version", "2"]
    started = time.monotonic()
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False, cwd=ROOT)
    return done, time.monotonic() - started


def counted_invocations(monkeypatch: pytest.MonkeyPatch) -> list[bytes]:
    """The payload of every Invoke the local Lambda starts, as it starts it."""
    from moto.awslambda_simple.models import LambdaSimpleBackend

    started: list[bytes] = []
    running = LambdaSimpleBackend.invoke

    def invoke(self: Any, function_name: str, qualifier: Any, body: Any, *args: Any) -> Any:
        started.append(body if isinstance(body, bytes) else str(body).encode())
        return running(self, function_name, qualifier, body, *args)

    monkeypatch.setattr(LambdaSimpleBackend, "invoke", invoke)
    return started


def test_a_hanging_smoke_case_ends_the_command_at_its_timeout(
    moto_server: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from deployguard_cli.commands.check import INVOKE_MARGIN_SECONDS

    # GIVEN version 2, whose smoke case sleeps 20 s while the case's timeout is 1 s
    Release(policy=None).create()
    invoked = counted_invocations(monkeypatch)
    _, baseline = run_check(tmp_path, [{"name": "quote", "payload": {"action": "quote"}}])
    hangs = {"action": "sleep", "seconds": HANGS_FOR_SECONDS}

    # WHEN a pipeline runs `deployguard check` on it
    done, elapsed = run_check(tmp_path, [{"name": "hangs", "payload": hangs, "timeout_ms": CASE_TIMEOUT_MS}])

    # THEN it reports SMK002 and the process ends within the case's timeout (plus the margin of the
    # invoke client's read timeout) of a run whose case answers at once, not when the version does
    assert done.returncode == 1, done.stdout + done.stderr
    assert f"no answer within {CASE_TIMEOUT_MS} ms" in done.stdout
    bound = baseline + CASE_TIMEOUT_MS / 1000 + INVOKE_MARGIN_SECONDS + 2.0  # 2 s: a shared machine
    assert elapsed < bound, f"the command took {elapsed:.1f} s; one without a hang took {baseline:.1f} s"

    # AND the invocation that timed out was not retried (a retry would invoke the version again)
    assert [b"sleep" in body for body in invoked] == [False, True]


def test_the_invoke_read_timeout_follows_the_policys_longest_case() -> None:
    from deployguard.policy import load_policy
    from deployguard_cli.commands.check import INVOKE_MARGIN_SECONDS, smoke_read_timeout

    document = json.loads(json.dumps(POLICY))
    document["functions"]["orders"]["smoke"][1]["timeout_ms"] = 30_000
    policy = load_policy(json.dumps(document))

    assert smoke_read_timeout(policy, "orders") == 30 + INVOKE_MARGIN_SECONDS
    assert smoke_read_timeout(policy, "not-guarded") is None
