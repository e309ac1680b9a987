"""The local Lambda runner on moto: real boto3 calls, each version's real code in a subprocess.

The orders example app is deployed as moto stores it (zip_directory), with versions built from
the broken releases; small probe functions check what a handler sees (context, environment)."""

from __future__ import annotations

import base64
import importlib.util
import io
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import textwrap
import time
import uuid
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import boto3
import pytest
import requests
from botocore.exceptions import ClientError
from moto import mock_aws

from deployguard_cli.example_app import BROKEN_RELEASES
from deployguard_cli.localaws import lambda_runner, node_sdk
from deployguard_cli.localaws.lambda_runner import zip_directory
from tests.support.aws import ROLE_POLICY
from tests.support.handlers import REGION, ROOT

if TYPE_CHECKING:
    from mypy_boto3_lambda import LambdaClient
    from mypy_boto3_lambda.literals import RuntimeType

ORDERS = ROOT / "functions" / "orders"
QUOTE: dict[str, Any] = {
    "action": "quote",
    "items": [{"sku": "A-1", "qty": 1}, {"sku": "B-2", "qty": 2}],
    "customer_id": "c-1001",
}

# What a handler sees: its context, its environment, and (optionally) a printed line.
PROBE = textwrap.dedent(
    """
    import os, sys, time

    def handler(event, context):
        if event.get("sleep"):
            print("going to sleep", flush=True)
            time.sleep(event["sleep"])
        if event.get("say"):
            print(event["say"])
        if event.get("call_aws"):
            import boto3
            event["functions"] = [f["FunctionName"] for f in boto3.client("lambda").list_functions()["Functions"]]
        cc = context.client_context
        return {
            "event": event,
            "function_name": context.function_name,
            "function_version": context.function_version,
            "invoked_function_arn": context.invoked_function_arn,
            "aws_request_id": context.aws_request_id,
            "memory_limit_in_mb": context.memory_limit_in_mb,
            "remaining_ms": context.get_remaining_time_in_millis(),
            "custom": cc.custom if cc else None,
            "client_app_title": cc.client.app_title if cc and cc.client else None,
            "env": dict(os.environ),
            "cwd": os.getcwd(),
        }
    """
)


