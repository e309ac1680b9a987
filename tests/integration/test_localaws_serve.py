"""`deployguard localaws serve`: the embedded local AWS as an endpoint, used as a team would use it —
its variables exported, then `deployguard policy publish`, `deployguard check` and plain boto3 calls
(Lambda, Step Functions, CodeDeploy) against it; and the command itself, in its own process, from
its banner to Ctrl-C."""

from __future__ import annotations

import base64
import json
import os
import shlex
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
import yaml
from botocore.exceptions import ClientError

from deployguard import entrypoints
from deployguard.appspec import DeploymentTarget, render_appspec
from deployguard_cli.localaws.server import LocalAws
from deployguard_cli.main import main
from tests.support.aws import Version, deployment_group, function_with_versions, start_deployment
from tests.support.handlers import ROOT

STARTUP_SECONDS = 60  # a bound for a loaded machine, not an expectation (it starts in about a second)


@dataclass
class Served:
    """A `deployguard localaws serve` process and what it printed."""

    process: subprocess.Popen[str]
    banner: str
    environment: dict[str, str]
    stderr: Path

    @property
    def endpoint(self) -> str:
        return self.environment["AWS_ENDPOINT_URL"]

    def interrupt(self) -> int:
        """Ctrl-C, as a terminal sends it; the exit code."""
        self.process.send_signal(signal.SIGINT)
        return self.process.wait(STARTUP_SECONDS)


def serve(tmp_path: Path) -> Served:
    """`deployguard localaws serve --port 0` in its own process, once it printed its variables."""
    stderr = tmp_path / "serve.stderr"
    command = [sys.executable, "-m", "deployguard_cli.main", "localaws", "serve", "--port", "0"]
    with stderr.open("w") as errors:
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=errors, text=True, cwd=ROOT)
    assert process.stdout is not None
    lines: list[str] = []
    for line in process.stdout:  # ends early if the process dies
        lines.append(line)
        if line.startswith("State lives in memory"):
            break
    else:
        process.wait(STARTUP_SECONDS)
        pytest.fail(f"serve ended with {process.returncode}: {''.join(lines)}{stderr.read_text()}")
    exports = (shlex.split(line.removeprefix("export "))[0] for line in lines if line.startswith("export "))
    environment = dict(export.split("=", 1) for export in exports)
    return Served(process, "".join(lines), environment, stderr)


@pytest.fixture(scope="module")
def server() -> Iterator[LocalAws]:
    """The server `deployguard localaws serve` runs, on a thread of this process (the command's own
    process is started where its start and stop are the subject)."""
    with LocalAws(port=0) as local:
        yield local


@pytest.fixture
def exported(server: LocalAws, aws_env: None, monkeypatch: pytest.MonkeyPatch) -> Iterator[LocalAws]:
    """This test's shell: the variables the server gives, exported; nothing else points at AWS."""
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    monkeypatch.delenv("DEPLOYGUARD_POLICY_BUCKET", raising=False)
    for name, value in server.environment().items():
        monkeypatch.setenv(name, value)
    entrypoints.reset()
    yield server
    entrypoints.reset()


# --- deployguard check --------------------------------------------------------------------------

QUOTE = """
import os

def handler(event, context):
    return {"total": TOTAL, "currency": "EUR", "stage": os.environ["STAGE"]}
"""
BASELINE = {"version": 1, "stage": "staging", "unguarded": "fail"}
SHOP_POLICY = {
    "version": 1,
    "stage": "staging",
    "application": "shop",
    "functions": {
        "quote": {
            "config": {"stage_variable": "STAGE", "required": ["STAGE"]},
            "smoke": [
                {
                    "name": "basket",
                    "payload": {"action": "quote"},
                    "expect": [{"path": "$.total", "equals": 12}, {"path": "$.currency", "equals": "EUR"}],
                }
            ],
        }
    },
}
POLICY_BUCKET = "deployguard-staging-policies-123456789012-us-east-1"  # the name template.yaml gives it


