"""``deployguard report`` against moto's CloudWatch Logs, filled by real handler runs: the
pre-traffic handler guards a misconfigured release on moto, everything it writes is shipped into a
log stream as Lambda would, and the report tells that story."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import boto3
import pytest

from deployguard.observability import record_outcome
from deployguard.outcome import OutcomeRecord, Role
from deployguard_cli.exit_codes import EXIT_ERROR, EXIT_FINDINGS, EXIT_OK
from deployguard_cli.main import main
from tests.support.handlers import FakeLambdaContext, load_handler
from tests.support.outcomes import captured_output
from tests.support.release import GOOD_ENV, HOOK_ENV, Release

if TYPE_CHECKING:
    from mypy_boto3_logs.type_defs import InputLogEventTypeDef

pytestmark = pytest.mark.usefixtures("aws")

PRE_TRAFFIC_GROUP = "/aws/lambda/CodeDeployHook_deployguard-staging-pre-traffic"
SECRET = "hunter2-Sup3rSecret"
Handler = Callable[[dict[str, Any], Any], dict[str, Any]]


def ship(output: str, group: str, stream: str = "2026/11/28/[$LATEST]0123456789abcdef") -> None:
    """Put every line a run wrote (log lines and EMF alike) into a log stream, as Lambda does."""
    logs = boto3.client("logs")
    if not logs.describe_log_groups(logGroupNamePrefix=group)["logGroups"]:
        logs.create_log_group(logGroupName=group)
    if not logs.describe_log_streams(logGroupName=group, logStreamNamePrefix=stream)["logStreams"]:
        logs.create_log_stream(logGroupName=group, logStreamName=stream)
    now = int(time.time() * 1000)
    events: list[InputLogEventTypeDef] = [
        {"timestamp": now + i, "message": line} for i, line in enumerate(output.splitlines()) if line
    ]
    logs.put_log_events(logGroupName=group, logStreamName=stream, logEvents=events)


def run_handler(handler: Handler, event: dict[str, Any], context: FakeLambdaContext) -> str:
    with captured_output() as out:
        handler(event, context)
    return out.getvalue()


@pytest.fixture
def handler(monkeypatch: pytest.MonkeyPatch) -> Handler:
    for key, value in HOOK_ENV.items():
        monkeypatch.setenv(key, value)
    return load_handler("pre_traffic").handler  # type: ignore[no-any-return]


@pytest.fixture
def failed_release(handler: Handler, lambda_context: FakeLambdaContext) -> Release:
    """A release configured for prod deployed to staging, with a plaintext password; the hook runs
    twice (Lambda's retry of an async invocation), next to another deployment's and other lines."""
    release = Release(target_env={**GOOD_ENV, "STAGE": "prod", "DB_PASSWORD": SECRET}).create()
    ship(run_handler(handler, release.event, lambda_context), PRE_TRAFFIC_GROUP)
    ship(
        run_handler(handler, release.event, lambda_context),
        PRE_TRAFFIC_GROUP,
        stream="2026/11/28/[$LATEST]retry",
    )
    with captured_output() as out:
        record_outcome(
            OutcomeRecord(role=Role.PRE_TRAFFIC, hook="BeforeAllowTraffic", deployment_id="d-OTHER0000")
        )
    ship(out.getvalue() + "START RequestId: abc Version: 2\n", PRE_TRAFFIC_GROUP)
    ship('{"level":"INFO","message":"unrelated"}', "/aws/lambda/deployguard-staging-orders")
    return release


def report(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(["report", *argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_the_report_tells_why_the_deployment_failed(
    failed_release: Release, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = report(capsys, failed_release.deployment_id)

    assert code == EXIT_FINDINGS
    lines = out.splitlines()
    assert lines[0] == f"Deployment {failed_release.deployment_id}: FAILED"
    assert "  function  orders, alias live, version 1 -> 2" in lines
    assert "  stage     staging" in lines
    assert any(line.startswith("  why       config: ") for line in lines)
    assert (
        "no traffic reached version 2; CodeDeploy ends the deployment and alias live stays on version 1."
        in out
    )
    # the timeline: the run, its decision and report, then Lambda's retry that found it reported
    timeline = lines[lines.index("Timeline (UTC)") + 1 : lines.index("Checks") - 1]
    events = [line.split()[3:5] for line in timeline]
    assert events == [
        ["started", "pre_traffic"],
        ["decided", "Failed"],
        ["status_reported", "Failed"],
        ["started", "pre_traffic"],
        ["no", "decision"],
        ["status_already_reported", "Failed"],
    ]
    # every check and its result, the findings that failed it
    assert "    [PASS] policy" in out
    assert "    [FAIL] config" in out
    assert "error CFG002 STAGE: STAGE is 'prod' but this is a staging deployment" in out
    assert "SEC002 DB_PASSWORD" in out
    assert "    [skip] smoke:quote" in out and "    [skip] smoke:stage" in out
    assert SECRET not in out
    assert "d-OTHER0000" not in out


def test_the_json_report_carries_the_records(
    failed_release: Release, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = report(capsys, failed_release.deployment_id, "--json", "--log-group", PRE_TRAFFIC_GROUP)

    document = json.loads(out)
    assert code == EXIT_FINDINGS
    assert (document["outcome"], document["decision"], document["rolled_back"]) == ("failed", "Failed", False)
    assert [r["hook"] for r in document["records"]] == ["BeforeAllowTraffic", "BeforeAllowTraffic"]
    first = document["records"][0]
    assert [(c["code"], c["result"]) for c in first["checks"]] == [
        ("policy", "passed"),
        ("config", "failed"),
        ("smoke", "skipped"),
        ("smoke", "skipped"),
    ]
    assert {f["code"] for f in first["checks"][1]["findings"]} >= {"CFG002", "SEC002"}
    assert [a["kind"] for a in first["actions"]] == ["status_reported"]
    assert first["duration_ms"] > 0
    assert SECRET not in out


def test_a_deployment_without_records_is_an_error_that_says_where_it_looked(
    failed_release: Release, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = report(capsys, "d-NOTHING00")

    assert code == EXIT_ERROR
    assert out == ""
    assert "no outcome records for deployment d-NOTHING00" in err
    assert PRE_TRAFFIC_GROUP in err


def test_a_passing_deployment_exits_zero(
    handler: Handler, lambda_context: FakeLambdaContext, capsys: pytest.CaptureFixture[str]
) -> None:
    release = Release().create()
    ship(run_handler(handler, release.event, lambda_context), PRE_TRAFFIC_GROUP)

    code, out, _ = report(capsys, release.deployment_id)

    assert code == EXIT_OK
    assert out.splitlines()[0] == f"Deployment {release.deployment_id}: SUCCEEDED"
    assert "    [PASS] smoke:quote" in out
    assert "nothing rolled back." in out