def zip_of(files: dict[str, str]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, source in files.items():
            archive.writestr(name, source)
    return buffer.getvalue()


def payload_of(answer: Any) -> Any:
    return json.loads(answer["Payload"].read())


def client_context(custom: dict[str, str], **extra: Any) -> str:
    return base64.b64encode(json.dumps({"custom": custom, **extra}).encode()).decode()


@pytest.fixture(scope="module")
def orders_app() -> Any:
    """functions/orders/app.py loaded by path (it is not a package), for create_schema."""
    spec = importlib.util.spec_from_file_location("orders_app_for_runner_tests", ORDERS / "app.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def local_aws(aws_env: None) -> Iterator[None]:
    """moto without Docker, with the runner installed (twice: install is idempotent)."""
    lambda_runner.install()
    lambda_runner.install()
    with mock_aws(config={"lambda": {"use_docker": False}}):
        yield


@pytest.fixture(scope="module")
def session() -> boto3.session.Session:
    """One session for the module: boto3 loads its service models once (moto resets the default one)."""
    return boto3.session.Session(region_name=REGION)


@pytest.fixture
def lam(local_aws: None, session: boto3.session.Session) -> LambdaClient:
    return session.client("lambda")


@pytest.fixture
def role(local_aws: None, session: boto3.session.Session) -> str:
    iam = session.client("iam")
    arn: str = iam.create_role(RoleName="lambda-role", AssumeRolePolicyDocument=ROLE_POLICY)["Role"]["Arn"]
    return arn


@dataclass
class Orders:
    """The orders function: version 1 (good, staging), 2 (string total, dev), 3 (missing
    column), alias live -> 1."""

    database: Path
    lam: LambdaClient
    name: str = "orders"

    def invoke(self, qualifier: str, event: dict[str, Any] | None = None, **kwargs: Any) -> Any:
        return self.lam.invoke(
            FunctionName=self.name, Qualifier=qualifier, Payload=json.dumps(event or QUOTE).encode(), **kwargs
        )

    def orders_written(self) -> int:
        import sqlite3

        with sqlite3.connect(self.database) as db:
            count: int = db.execute("SELECT COUNT(*) FROM orders").fetchone()[0]
        return count


@pytest.fixture
def orders(lam: LambdaClient, role: str, orders_app: Any, tmp_path: Path) -> Orders:
    database: Path = orders_app.create_schema(tmp_path / "orders.db")
    env = {"STAGE": "staging", "DATABASE_URL": f"sqlite://{database}"}
    lam.create_function(
        FunctionName="orders",
        Runtime="python3.12",
        Role=role,
        Handler="app.handler",
        Code={"ZipFile": zip_directory(ORDERS)},
        Timeout=10,
        Environment={"Variables": env},
    )
    lam.publish_version(FunctionName="orders")
    lam.update_function_code(
        FunctionName="orders", ZipFile=zip_directory(ORDERS, replacements=BROKEN_RELEASES["string_total"])
    )
    lam.update_function_configuration(
        FunctionName="orders", Environment={"Variables": {**env, "STAGE": "dev"}}
    )
    lam.publish_version(FunctionName="orders")
    lam.update_function_code(
        FunctionName="orders", ZipFile=zip_directory(ORDERS, replacements=BROKEN_RELEASES["missing_column"])
    )
    lam.publish_version(FunctionName="orders")
    lam.create_alias(FunctionName="orders", Name="live", FunctionVersion="1")
    return Orders(database=database, lam=lam)


def make_probe(lam: LambdaClient, role: str, *, timeout: int = 10, **kwargs: Any) -> str:
    lam.create_function(
        FunctionName="probe",
        Runtime="python3.12",
        Role=role,
        Handler="probe.handler",
        Code={"ZipFile": zip_of({"probe.py": PROBE})},
        Timeout=timeout,
        MemorySize=256,
        **kwargs,
    )
    return "probe"


# --- versions, aliases, answers -------------------------------------------------------------


def test_each_version_runs_its_own_code(orders: Orders) -> None:
    # GIVEN version 1 (good), 2 (string total) and 3 (missing column) of the real orders app
    # WHEN each is invoked with the same quote
    good, string_total, missing_column = (orders.invoke(v) for v in ("1", "2", "3"))

    # THEN version 1 answers the number 12
    assert "FunctionError" not in good
    assert good["ExecutedVersion"] == "1"
    answer = payload_of(good)
    assert answer["total"] == 12 and isinstance(answer["total"], int)
    # ... version 2 the string "12.00"
    assert payload_of(string_total)["total"] == "12.00"
    # ... and version 3 fails the way Lambda reports an unhandled exception
    assert missing_column["FunctionError"] == "Unhandled"
    assert missing_column["StatusCode"] == 200
    error = payload_of(missing_column)
    assert error["errorType"] == "OperationalError"
    assert "profile_image" in error["errorMessage"]
    assert error["stackTrace"] and "app.py" in error["stackTrace"][-1]
    assert set(error) == {"errorMessage", "errorType", "requestId", "stackTrace"}


def test_each_version_sees_its_own_environment(orders: Orders) -> None:
    # GIVEN STAGE=staging for version 1 and STAGE=dev for versions 2 and 3
    # WHEN each is pinged  THEN each answers from its own configuration and knows its version
    assert payload_of(orders.invoke("1", {"action": "ping"})) == {
        "ok": True,
        "stage": "staging",
        "version": "1",
    }
    assert payload_of(orders.invoke("2", {"action": "ping"})) == {"ok": True, "stage": "dev", "version": "2"}
    assert payload_of(orders.invoke("$LATEST", {"action": "ping"}))["version"] == "$LATEST"


def test_an_alias_runs_the_version_it_points_to(orders: Orders) -> None:
    # GIVEN live -> 1
    # WHEN invoked through the alias (as a qualifier, in the name, in the ARN)
    arn = orders.lam.get_function(FunctionName="orders")["Configuration"]["FunctionArn"]
    answers = [
        orders.invoke("live"),
        orders.lam.invoke(FunctionName="orders:live", Payload=json.dumps(QUOTE).encode()),
        orders.lam.invoke(FunctionName=f"{arn}:live", Payload=json.dumps(QUOTE).encode()),
    ]
    # THEN version 1 ran
    assert [a["ExecutedVersion"] for a in answers] == ["1", "1", "1"]
    assert [payload_of(a)["total"] for a in answers] == [12, 12, 12]

    # WHEN the alias moves to 2 (routing weights would be ignored: the caller picks the version)
    orders.lam.update_alias(FunctionName="orders", Name="live", FunctionVersion="2")
    moved = orders.invoke("live")
    # THEN version 2's code answers
    assert moved["ExecutedVersion"] == "2"
    assert payload_of(moved)["total"] == "12.00"


def test_the_client_context_reaches_the_handler(orders: Orders) -> None:
    # GIVEN DeployGuard's synthetic marker in the client context
    synthetic = client_context({"deployguard-synthetic": "true"})

    # WHEN one synthetic and one real quote reach version 1
    assert payload_of(orders.invoke("1", ClientContext=synthetic))["total"] == 12
    assert orders.orders_written() == 0
    assert payload_of(orders.invoke("1"))["total"] == 12

    # THEN only the real one wrote an order (the app read context.client_context.custom)
    assert orders.orders_written() == 1


# --- what a handler sees --------------------------------------------------------------------


def test_the_context_and_environment_look_like_lambdas(
    lam: LambdaClient, role: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a secret and credentials in the parent process, and a function with its own variables
    monkeypatch.setenv("PARENT_ONLY_SECRET", "must-not-leak")
    make_probe(lam, role, Environment={"Variables": {"GREETING": "hello"}})
    lam.publish_version(FunctionName="probe")
    lam.create_alias(FunctionName="probe", Name="live", FunctionVersion="1")

    # WHEN invoked through the alias with a client context
    answer = lam.invoke(
        FunctionName="probe",
        Qualifier="live",
        Payload=b'{"n": 1}',
        ClientContext=client_context({"k": "v"}, client={"app_title": "smoke"}),
    )
    seen = payload_of(answer)

    # THEN the context is Lambda's
    assert seen["event"] == {"n": 1}
    assert seen["function_name"] == "probe"
    assert seen["function_version"] == "1"
    assert seen["invoked_function_arn"].endswith(":function:probe:live")
    assert seen["memory_limit_in_mb"] == "256"
    assert 9_000 < seen["remaining_ms"] <= 10_000
    assert seen["aws_request_id"]
    assert seen["custom"] == {"k": "v"}
    assert seen["client_app_title"] == "smoke"
    # ... and so is the environment: the version's variables and Lambda's, none of the parent's
    env = seen["env"]
    assert env["GREETING"] == "hello"
    assert env["AWS_LAMBDA_FUNCTION_NAME"] == "probe"
    assert env["AWS_LAMBDA_FUNCTION_VERSION"] == "1"
    assert env["AWS_REGION"] == REGION
    assert env["LAMBDA_TASK_ROOT"] == seen["cwd"]
    assert "PATH" in env
    assert "PARENT_ONLY_SECRET" not in env
    assert env["AWS_ACCESS_KEY_ID"] != "testing"  # the aws_env fixture's parent credentials
    assert env["AWS_SESSION_TOKEN"] != "testing"


def test_log_type_tail_returns_the_end_of_the_log(lam: LambdaClient, role: str) -> None:
    make_probe(lam, role)

    answer = lam.invoke(FunctionName="probe", Payload=b'{"say": "hello from the handler"}', LogType="Tail")

    log = base64.b64decode(answer["LogResult"]).decode()
    assert "hello from the handler" in log
    assert log.startswith("START RequestId: ") or "\nSTART RequestId: " in log
    assert "\nEND RequestId: " in log and "\nREPORT RequestId: " in log
    assert len(base64.b64decode(answer["LogResult"])) <= 4096
    assert "LogResult" not in lam.invoke(FunctionName="probe", Payload=b"{}")


def test_init_output_comes_before_start_and_handler_output_inside(lam: LambdaClient, role: str) -> None:
    # GIVEN a module that logs at import (init) and a handler that logs and fails
    source = "print('init says hi')\ndef handler(event, context):\n    print('handler says hi')\n    raise KeyError('k')\n"
    lam.create_function(
        FunctionName="chatty",
        Runtime="python3.12",
        Role=role,
        Handler="app.handler",
        Code={"ZipFile": zip_of({"app.py": source})},
    )

    answer = lam.invoke(FunctionName="chatty", Payload=b"{}", LogType="Tail")

    # THEN the log reads as Lambda's: init output, START, the handler's output and error, END, REPORT
    log = base64.b64decode(answer["LogResult"]).decode()
    marks = [
        "init says hi",
        "START RequestId",
        "handler says hi",
        "[ERROR] KeyError: 'k'",
        "END RequestId",
        "REPORT RequestId",
    ]
    positions = [log.index(mark) for mark in marks]
    assert positions == sorted(positions), log


def test_the_log_also_lands_in_cloudwatch_logs(
    lam: LambdaClient, role: str, session: boto3.session.Session
) -> None:
    make_probe(lam, role)

    lam.invoke(FunctionName="probe", Payload=b'{"say": "to cloudwatch"}')

    events = session.client("logs").filter_log_events(logGroupName="/aws/lambda/probe")["events"]
    assert any(e["message"] == "to cloudwatch" for e in events), [e["message"] for e in events]


def test_the_timeout_is_enforced(lam: LambdaClient, role: str) -> None:
    # GIVEN a 1 s timeout  WHEN the handler sleeps 5 s
    make_probe(lam, role, timeout=1)
    started = time.monotonic()
    answer = lam.invoke(FunctionName="probe", Payload=b'{"sleep": 5}', LogType="Tail")

    # THEN it is killed after about 1 s with Lambda's timeout error
    assert time.monotonic() - started < 4.5  # not the 5 s the handler sleeps
    assert answer["FunctionError"] == "Unhandled"
    error = payload_of(answer)
    assert error["errorType"] == "Sandbox.Timedout"
    assert "Task timed out after 1.0" in error["errorMessage"]
    log = base64.b64decode(answer["LogResult"]).decode()
    assert "going to sleep" in log and "Task timed out after" in log
    assert lambda_runner.invocations()[-1].error == "Sandbox.Timedout"


@pytest.mark.parametrize("handler", ["pkg/probe.handler", "pkg.probe.handler"])
def test_a_handler_module_may_be_a_path_or_dotted(lam: LambdaClient, role: str, handler: str) -> None:
    lam.create_function(
        FunctionName="nested",
        Runtime="python3.12",
        Role=role,
        Handler=handler,
        Code={"ZipFile": zip_of({"pkg/probe.py": PROBE})},
    )

    assert payload_of(lam.invoke(FunctionName="nested", Payload=b'{"x": 1}'))["event"] == {"x": 1}


def test_an_init_failure_answers_like_the_python_runtime(lam: LambdaClient, role: str) -> None:
    lam.create_function(
        FunctionName="broken",
        Runtime="python3.12",
        Role=role,
        Handler="missing.handler",
        Code={"ZipFile": zip_of({"probe.py": PROBE})},
    )

    answer = lam.invoke(FunctionName="broken", Payload=b"{}")

    assert answer["FunctionError"] == "Unhandled"
    error = payload_of(answer)
    assert error["errorType"] == "Runtime.ImportModuleError"
    assert error["errorMessage"] == "Unable to import module 'missing': No module named 'missing'"


def test_layers_are_importable(lam: LambdaClient, role: str) -> None:
    # GIVEN a layer with python/shared_helper.py and a function that imports it
    layer = lam.publish_layer_version(
        LayerName="shared",
        Content={"ZipFile": zip_of({"python/shared_helper.py": "ANSWER = 42\n"})},
        CompatibleRuntimes=["python3.12"],
    )["LayerVersionArn"]
    lam.create_function(
        FunctionName="uses-layer",
        Runtime="python3.12",
        Role=role,
        Handler="app.handler",
        Code={
            "ZipFile": zip_of(
                {"app.py": "import shared_helper\ndef handler(e, c):\n    return shared_helper.ANSWER\n"}
            )
        },
        Layers=[layer],
    )

    assert payload_of(lam.invoke(FunctionName="uses-layer", Payload=b"{}")) == 42


# --- the worker pool: isolation -------------------------------------------------------------

# Module state set at init and changed by each invocation; the process ids that served it.
STATEFUL = textwrap.dedent(
    """
    import os, time, uuid

    INIT_TOKEN = uuid.uuid4().hex
    SEEN = []

    def handler(event, context):
        if event.get("exit"):
            os._exit(event["exit"])
        time.sleep(event.get("sleep", 0))
        SEEN.append(event.get("n"))
        os.environ["SET_BY_HANDLER"] = "yes"
        return {
            "init_token": INIT_TOKEN,
            "seen": list(SEEN),
            "env": {k: v for k, v in os.environ.items() if k.startswith(("ONLY_", "SET_BY"))},
            "server_pid": os.getppid(),
        }
    """
)


@pytest.fixture(params=["pool", "fresh"])
def mode(request: pytest.FixtureRequest) -> Iterator[str]:
    previous = lambda_runner.set_mode(request.param)
    yield request.param
    lambda_runner.set_mode(previous)


def stateful_versions(lam: LambdaClient, role: str) -> None:
    """Version 1 with ONLY_V1, version 2 with ONLY_V2 and one edit of the code."""
    lam.create_function(
        FunctionName="stateful",
        Runtime="python3.12",
        Role=role,
        Handler="app.handler",
        Code={"ZipFile": zip_of({"app.py": STATEFUL})},
        # NOTE: a variable of its own per test, so that no test meets an environment another warmed
        Environment={"Variables": {"ONLY_V1": "one", "TEST_RUN": uuid.uuid4().hex}},
        Timeout=1,
    )
    lam.publish_version(FunctionName="stateful")
    lam.update_function_code(FunctionName="stateful", ZipFile=zip_of({"app.py": STATEFUL + "\nV = 2\n"}))
    lam.update_function_configuration(FunctionName="stateful", Environment={"Variables": {"ONLY_V2": "two"}})
    lam.publish_version(FunctionName="stateful")


def stateful(lam: LambdaClient, version: str, event: dict[str, Any]) -> Any:
    return payload_of(
        lam.invoke(FunctionName="stateful", Qualifier=version, Payload=json.dumps(event).encode())
    )


def test_each_version_sees_only_its_own_environment_and_module_state(
    lam: LambdaClient, role: str, mode: str
) -> None:
    # GIVEN two versions with different variables and code
    stateful_versions(lam, role)

    # WHEN they are invoked in turn, each invocation changing its module state and os.environ
    one_a, two, one_b = (
        stateful(lam, "1", {"n": "1a"}),
        stateful(lam, "2", {"n": "2"}),
        stateful(lam, "1", {"n": "1b"}),
    )

    # THEN each sees its own variables only, and none sees what another invocation changed
    assert one_a["env"] == one_b["env"] == {"ONLY_V1": "one", "SET_BY_HANDLER": "yes"}
    assert two["env"] == {"ONLY_V2": "two", "SET_BY_HANDLER": "yes"}
    assert [one_a["seen"], two["seen"], one_b["seen"]] == [["1a"], ["2"], ["1b"]]
    # ... and the versions never share an initialized module
    assert one_a["init_token"] != two["init_token"]
    if mode == "pool":  # one init per version; every invocation starts from it
        assert one_a["init_token"] == one_b["init_token"]
        assert one_a["server_pid"] == one_b["server_pid"] != two["server_pid"]
    else:  # every invocation is a cold start
        assert one_a["init_token"] != one_b["init_token"]


def test_a_crashed_or_timed_out_invocation_does_not_poison_the_pool(lam: LambdaClient, role: str) -> None:
    # GIVEN a version already warm in the pool
    stateful_versions(lam, role)
    first = stateful(lam, "1", {"n": 1})

    # WHEN one invocation kills its process (os._exit)
    crashed = lam.invoke(FunctionName="stateful", Qualifier="1", Payload=b'{"exit": 3}')

    # ... and another outlives its 1 s timeout
    timed_out = stateful(lam, "1", {"n": 2, "sleep": 3})

    # THEN each answers as Lambda does, and the next one runs from the same init
    assert crashed["FunctionError"] == "Unhandled"
    error = payload_of(crashed)
    assert error["errorType"] == "Runtime.ExitError"
    assert "exit status 3" in error["errorMessage"]
    assert timed_out["errorType"] == "Sandbox.Timedout"
    after = stateful(lam, "1", {"n": 3})
    assert after["seen"] == [3] and after["init_token"] == first["init_token"]


def test_a_warm_invocation_logs_no_init_in_its_environments_stream(
    lam: LambdaClient, role: str, session: boto3.session.Session
) -> None:
    # GIVEN a version invoked twice in pool mode (the default)
    stateful_versions(lam, role)
    cold, warm = (
        base64.b64decode(
            lam.invoke(FunctionName="stateful", Qualifier="1", Payload=b"{}", LogType="Tail")["LogResult"]
        ).decode()
        for _ in range(2)
    )

    # THEN the first REPORT carries Init Duration, the second (a warm start) does not
    assert "Init Duration" in cold
    assert "REPORT RequestId" in warm and "Init Duration" not in warm
    # ... and both went to the one log stream of that execution environment
    streams = session.client("logs").describe_log_streams(logGroupName="/aws/lambda/stateful")["logStreams"]
    assert len(streams) == 1 and "[1]" in streams[0]["logStreamName"]


def test_a_dead_fork_server_is_replaced(lam: LambdaClient, role: str) -> None:
    # GIVEN a warm version whose fork server is then killed from outside
    stateful_versions(lam, role)
    first = stateful(lam, "1", {"n": 1})
    os.kill(first["server_pid"], signal.SIGKILL)

    # WHEN it is invoked again  THEN a new server runs it, with a new init
    after = stateful(lam, "1", {"n": 2})
    assert after["seen"] == [2]
    assert after["server_pid"] != first["server_pid"]
    assert after["init_token"] != first["init_token"]


# --- invocation types, records, fallbacks ---------------------------------------------------


def test_event_invocations_run_and_dry_runs_do_not(orders: Orders) -> None:
    before = len(lambda_runner.invocations())

    # WHEN invoked asynchronously  THEN 202 at once, and the code runs (real traffic: one order)
    assert orders.invoke("1", InvocationType="Event")["StatusCode"] == 202
    assert lambda_runner.wait_for_events(timeout=10)
    assert orders.orders_written() == 1
    # WHEN dry-run  THEN 204 and nothing runs
    assert orders.invoke("1", InvocationType="DryRun")["StatusCode"] == 204
    records = lambda_runner.invocations()[before:]
    assert [(r.function, r.version, r.invocation_type, r.error) for r in records] == [
        ("orders", "1", "Event", None)
    ]


def test_every_invocation_is_recorded(orders: Orders) -> None:
    before = len(lambda_runner.invocations())

    orders.invoke("1")
    orders.invoke("3")

    first, second = lambda_runner.invocations()[before:]
    assert (first.function, first.version, first.error) == ("orders", "1", None)
    assert (second.function, second.version, second.error) == ("orders", "3", "OperationalError")
    assert first.duration_ms > 0 and first.init_duration_ms > 0


def test_functions_that_cannot_run_here_keep_motos_queued_results(lam: LambdaClient, role: str) -> None:
    # GIVEN a function without a zip to run, and a result queued through moto's API
    lam.create_function(
        FunctionName="elsewhere",
        Runtime="python3.12",
        Role=role,
        Handler="index.handler",
        Code={"ZipFile": b"not a zip"},
    )
    queued = requests.post(
        "http://motoapi.amazonaws.com/moto-api/static/lambda-simple/response",
        json={"results": ["queued answer"], "region": REGION},
        timeout=5,
    )
    assert queued.status_code == 201
    before = len(lambda_runner.invocations())

    # WHEN invoked twice  THEN moto's simple behaviour: the queued result, then the echo
    assert lam.invoke(FunctionName="elsewhere", Payload=b'{"a": 1}')["Payload"].read() == b"queued answer"
    assert lam.invoke(FunctionName="elsewhere", Payload=b'{"a": 1}')["Payload"].read() == b'{"a": 1}'
    assert len(lambda_runner.invocations()) == before


# --- runtimes -------------------------------------------------------------------------------

NODE = shutil.which("node")
needs_node = pytest.mark.skipif(NODE is None, reason="node is not on PATH: the Node.js runtime cannot run")

NODE_PROBE = textwrap.dedent(
    """
    exports.handler = async (event, context) => {
      console.log("hello from", context.functionName, { n: 1 });
      if (event.fail) {
        throw new TypeError("bad order " + event.fail);
      }
      return {
        event,
        functionName: context.functionName,
        awsRequestId: context.awsRequestId,
        invokedFunctionArn: context.invokedFunctionArn,
        memoryLimitInMB: context.memoryLimitInMB,
        remaining: context.getRemainingTimeInMillis(),
        region: process.env.AWS_REGION,
      };
    };
    """
)

NODE_CALLBACK = textwrap.dedent(
    """
    export function handler(event, context, callback) {
      setTimeout(() => callback(null, { doubled: event.n * 2 }), 10);
    }
    """
)


def make_node(lam: LambdaClient, role: str, name: str, files: dict[str, str], handler: str) -> str:
    lam.create_function(
        FunctionName=name,
        Runtime="nodejs20.x",
        Role=role,
        Handler=handler,
        Code={"ZipFile": zip_of(files)},
        Timeout=10,
        MemorySize=256,
    )
    return name


@needs_node
def test_a_nodejs_async_handler_answers_with_its_context(lam: LambdaClient, role: str) -> None:
    # GIVEN a CommonJS async handler
    make_node(lam, role, "node-probe", {"index.js": NODE_PROBE}, "index.handler")

    # WHEN invoked
    answer = lam.invoke(FunctionName="node-probe", Payload=b'{"order": 7}')

    # THEN it answers with the event and a context shaped like the Node runtime's
    assert answer.get("FunctionError") is None
    seen = payload_of(answer)
    assert seen["event"] == {"order": 7}
    assert seen["functionName"] == "node-probe"
    assert seen["invokedFunctionArn"].endswith(":function:node-probe")
    assert seen["memoryLimitInMB"] == "256"
    assert 0 < seen["remaining"] <= 10_000
    assert seen["region"] == REGION
    assert lambda_runner.invocations()[-1].request_id == seen["awsRequestId"]


@needs_node
def test_a_nodejs_callback_handler_in_an_esm_module_answers(lam: LambdaClient, role: str) -> None:
    # GIVEN a callback-style handler in an .mjs module
    make_node(lam, role, "node-callback", {"lib/calc.mjs": NODE_CALLBACK}, "lib/calc.handler")

    # WHEN invoked  THEN the value passed to the callback is the answer
    answer = lam.invoke(FunctionName="node-callback", Payload=b'{"n": 21}')
    assert payload_of(answer) == {"doubled": 42}


@needs_node
def test_a_nodejs_handler_that_throws_answers_lambdas_error_shape(lam: LambdaClient, role: str) -> None:
    make_node(lam, role, "node-probe", {"index.js": NODE_PROBE}, "index.handler")

    answer = lam.invoke(FunctionName="node-probe", Payload=b'{"fail": "o-1"}', LogType="Tail")

    error = payload_of(answer)
    assert answer["FunctionError"] == "Unhandled"
    assert set(error) == {"errorType", "errorMessage", "trace"}
    assert (error["errorType"], error["errorMessage"]) == ("TypeError", "bad order o-1")
    assert error["trace"][0] == "TypeError: bad order o-1"
    assert any("index.js" in line for line in error["trace"])
    log = base64.b64decode(answer["LogResult"]).decode()
    assert "\tERROR\tInvoke Error \t{" in log
    assert lambda_runner.invocations()[-1].error == "TypeError"


@needs_node
def test_nodejs_console_lines_land_in_the_log_stream(
    lam: LambdaClient, role: str, session: boto3.session.Session
) -> None:
    make_node(lam, role, "node-probe", {"index.js": NODE_PROBE}, "index.handler")

    request_id = payload_of(lam.invoke(FunctionName="node-probe", Payload=b"{}"))["awsRequestId"]

    logs = session.client("logs")
    stream = logs.describe_log_streams(logGroupName="/aws/lambda/node-probe")["logStreams"][0]
    messages = [
        e["message"]
        for e in logs.get_log_events(
            logGroupName="/aws/lambda/node-probe", logStreamName=stream["logStreamName"]
        )["events"]
    ]
    line = next(m for m in messages if "hello from" in m)
    stamp, logged_id, level, text = line.split("\t")
    assert (logged_id, level, text) == (request_id, "INFO", "hello from node-probe { n: 1 }")
    assert stamp.endswith("Z")
    assert messages[0].startswith("START RequestId: ") and messages[-1].startswith("REPORT RequestId: ")


# --- Node.js execution environments (pool mode: warm, one invocation at a time each) -------------

# Module state set at init and counted by each invocation, and the process that served it.
NODE_COUNTER = textwrap.dedent(
    """
    let count = 0;
    console.log("init of version", process.env.AWS_LAMBDA_FUNCTION_VERSION);
    const pause = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

    exports.handler = async (event, context) => {
      count += 1;
      if (event.exit !== undefined) {
        process.exit(event.exit);
      }
      if (event.throw_later) {
        setTimeout(() => { throw new Error("escaped the handler"); }, 0);
        await pause(5000);
      }
      if (event.sleep_ms) {
        await pause(event.sleep_ms);
      }
      if (event.later) {
        setTimeout(() => console.log(event.later), 20);
      }
      return { count, pid: process.pid, only: process.env.ONLY, remaining: context.getRemainingTimeInMillis() };
    };
    """
)


@dataclass
class NodeCounter:
    lam: LambdaClient
    name: str = "node-counter"

    def invoke(self, event: dict[str, Any] | None = None, qualifier: str = "$LATEST") -> tuple[Any, str]:
        """The answer's payload and its log (LogType=Tail)."""
        answer = self.lam.invoke(
            FunctionName=self.name,
            Qualifier=qualifier,
            Payload=json.dumps(event or {}).encode(),
            LogType="Tail",
        )
        return payload_of(answer), base64.b64decode(answer["LogResult"]).decode()


def node_counter(lam: LambdaClient, role: str, *, timeout: int = 10, only: str = "one") -> NodeCounter:
    lam.create_function(
        FunctionName="node-counter",
        Runtime="nodejs20.x",
        Role=role,
        Handler="index.handler",
        Code={"ZipFile": zip_of({"index.js": NODE_COUNTER})},
        Timeout=timeout,
        # NOTE: a variable of its own per test, so that no test meets an environment another warmed
        Environment={"Variables": {"ONLY": only, "TEST_RUN": uuid.uuid4().hex}},
    )
    return NodeCounter(lam)


@needs_node
def test_a_warm_nodejs_environment_keeps_module_state_and_logs_init_once(
    lam: LambdaClient, role: str, session: boto3.session.Session
) -> None:
    # GIVEN a Node.js function whose module counts its invocations
    counter = node_counter(lam, role)

    # WHEN it is invoked three times
    (first, cold), (second, warm), (third, _) = (counter.invoke() for _ in range(3))

    # THEN one environment served them all, its module state carried over, as on Lambda
    assert [first["count"], second["count"], third["count"]] == [1, 2, 3]
    assert first["pid"] == second["pid"] == third["pid"]
    assert 9_000 < second["remaining"] <= 10_000  # each invocation has its own deadline
    # ... the first invocation logged init (before START) and Init Duration; the warm ones neither
    assert cold.index("init of version $LATEST") < cold.index("START RequestId")
    assert "Init Duration" in cold
    assert "init of version" not in warm and "Init Duration" not in warm
    assert "REPORT RequestId" in warm
    # ... all in the environment's one log stream
    streams = session.client("logs").describe_log_streams(logGroupName="/aws/lambda/node-counter")
    assert len(streams["logStreams"]) == 1
    records = lambda_runner.invocations()[-3:]
    assert records[0].init_duration_ms > 0 and records[1].init_duration_ms == records[2].init_duration_ms == 0


@needs_node
def test_what_an_invocation_leaves_pending_runs_in_the_next_one_as_in_a_frozen_environment(
    lam: LambdaClient, role: str
) -> None:
    # GIVEN an invocation that returns with a log line still on a 20 ms timer
    counter = node_counter(lam, role)
    _, first_log = counter.invoke({"later": "left by the first invocation"})

    # WHEN the next invocation comes, well after the timer was due
    time.sleep(0.2)
    _, second_log = counter.invoke()

    # THEN the timer ran only once the environment was thawed, inside the next invocation's log
    assert "left by the first invocation" not in first_log
    assert "left by the first invocation" in second_log


@needs_node
def test_concurrent_invocations_of_one_version_run_in_separate_environments(
    lam: LambdaClient, role: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from concurrent.futures import ThreadPoolExecutor

    # GIVEN a version that may have two environments at once
    monkeypatch.setattr(lambda_runner, "ENVIRONMENTS_PER_VERSION", 2)
    counter = node_counter(lam, role)

    # WHEN two invocations overlap
    with ThreadPoolExecutor(max_workers=2) as pool:
        both = [answer for answer, _ in pool.map(counter.invoke, [{"sleep_ms": 400}] * 2)]

    # THEN each ran in an environment of its own, both cold
    assert both[0]["pid"] != both[1]["pid"]
    assert [answer["count"] for answer in both] == [1, 1]
    assert all(record.init_duration_ms > 0 for record in lambda_runner.invocations()[-2:])

    # WHEN three overlap  THEN the third waits for one of the two, which is then warm
    with ThreadPoolExecutor(max_workers=3) as pool:
        three = [answer for answer, _ in pool.map(counter.invoke, [{"sleep_ms": 200}] * 3)]
    assert {answer["pid"] for answer in three} == {answer["pid"] for answer in both}
    assert sorted(answer["count"] for answer in three) == [2, 2, 3]


@needs_node
def test_a_timeout_kills_the_nodejs_environment_and_the_next_invocation_starts_cold(
    lam: LambdaClient, role: str
) -> None:
    # GIVEN a warm environment of a function with a 1 s timeout
    counter = node_counter(lam, role, timeout=1)
    warm, _ = counter.invoke()

    # WHEN an invocation outlives the timeout
    started = time.monotonic()
    timed_out, log = counter.invoke({"sleep_ms": 5000})

    # THEN it answers Lambda's timeout error after about 1 s
    assert time.monotonic() - started < 4.5
    assert timed_out["errorType"] == "Sandbox.Timedout"
    assert "Task timed out after 1.00 seconds" in timed_out["errorMessage"]
    assert "Task timed out after" in log
    # ... and the environment is gone: the next invocation is a cold start (init again, new state)
    after, cold = counter.invoke()
    assert after["count"] == 1 and after["pid"] != warm["pid"]
    assert "init of version" in cold and "Init Duration" in cold
    with pytest.raises(ProcessLookupError):
        os.kill(warm["pid"], 0)


@needs_node
def test_another_environment_variable_set_is_another_nodejs_environment(lam: LambdaClient, role: str) -> None:
    # GIVEN version 1 with ONLY=one, warm
    counter = node_counter(lam, role, only="one")
    lam.publish_version(FunctionName="node-counter")
    one, _ = counter.invoke(qualifier="1")

    # WHEN $LATEST gets ONLY=two and is invoked
    lam.update_function_configuration(FunctionName="node-counter", Environment={"Variables": {"ONLY": "two"}})
    two, _ = counter.invoke()

    # THEN it runs in an environment of its own, from its own init
    assert (two["only"], two["count"]) == ("two", 1)
    assert two["pid"] != one["pid"]
    # ... and version 1's environment is still warm, untouched
    again, _ = counter.invoke(qualifier="1")
    assert (again["only"], again["count"], again["pid"]) == ("one", 2, one["pid"])


@needs_node
@pytest.mark.parametrize(
    ("event", "error_type", "message"),
    [
        ({"exit": 3}, "Runtime.ExitError", "Runtime exited with error: exit status 3"),
        ({"throw_later": True}, "Error", "escaped the handler"),
    ],
    ids=["process-exit", "uncaught-exception"],
)
def test_a_crash_ends_only_its_nodejs_environment(
    lam: LambdaClient, role: str, event: dict[str, Any], error_type: str, message: str
) -> None:
    # GIVEN two warm versions of a function
    counter = node_counter(lam, role)
    lam.publish_version(FunctionName="node-counter")
    other, _ = counter.invoke(qualifier="1")
    warm, _ = counter.invoke()

    # WHEN an invocation of $LATEST crashes its process
    crashed, _ = counter.invoke(event)

    # THEN it answers as the Node runtime does
    assert crashed["errorType"] == error_type
    assert message in crashed["errorMessage"]
    assert lambda_runner.invocations()[-1].error == error_type
    # ... the next invocation of $LATEST starts a new environment
    after, cold = counter.invoke()
    assert after["count"] == 1 and after["pid"] != warm["pid"]
    assert "Init Duration" in cold
    # ... and version 1's environment lives on
    still, _ = counter.invoke(qualifier="1")
    assert (still["count"], still["pid"]) == (2, other["pid"])


@needs_node
def test_a_failed_nodejs_init_answers_the_runtimes_error_and_is_not_kept(
    lam: LambdaClient, role: str
) -> None:
    # GIVEN a module that logs at init but does not export the handler the configuration names
    source = "console.log('loading the module');\nexports.other = async () => 1;\n"
    make_node(lam, role, "node-broken", {"index.js": source}, "index.handler")

    # WHEN invoked twice
    answers = [lam.invoke(FunctionName="node-broken", Payload=b"{}", LogType="Tail") for _ in range(2)]

    # THEN each answers the runtime's init error, and each ran init again (a failed init is not kept)
    for answer in answers:
        assert answer["FunctionError"] == "Unhandled"
        assert payload_of(answer)["errorType"] == "Runtime.HandlerNotFound"
        log = base64.b64decode(answer["LogResult"]).decode()
        assert log.index("loading the module") < log.index("START RequestId")


NODE_CALLBACKS = textwrap.dedent(
    """
    let calls = 0;
    exports.handler = (event, context, callback) => {
      calls += 1;
      if (event.call_back) {
        setTimeout(() => callback(null, { calls }), 5);
      } else {
        setTimeout(() => console.log("done without calling back"), 5);
      }
    };
    """
)


@needs_node
def test_a_warm_nodejs_callback_handler_answers_each_time(lam: LambdaClient, role: str) -> None:
    # GIVEN a callback handler that calls back, or lets its event loop empty without calling back
    make_node(lam, role, "node-callbacks", {"index.js": NODE_CALLBACKS}, "index.handler")

    def invoke(event: dict[str, Any]) -> Any:
        return payload_of(lam.invoke(FunctionName="node-callbacks", Payload=json.dumps(event).encode()))

    # WHEN invoked in turn in one environment  THEN each answers: the callback's value, or null
    assert invoke({"call_back": True}) == {"calls": 1}
    assert invoke({}) is None
    assert invoke({}) is None
    assert invoke({"call_back": True}) == {"calls": 4}


@needs_node
def test_in_fresh_mode_every_nodejs_invocation_is_a_cold_start(lam: LambdaClient, role: str) -> None:
    # GIVEN the runner in fresh mode
    previous = lambda_runner.set_mode("fresh")
    try:
        counter = node_counter(lam, role)

        # WHEN invoked twice
        (first, first_log), (second, second_log) = counter.invoke(), counter.invoke()
    finally:
        lambda_runner.set_mode(previous)

    # THEN each ran in a process of its own, from its own init
    assert (first["count"], second["count"]) == (1, 1)
    assert first["pid"] != second["pid"]
    assert "Init Duration" in first_log and "Init Duration" in second_log


# --- the AWS SDK the Node.js runtime ships --------------------------------------------------
# Installed with npm once per machine (node_sdk's cache): the first run of these tests pays it.

needs_npm = pytest.mark.skipif(
    NODE is None or shutil.which("npm") is None,
    reason="node or npm is not on PATH: the SDK the Node.js runtime ships cannot be installed",
)

LIST_BUCKETS = {
    "v2": textwrap.dedent(
        """
        const AWS = require("aws-sdk");
        const s3 = new AWS.S3();
        exports.handler = async () => ({ buckets: (await s3.listBuckets().promise()).Buckets.map((b) => b.Name) });
        """
    ),
    "v3": textwrap.dedent(
        """
        const { S3Client, ListBucketsCommand } = require("@aws-sdk/client-s3");
        const s3 = new S3Client({});
        exports.handler = async () => ({ buckets: (await s3.send(new ListBucketsCommand({}))).Buckets.map((b) => b.Name) });
        """
    ),
    "v3-esm": textwrap.dedent(
        """
        import { S3Client, ListBucketsCommand } from "@aws-sdk/client-s3";
        const s3 = new S3Client({});
        export const handler = async () => ({ buckets: (await s3.send(new ListBucketsCommand({}))).Buckets.map((b) => b.Name) });
        """
    ),
}


@dataclass
class Served:
    """The local AWS behind HTTP (``deployguard localaws serve``'s server) and clients of it."""

    endpoint: str
    lam: LambdaClient
    role: str
    session: boto3.session.Session

    def create_bucket(self, name: str) -> None:
        self.session.client("s3", endpoint_url=self.endpoint).create_bucket(Bucket=name)


@pytest.fixture
def served(aws_env: None, session: boto3.session.Session) -> Iterator[Served]:
    from deployguard_cli.localaws.server import LocalAws

    with LocalAws(port=0) as server:
        try:
            iam = session.client("iam", endpoint_url=server.endpoint)
            role = iam.create_role(RoleName="sdk-role", AssumeRolePolicyDocument=ROLE_POLICY)["Role"]["Arn"]
            yield Served(
                server.endpoint, session.client("lambda", endpoint_url=server.endpoint), role, session
            )
        finally:
            requests.post(f"{server.endpoint}/moto-api/reset", timeout=10)


@needs_npm
@pytest.mark.parametrize(
    ("runtime", "sdk", "handler_file"),
    [
        ("nodejs16.x", "v2", "index.js"),
        ("nodejs20.x", "v3", "index.js"),
        ("nodejs20.x", "v3-esm", "index.mjs"),
    ],
    ids=["nodejs16-aws-sdk-v2", "nodejs20-client-s3", "nodejs20-client-s3-esm"],
)
def test_a_nodejs_function_calls_the_embedded_aws_with_the_sdk_its_runtime_ships(
    served: Served, runtime: RuntimeType, sdk: str, handler_file: str
) -> None:
    # GIVEN a bucket on the served local AWS, and a function that uses the SDK without bundling it
    served.create_bucket(f"runtime-sdk-{sdk}")
    served.lam.create_function(
        FunctionName="list-buckets",
        Runtime=runtime,
        Role=served.role,
        Handler="index.handler",
        Code={"ZipFile": zip_of({handler_file: LIST_BUCKETS[sdk]})},
        Timeout=30,
    )

    # WHEN invoked through the server
    answer = served.lam.invoke(FunctionName="list-buckets", Payload=b"{}")

    # THEN the runtime's SDK (v2 configured by the bootstrap, v3 by AWS_ENDPOINT_URL) listed the
    # embedded AWS's buckets
    assert answer.get("FunctionError") is None, payload_of(answer)
    assert payload_of(answer) == {"buckets": [f"runtime-sdk-{sdk}"]}


PUT_AND_GET = textwrap.dedent(
    """
    const { S3Client, PutObjectCommand, GetObjectCommand } = require("@aws-sdk/client-s3");
    const s3 = new S3Client({});
    exports.handler = async (event) => {
      await s3.send(new PutObjectCommand({ Bucket: event.bucket, Key: "note.txt", Body: "kept" }));
      const got = await s3.send(new GetObjectCommand({ Bucket: event.bucket, Key: "note.txt" }));
      return got.Body.transformToString();
    };
    """
)


@needs_npm
def test_the_sdk_v3_reaches_buckets_of_a_local_aws_served_as_localhost(
    aws_env: None, session: boto3.session.Session
) -> None:
    from deployguard_cli.localaws.server import LocalAws

    # GIVEN the local AWS served as localhost (where the SDK v3 would address <bucket>.localhost)
    with LocalAws(host="localhost", port=0) as server:
        try:
            assert server.endpoint.startswith("http://localhost:")
            iam = session.client("iam", endpoint_url=server.endpoint)
            role = iam.create_role(RoleName="sdk-role", AssumeRolePolicyDocument=ROLE_POLICY)["Role"]["Arn"]
            session.client("s3", endpoint_url=server.endpoint).create_bucket(Bucket="notes")
            lam = session.client("lambda", endpoint_url=server.endpoint)
            lam.create_function(
                FunctionName="put-and-get",
                Runtime="nodejs20.x",
                Role=role,
                Handler="index.handler",
                Code={"ZipFile": zip_of({"index.js": PUT_AND_GET})},
                Timeout=30,
            )

            # WHEN the function writes and reads an object of a bucket
            answer = lam.invoke(FunctionName="put-and-get", Payload=b'{"bucket": "notes"}')

            # THEN both calls reached the bucket
            assert payload_of(answer) == "kept"
        finally:
            requests.post(f"{server.endpoint}/moto-api/reset", timeout=10)


STUB_SDK = {
    "aws-sdk/package.json": '{"name": "aws-sdk", "version": "0.0.0-stub", "main": "index.js"}',
    "aws-sdk/index.js": "exports.stub = true;",
}
WHICH_SDK = "exports.handler = async () => ({ stub: require('aws-sdk').stub === true });"


@needs_node
@pytest.mark.parametrize("bundled_in", ["code", "layer"])
def test_an_aws_sdk_the_function_bundles_wins_over_the_runtimes(
    lam: LambdaClient, role: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, bundled_in: str
) -> None:
    # GIVEN a nodejs16.x function whose own node_modules (or layer) holds an aws-sdk stub
    cache = tmp_path / "sdk-cache"
    monkeypatch.setenv("DEPLOYGUARD_NODE_SDK_CACHE", str(cache))
    files = {"index.js": WHICH_SDK}
    layers = []
    if bundled_in == "code":
        files |= {f"node_modules/{name}": text for name, text in STUB_SDK.items()}
    else:
        stub = zip_of({f"nodejs/node_modules/{name}": text for name, text in STUB_SDK.items()})
        layers = [
            lam.publish_layer_version(LayerName="stub-sdk", Content={"ZipFile": stub})["LayerVersionArn"]
        ]
    lam.create_function(
        FunctionName="which-sdk",
        Runtime="nodejs16.x",
        Role=role,
        Handler="index.handler",
        Code={"ZipFile": zip_of(files)},
        Layers=layers,
    )

    # WHEN invoked
    answer = lam.invoke(FunctionName="which-sdk", Payload=b"{}")

    # THEN it loaded its own copy, as on Lambda, and the runtime's was not even installed
    assert payload_of(answer) == {"stub": True}
    assert not cache.exists()


@needs_npm
@pytest.mark.parametrize(
    ("runtime", "sdk", "handler_file", "not_found"),
    [
        ("nodejs16.x", "v2", "index.js", "Error: Cannot find module 'aws-sdk'"),
        (
            "nodejs20.x",
            "v3-esm",
            "index.mjs",
            "Error: Cannot find package '@aws-sdk/client-s3' imported from",
        ),
    ],
    ids=["aws-sdk-v2", "client-s3-esm"],
)
def test_when_the_runtime_sdk_cannot_be_installed_the_function_says_what_is_missing_and_how_to_provide_it(
    lam: LambdaClient,
    role: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    runtime: RuntimeType,
    sdk: str,
    handler_file: str,
    not_found: str,
) -> None:
    # GIVEN a fresh SDK cache and an npm registry that nothing answers
    monkeypatch.setenv("DEPLOYGUARD_NODE_SDK_CACHE", str(tmp_path / "sdk-cache"))
    monkeypatch.setenv("npm_config_registry", "http://127.0.0.1:9")
    monkeypatch.setenv("npm_config_cache", str(tmp_path / "npm-cache"))  # nothing to fall back on
    package = "aws-sdk" if sdk == "v2" else "@aws-sdk/client-s3"
    for name, files in {
        "needs-sdk": {handler_file: LIST_BUCKETS[sdk]},
        "plain": {handler_file: "exports.handler = async () => 'fine';"},
    }.items():
        lam.create_function(
            FunctionName=name,
            Runtime=runtime,
            Role=role,
            Handler="index.handler",
            Code={"ZipFile": zip_of(files)},
        )
    if handler_file.endswith(".mjs"):
        lam.update_function_code(
            FunctionName="plain", ZipFile=zip_of({handler_file: "export const handler = async () => 'fine';"})
        )

    # WHEN the function that uses the SDK is invoked
    answer = lam.invoke(FunctionName="needs-sdk", Payload=b"{}")

    # THEN it fails at init, naming the module, why it is missing and how to provide it
    error = payload_of(answer)
    assert answer["FunctionError"] == "Unhandled"
    assert error["errorType"] == "Runtime.ImportModuleError"
    message = error["errorMessage"]
    assert message.startswith(not_found), message
    assert f"The {runtime} runtime ships {package}; the embedded AWS installs it" in message
    assert "($DEPLOYGUARD_NODE_SDK_CACHE), and could not: npm install" in message
    assert "failed (ECONNREFUSED: FetchError: request to http://127.0.0.1:9/" in message
    assert (
        f"Bundle {package} with the function (its node_modules or a layer's nodejs/node_modules)" in message
    )
    # a function that does not use the SDK is not held back by it; nothing half-installed is left
    assert payload_of(lam.invoke(FunctionName="plain", Payload=b"{}")) == "fine"
    assert [p.name for p in (tmp_path / "sdk-cache").rglob("*") if not p.name.endswith(".lock")] == [
        node_sdk.SNAPSHOT_DATE
    ]


FAKE_NPM = """#!{python}
import pathlib, sys, time
arguments = sys.argv[1:]
with open({runs!r}, "a") as runs:
    runs.write(" ".join(arguments) + "\\n")
time.sleep(0.5)
package = pathlib.Path(arguments[arguments.index("--prefix") + 1]) / "node_modules" / "aws-sdk"
package.mkdir(parents=True)
(package / "package.json").write_text('{{"name": "aws-sdk"}}')
"""
PROVIDE = (
    "import pathlib, sys; from deployguard_cli.localaws import node_sdk; "
    "print(node_sdk.provide('nodejs16.x', code_roots=[pathlib.Path(sys.argv[1])], module_dirs=[]).v2_root)"
)


def test_processes_that_need_the_runtime_sdk_at_once_install_it_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN an npm that takes half a second to install and counts its runs, a fresh cache, and code
    # that requires aws-sdk
    bin_folder, code, runs = tmp_path / "bin", tmp_path / "code", tmp_path / "npm-runs"
    bin_folder.mkdir()
    code.mkdir()
    (code / "index.js").write_text("const AWS = require('aws-sdk');")
    npm = bin_folder / "npm"
    npm.write_text(FAKE_NPM.format(python=sys.executable, runs=str(runs)))
    npm.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_folder}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("DEPLOYGUARD_NODE_SDK_CACHE", str(tmp_path / "sdk-cache"))

    # WHEN four processes (pytest-xdist workers, say) provide the nodejs16.x runtime's SDK at once
    processes = [
        subprocess.Popen([sys.executable, "-c", PROVIDE, str(code)], stdout=subprocess.PIPE, text=True)
        for _ in range(4)
    ]
    roots = {process.communicate(timeout=60)[0].strip() for process in processes}

    # THEN npm ran once, every process got the same installed copy, and no staging folder is left
    assert len(runs.read_text().splitlines()) == 1
    (root,) = roots
    assert (Path(root) / "package.json").is_file()
    assert root.startswith(str((tmp_path / "sdk-cache" / node_sdk.SNAPSHOT_DATE).resolve()))
    assert sorted(p.name for p in (tmp_path / "sdk-cache" / node_sdk.SNAPSHOT_DATE).iterdir()) == [
        ".aws-sdk.lock",
        "aws-sdk",
    ]


OTHER_PYTHON = next(v for v in ("3.11", "3.12") if v != "{}.{}".format(*sys.version_info[:2]))


@pytest.mark.skipif(
    shutil.which(f"python{OTHER_PYTHON}") is None
    and not any((Path.home() / ".pyenv" / "versions").glob(f"{OTHER_PYTHON}.*")),
    reason=f"no Python {OTHER_PYTHON} on this machine to run a python{OTHER_PYTHON} function",
)
def test_a_python_runtime_runs_on_the_python_it_names(lam: LambdaClient, role: str) -> None:
    # GIVEN a function whose Runtime names another Python than the one running the tests
    lam.create_function(
        FunctionName="other-python",
        Runtime=cast("RuntimeType", f"python{OTHER_PYTHON}"),
        Role=role,
        Handler="which.handler",
        Code={
            "ZipFile": zip_of(
                {"which.py": "import sys\ndef handler(e, c): return '%d.%d' % sys.version_info[:2]"}
            )
        },
    )

    # WHEN invoked  THEN it ran on that Python
    assert payload_of(lam.invoke(FunctionName="other-python", Payload=b"{}")) == OTHER_PYTHON


@pytest.mark.parametrize(
    ("runtime", "named"),
    [
        ("java21", r"java21 cannot run on the embedded AWS: it runs python3\.X .* and nodejs\* runtimes"),
        ("python3.99", r"python3\.99 cannot run on the embedded AWS: no Python 3\.99 on this machine"),
    ],
    ids=["unsupported", "python-not-present"],
)
def test_a_runtime_that_cannot_run_here_is_refused_clearly(
    lam: LambdaClient, role: str, runtime: str, named: str
) -> None:
    # GIVEN a function whose runtime cannot run on this machine (moto accepts any runtime name)
    lam.create_function(
        FunctionName="elsewhere",
        Runtime=cast("RuntimeType", runtime),
        Role=role,
        Handler="index.handler",
        Code={"ZipFile": zip_of({"index.py": "def handler(e, c): return 1"})},
    )

    # WHEN invoked  THEN Invoke refuses it, naming the runtime and what runs here; nothing ran
    before = len(lambda_runner.invocations())
    with pytest.raises(ClientError) as refused:
        lam.invoke(FunctionName="elsewhere", Payload=b"{}")
    assert refused.value.response["Error"]["Code"] == "InvalidRuntimeException"
    assert re.search(named, refused.value.response["Error"]["Message"])
    assert len(lambda_runner.invocations()) == before


def test_malformed_requests_are_rejected_like_lambda(lam: LambdaClient, role: str) -> None:
    make_probe(lam, role)

    with pytest.raises(ClientError) as bad_json:
        lam.invoke(FunctionName="probe", Payload=b"{not json")
    with pytest.raises(ClientError) as bad_context:
        lam.invoke(FunctionName="probe", Payload=b"{}", ClientContext=base64.b64encode(b"[1]").decode())

    assert bad_json.value.response["Error"]["Code"] == "InvalidRequestContentException"
    assert bad_context.value.response["Error"]["Code"] == "InvalidRequestContentException"


# --- through a moto server ------------------------------------------------------------------


def test_through_a_threaded_moto_server_the_function_can_call_aws_back(
    aws_env: None, monkeypatch: pytest.MonkeyPatch, session: boto3.session.Session
) -> None:
    from moto.core.config import default_user_config
    from moto.server import ThreadedMotoServer

    # GIVEN an in-process moto server without Docker and the runner installed
    monkeypatch.setitem(default_user_config, "lambda", {"use_docker": False})
    lambda_runner.install()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        _, port = server.get_host_and_port()
        endpoint = f"http://127.0.0.1:{port}"
        iam = session.client("iam", endpoint_url=endpoint)
        lam = session.client("lambda", endpoint_url=endpoint)
        role = iam.create_role(RoleName="server-role", AssumeRolePolicyDocument=ROLE_POLICY)["Role"]["Arn"]
        make_probe(lam, role)

        # WHEN the function calls Lambda with boto3 (with the credentials and endpoint it was given)
        answer = lam.invoke(FunctionName="probe", Payload=b'{"call_aws": true}')

        # THEN its AWS calls reached the same moto server
        seen = payload_of(answer)
        assert seen["env"]["AWS_ENDPOINT_URL"] == endpoint
        assert seen["event"]["functions"] == ["probe"]
    finally:
        server.stop()


# --- zip_directory --------------------------------------------------------------------------


def test_zip_directory_is_stable_and_leaves_caches_out(tmp_path: Path) -> None:
    (tmp_path / "app.py").write_text("X = 1\n")
    (tmp_path / "__pycache__").mkdir()
    (tmp_path / "__pycache__" / "app.cpython-312.pyc").write_bytes(b"\0")

    first = zip_directory(tmp_path)
    (tmp_path / "app.py").touch()

    assert zip_directory(tmp_path) == first
    assert zipfile.ZipFile(io.BytesIO(first)).namelist() == ["app.py"]


def test_zip_directory_applies_a_replacement_once_or_refuses(tmp_path: Path) -> None:
    (tmp_path / "app.py").write_text("LIMIT = 99\nNAME = 'a'\nNAME2 = 'a'\n")

    edited = zip_directory(tmp_path, replacements={"app.py": ("LIMIT = 99", "LIMIT = 3")})
    assert b"LIMIT = 3\n" in zipfile.ZipFile(io.BytesIO(edited)).read("app.py")

    with pytest.raises(ValueError, match=r"is not in app\.py"):
        zip_directory(tmp_path, replacements={"app.py": ("LIMIT = 100", "LIMIT = 3")})
    with pytest.raises(ValueError, match="occurs 2 times"):
        zip_directory(tmp_path, replacements={"app.py": ("'a'", "'b'")})
    with pytest.raises(FileNotFoundError, match=r"other\.py"):
        zip_directory(tmp_path, replacements={"other.py": ("a", "b")})