def test_deployguard_check_judges_the_versions_deployed_on_the_server(
    exported: LocalAws, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # GIVEN function quote deployed through the server: version 1 answers a total of 12, version 2
    # answers "12.00" (a string), alias live on version 1
    staging = {"STAGE": "staging"}
    function_with_versions(
        "quote",
        [Version(QUOTE.replace("TOTAL", "12"), staging), Version(QUOTE.replace("TOTAL", '"12.00"'), staging)],
        application="shop",
    )
    # AND the staging policy bucket, with the baseline and the shop application's policy published
    # by `deployguard policy publish` (the bucket's name derived from the server's account)
    boto3.client("s3").create_bucket(Bucket=POLICY_BUCKET)
    baseline, shop = tmp_path / "baseline.yaml", tmp_path / "shop.yaml"
    baseline.write_text(yaml.safe_dump(BASELINE))
    shop.write_text(yaml.safe_dump(SHOP_POLICY))
    assert main(["policy", "publish", "--stage", "staging", "--baseline", str(baseline)]) == 0
    assert main(["policy", "publish", "--stage", "staging", "--app", "shop", str(shop)]) == 0
    published = capsys.readouterr().out

    # WHEN a pipeline runs `deployguard check` on each version
    good = main(["check", "--stage", "staging", "--function", "quote", "--version", "1", "--json"])
    good_record = json.loads(capsys.readouterr().out)
    bad = main(["check", "--stage", "staging", "--function", "quote", "--version", "2", "--json"])
    bad_record = json.loads(capsys.readouterr().out)

    # THEN both policy documents went to the bucket the hooks read
    assert f"s3://{POLICY_BUCKET}/" in published
    # AND version 1 passes: its configuration and its smoke case, run on its real code
    assert good == 0, good_record
    assert good_record["decision"] == "Succeeded"
    assert {c["name"]: c["result"] for c in good_record["checks"]}["smoke:basket"] == "passed"
    # AND version 2 fails on the smoke case its code breaks, naming the expectation
    assert bad == 1, bad_record
    assert bad_record["decision"] == "Failed"
    failed = [c for c in bad_record["checks"] if c["result"] == "failed"]
    assert [c["name"] for c in failed] == ["smoke:basket"]
    assert "$.total" in json.dumps(failed[0])


# --- users' own tests: boto3 against the endpoint -------------------------------------------------

WRITES_BACK = """
import boto3

def handler(event, context):
    boto3.client("s3").put_object(Bucket=event["bucket"], Key=event["key"], Body=context.function_version.encode())
    print("wrote", event["key"])
    return {"version": context.function_version}
"""


@pytest.fixture(scope="module")
def writer(server: LocalAws) -> str:
    """Function writer (versions 1 and 2, alias live on 1) whose code writes to S3 with the
    credentials Lambda gives it; and the bucket it writes to."""
    with pytest.MonkeyPatch.context() as patch:
        for name, value in server.environment().items():
            patch.setenv(name, value)
        function_with_versions("writer", [Version(WRITES_BACK), Version(WRITES_BACK, description="2")])
        boto3.client("s3").create_bucket(Bucket="notes")
    return "notes"


def test_an_invoke_through_the_server_runs_the_versions_code_which_calls_aws_back(
    exported: LocalAws, writer: str
) -> None:
    # WHEN a test invokes the writer's alias through the server
    event = {"bucket": writer, "key": "invoked"}
    answer = boto3.client("lambda").invoke(
        FunctionName="writer", Qualifier="live", Payload=json.dumps(event), LogType="Tail"
    )

    # THEN the alias's version ran, and its own AWS call reached the same server
    assert answer["StatusCode"] == 200
    assert answer.get("FunctionError") is None
    assert answer["ExecutedVersion"] == "1"
    assert json.loads(answer["Payload"].read()) == {"version": "1"}
    assert boto3.client("s3").get_object(Bucket=writer, Key="invoked")["Body"].read() == b"1"
    # AND its output is in the log tail, as Lambda returns it
    assert "wrote invoked" in base64.b64decode(answer["LogResult"]).decode()


def test_a_step_functions_lambda_task_runs_the_functions_code(exported: LocalAws, writer: str) -> None:
    # GIVEN a state machine whose one task invokes the writer's alias
    definition = {
        "StartAt": "Write",
        "States": {
            "Write": {
                "Type": "Task",
                "Resource": "arn:aws:states:::lambda:invoke",
                "Parameters": {
                    "FunctionName": "writer:live",
                    "Payload": {"bucket": writer, "key": "stepped"},
                },
                "OutputPath": "$.Payload",
                "End": True,
            }
        },
    }
    sfn = boto3.client("stepfunctions")
    role = "arn:aws:iam::123456789012:role/writer-role"
    machine = sfn.create_state_machine(name="writes", definition=json.dumps(definition), roleArn=role)

    # WHEN two executions start, unnamed (moto's interpreter runs them, in real time)
    executions = [sfn.start_execution(stateMachineArn=machine["stateMachineArn"]) for _ in range(2)]
    ended = [finished(sfn, execution["executionArn"]) for execution in executions]

    # THEN each got a name of its own (a UUID, as on AWS) and its Lambda task ran version 1's code,
    # which wrote through the server
    assert len({execution["executionArn"] for execution in executions}) == 2
    assert [e["status"] for e in ended] == ["SUCCEEDED", "SUCCEEDED"], ended
    assert [json.loads(e["output"]) for e in ended] == [{"version": "1"}, {"version": "1"}]
    assert boto3.client("s3").get_object(Bucket=writer, Key="stepped")["Body"].read() == b"1"


def finished(sfn: Any, execution_arn: str) -> Any:
    """DescribeExecution's answer once the execution left RUNNING."""
    deadline = time.monotonic() + STARTUP_SECONDS
    while (described := sfn.describe_execution(executionArn=execution_arn))["status"] == "RUNNING":
        assert time.monotonic() < deadline, "the execution never ended"
        time.sleep(0.05)
    return described


def test_codedeploy_on_the_server_answers_with_the_extensions_shapes(exported: LocalAws) -> None:
    # GIVEN a Lambda application and deployment group, created through the server
    deployment_group("shop-app", "shop-group")
    appspec = render_appspec(
        DeploymentTarget(function_name="shop", alias="live", current_version="1", target_version="2")
    )

    # WHEN a deployment is created through the server
    deployment_id = start_deployment("shop-app", "shop-group", appspec)
    codedeploy = boto3.client("codedeploy")
    info: Any = codedeploy.get_deployment(deploymentId=deployment_id)["deploymentInfo"]
    revision = codedeploy.get_application_revision(applicationName="shop-app", revision=info["revision"])

    # THEN GetDeployment answers as AWS does for a Lambda deployment (moto alone echoes the content
    # and names the Server default config), and GetApplicationRevision (which moto lacks) has the AppSpec
    assert info["status"] == "Created"
    assert info["deploymentConfigName"] == "CodeDeployDefault.LambdaAllAtOnce"
    assert "content" not in info["revision"]["appSpecContent"]
    assert info["revision"]["appSpecContent"]["sha256"]
    assert revision["revision"]["appSpecContent"]["content"] == appspec
    # AND nothing plays CodeDeploy: the deployment never starts, so it has no target yet
    with pytest.raises(ClientError) as raised:
        codedeploy.list_deployment_targets(deploymentId=deployment_id)
    assert raised.value.response["Error"]["Code"] == "DeploymentNotStartedException"


# --- the command: starting and stopping -----------------------------------------------------------

ENVIRONMENT_PID = """
import os

def handler(event, context):
    return {"environment_pid": os.getppid()}
"""


def test_the_command_prints_what_to_export_and_ctrl_c_stops_it_cleanly_with_exit_130(
    tmp_path: Path, aws_env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN `deployguard localaws serve --port 0` started in its own process
    served = serve(tmp_path)
    try:
        # WHEN a shell exports what it printed (and nothing else) and invokes a function through it
        monkeypatch.delenv("AWS_SESSION_TOKEN")
        for name, value in served.environment.items():
            monkeypatch.setenv(name, value)
        function_with_versions("pid", [Version(ENVIRONMENT_PID)])
        answer = boto3.client("lambda").invoke(FunctionName="pid")
        environment_pid = int(json.loads(answer["Payload"].read())["environment_pid"])

        # AND Ctrl-C arrives
        code = served.interrupt()
    finally:
        if served.process.poll() is None:
            served.process.kill()

    # THEN it printed the endpoint it serves and every variable a shell needs
    assert served.banner.startswith("DeployGuard's local AWS (moto ")
    assert served.endpoint.startswith("http://127.0.0.1:")
    assert f"serves {served.endpoint}\n" in served.banner
    assert served.environment.keys() == {
        "AWS_ENDPOINT_URL",
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_DEFAULT_REGION",
    }
    # AND it exits 130 (interrupted), saying it stopped
    assert code == 130
    assert served.stderr.read_text() == "deployguard: the local AWS stopped (Ctrl-C); its state is gone\n"
    # AND the function's execution environment stopped with it (and was reaped: no orphan left)
    with pytest.raises(ProcessLookupError):
        os.kill(environment_pid, 0)
    # AND the port is free again
    with socket.create_server(("127.0.0.1", int(served.endpoint.rsplit(":", 1)[1]))):
        pass


def test_a_port_in_use_is_refused_with_the_fix(server: LocalAws, capsys: pytest.CaptureFixture[str]) -> None:
    # WHEN a second local AWS is asked for the port a first one serves
    code = main(["localaws", "serve", "--port", str(server.port)])

    # THEN it exits 2, saying why and what to do
    assert code == 2
    assert capsys.readouterr().err == (
        f"deployguard: port {server.port} on 127.0.0.1 is in use (another local AWS or another program "
        "listens on it): stop that program, or pick another port with --port N (--port 0 picks a free one)\n"
    )


def test_a_port_that_is_no_port_is_refused_by_the_parser(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["localaws", "serve", "--port", "70000"])
    assert exited.value.code == 2
    assert "'70000' is not a port: give 0 to 65535 (0 picks a free one)" in capsys.readouterr().err
