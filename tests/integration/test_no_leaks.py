"""No piece of a secret reaches any output, through the real pre-traffic hook on moto and the CLI.

Generated secrets of every kind (tests/support/secrets.py) are planted at any offset of (a) the
function's error text or answer that a smoke case quotes, (b) an AWS error message, (c) an
environment value the configuration check reports on; each release then runs through the
pre-traffic handler (real versions, a real CodeDeploy deployment, the real handler), through
``deployguard check`` and through ``deployguard report`` (reading the hook's records back from
CloudWatch Logs). No 8-character piece of the secret may appear in any output: the hook's log
lines (the crash log and its traceback included), its EMF, its return value, the SNS alert, the
CLI's stdout and stderr (text and ``--json``). And what a function writes cannot drive the terminal
the CLI prints to.

moto is set up once per test; each example publishes a new version and starts a new deployment.
"""

from __future__ import annotations

import contextlib
import io
import json
import textwrap
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from unittest import mock

import boto3
import pytest
from botocore.client import BaseClient
from botocore.exceptions import ClientError
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from deployguard.appspec import DeploymentTarget, render_appspec
from deployguard_cli.main import main
from tests.support.aws import (
    Version,
    deployment_group,
    function_with_versions,
    publish_policy,
    start_deployment,
)
from tests.support.handlers import FakeLambdaContext, load_handler
from tests.support.outcomes import captured_output, outcome_lines
from tests.support.release import APPLICATION, GOOD_ENV, GROUP, HOOK_ENV, POLICY, POLICY_PARAMETER
from tests.support.secrets import B62, SEPARATORS, Planted, assert_no_piece, messages, place, planted

pytestmark = pytest.mark.usefixtures("aws")

EXAMPLES = settings(
    max_examples=20,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
LOG_GROUP = "/aws/lambda/CodeDeployHook_deployguard-staging-pre-traffic"

# The function under test says what its smoke payload tells it to: before + (a variable's value, or
# a literal) + after, raised as an error or returned as its answer.
APP = textwrap.dedent(
    """
    import os

    def handler(event, context):
        quoted = os.environ.get(event["variable"], "") if event.get("variable") else event.get("literal", "")
        text = event.get("before", "") + quoted + event.get("after", "")
        if event.get("how") == "raise":
            raise RuntimeError(text)
        return {"total": text}
    """
)


@dataclass
class Outputs:
    """Everything one release wrote, through the hook and the CLI."""

    hook_log: str = ""
    hook_answer: dict[str, Any] = field(default_factory=dict)
    alerts: list[dict[str, Any]] = field(default_factory=list)
    cli: list[str] = field(default_factory=list)  # stdout and stderr of check and report

    def all(self) -> list[Any]:
        return [self.hook_log, self.hook_answer, self.alerts, *self.cli]


@dataclass
class World:
    """'orders' with version 1 live, its CodeDeploy group, the staging policy, an alert topic read
    back through SQS, and the log group ``deployguard report`` reads."""

    policy_file: Path
    queue_url: str
    released: int = 0

    def release(
        self, environment: dict[str, str], smoke_payload: dict[str, Any], *, as_json: bool
    ) -> Outputs:
        """Publish a version with ``environment``, deploy it (1 -> it) with a policy whose one smoke
        case sends ``smoke_payload``; run the pre-traffic hook, ``deployguard check`` and
        ``deployguard report``; what each wrote."""
        lam = boto3.client("lambda")
        lam.update_function_configuration(FunctionName="orders", Environment={"Variables": environment})
        version = lam.publish_version(FunctionName="orders")["Version"]
        policy = json.loads(json.dumps(POLICY))
        policy["functions"]["orders"]["smoke"] = [
            {"name": "quote", "payload": smoke_payload, "expect": [{"path": "$.total", "equals": 12}]}
        ]
        publish_policy(POLICY_PARAMETER, policy)
        self.policy_file.write_text(json.dumps(policy))
        outputs = Outputs()

        # the pre-traffic hook
        from deployguard_cli.localaws import moto_codedeploy

        target = DeploymentTarget(
            function_name="orders", alias="live", current_version="1", target_version=version
        )
        deployment_id = start_deployment(APPLICATION, GROUP, render_appspec(target))
        execution_id = moto_codedeploy.start_lifecycle_event(deployment_id, "BeforeAllowTraffic")
        event = {"DeploymentId": deployment_id, "LifecycleEventHookExecutionId": execution_id}
        with captured_output() as out:
            outputs.hook_answer = load_handler("pre_traffic").handler(event, FakeLambdaContext())
        outputs.hook_log = out.getvalue()
        assert [r.status for r in moto_codedeploy.hook_reports(deployment_id)] == ["Failed"]
        outputs.alerts = self.alerts()

        # deployguard check, then deployguard report from the hook's records in CloudWatch Logs
        json_flag = ["--json"] if as_json else []
        outputs.cli += cli(
            "check", "--stage", "staging", "--policy", str(self.policy_file), "--function", "orders",
            "--version", version, "--current", "1", *json_flag,
        )  # fmt: skip
        self.released += 1
        stream = f"release-{self.released}"
        logs = boto3.client("logs")
        logs.create_log_stream(logGroupName=LOG_GROUP, logStreamName=stream)
        lines = [line for line in outputs.hook_log.splitlines() if line.startswith("{")]
        logs.put_log_events(
            logGroupName=LOG_GROUP,
            logStreamName=stream,
            logEvents=[{"timestamp": int(time.time() * 1000), "message": line} for line in lines],
        )
        outputs.cli += cli("report", deployment_id, "--log-group", LOG_GROUP, *json_flag)
        return outputs

    def alerts(self) -> list[dict[str, Any]]:
        sqs: Any = boto3.client("sqs")
        delivered: list[dict[str, Any]] = []
        while messages := sqs.receive_message(QueueUrl=self.queue_url, MaxNumberOfMessages=10).get(
            "Messages"
        ):
            for message in messages:
                delivered.append(json.loads(message["Body"]))
                sqs.delete_message(QueueUrl=self.queue_url, ReceiptHandle=message["ReceiptHandle"])
        return delivered


def cli(*argv: str) -> list[str]:
    """Run ``deployguard argv``: its stdout (the logger's lines too) and its stderr."""
    err = io.StringIO()
    with captured_output() as out, contextlib.redirect_stderr(err):
        main(list(argv))
    return [out.getvalue(), err.getvalue()]


@pytest.fixture
def world(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[World]:
    sns, sqs = boto3.client("sns"), boto3.client("sqs")
    topic = sns.create_topic(Name="deployguard-alerts")["TopicArn"]
    queue_url = sqs.create_queue(QueueName="deployguard-alerts-inbox")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=queue_arn)
    environment = {**HOOK_ENV, "DEPLOYGUARD_ALERT_TOPIC_ARN": topic, "DEPLOYGUARD_POLICY_CACHE_SECONDS": "0"}
    for key, value in environment.items():
        monkeypatch.setenv(key, value)
    function_with_versions("orders", [Version(APP, GOOD_ENV)], timeout=10)
    boto3.client("ssm").put_parameter(
        Name="/orders/staging/db-password", Value="not-read", Type="SecureString"
    )
    deployment_group(
        APPLICATION, GROUP, deploymentConfigName="CodeDeployDefault.LambdaCanary10Percent5Minutes"
    )
    boto3.client("logs").create_log_group(logGroupName=LOG_GROUP)
    yield World(policy_file=tmp_path / "staging.json", queue_url=queue_url)


def noise_of(*releases: Callable[[str], Outputs]) -> str:
    """What each kind of release writes when a placeholder stands where the secret goes: ordinary
    text a generated secret must not share 8 characters with (or a 'leak' would be no leak)."""
    return json.dumps(
        [release(placeholder).all() for release in releases for placeholder in ("<the secret>", "")]
    )


def assert_clean(secret: str, outputs: Outputs, noise: str, *quoted_with: str) -> None:
    # NOTE: a "secret" of fewer than 4 distinct characters (``00000000``) cannot be told apart from
    # the timestamps, durations and random ids every run writes afresh, which the one noise run
    # cannot know in advance: such values prove nothing either way, so they are not judged.
    assume(len(set(secret)) >= 4)
    try:
        assert_no_piece(secret, noise, *quoted_with)
    except AssertionError:
        assume(False)  # the secret shares 8 characters with what any release writes
    assert_no_piece(secret, *outputs.all())


# --- (a) the function's error text and answer ---------------------------------------------------------


def test_no_piece_of_a_secret_in_a_functions_error_text_or_answer_reaches_any_output(world: World) -> None:
    def release(secret: Planted, before: str, after: str, how: str, as_json: bool) -> Outputs:
        payload: dict[str, Any] = {"how": how, "before": before, "after": after}
        payload |= {"variable": secret.variable} if secret.variable else {"literal": secret.value}
        return world.release({**GOOD_ENV, **secret.environment}, payload, as_json=as_json)

    noise = noise_of(
        *(
            lambda value, how=how: release(Planted("", "", value, None), "the order failed: ", "", how, False)
            for how in ("raise", "answer")
        )
    )

    @EXAMPLES
    @given(
        secret=planted(),
        message=messages,
        # anywhere, and often across the old clips: 200 characters of an error, 80 of an answer
        at=st.one_of(st.integers(0, 400), st.integers(160, 199), st.integers(40, 78)),
        separators=st.tuples(SEPARATORS, SEPARATORS),
        how=st.sampled_from(["raise", "answer"]),
        as_json=st.booleans(),
    )
    def example(
        secret: Planted, message: str, at: int, separators: tuple[str, str], how: str, as_json: bool
    ) -> None:
        # GIVEN a new version whose error text or answer quotes the secret, anywhere in a long message
        padded = (message + " the order failed" * 30)[:at]  # exactly ``at`` characters before it
        before, after = padded + separators[0], separators[1] + message

        # WHEN it is deployed (the hook fails it), checked and reported
        outputs = release(secret, before, after, how, as_json)

        # THEN no output holds 8 characters of the secret
        assert_clean(secret.secret, outputs, noise, message)

    example()


# --- (b) an AWS error message --------------------------------------------------------------------------


@contextlib.contextmanager
def failing(service: str, operation: str, message: str) -> Iterator[None]:
    """Every client's ``operation`` call (the hook's and the CLI's, whatever their configuration)
    fails with a ValidationException whose message is ``message``."""
    real = BaseClient._make_api_call  # type: ignore[attr-defined]

    def call(client: BaseClient, operation_name: str, api_params: dict[str, Any]) -> Any:
        if (client.meta.service_model.service_name, operation_name) == (service, operation):
            raise ClientError({"Error": {"Code": "ValidationException", "Message": message}}, operation_name)
        return real(client, operation_name, api_params)

    with mock.patch.object(BaseClient, "_make_api_call", call):
        yield


# Calls made after the versions were read (the invocation's redactor is built): the reference check
# and the smoke invocation.
AFTER_THE_REDACTOR = [("ssm", "DescribeParameters"), ("lambda", "Invoke")]


def test_no_piece_of_a_secret_in_an_aws_error_message_reaches_any_output(world: World) -> None:
    def release(secret: Planted, text: str, call: tuple[str, str], as_json: bool) -> Outputs:
        with failing(*call, text):
            return world.release({**GOOD_ENV, **secret.environment}, {"how": "answer"}, as_json=as_json)

    noise = noise_of(
        *(
            lambda text, call=call: release(Planted("", "", "", None), text, call, False)
            for call in AFTER_THE_REDACTOR
        )
    )

    @EXAMPLES
    @given(
        secret=planted(),
        message=messages,
        at=st.integers(0, 600),  # the old clip: 300 characters of an AWS message
        separators=st.tuples(SEPARATORS, SEPARATORS),
        call=st.sampled_from(AFTER_THE_REDACTOR),
        as_json=st.booleans(),
    )
    def example(
        secret: Planted,
        message: str,
        at: int,
        separators: tuple[str, str],
        call: tuple[str, str],
        as_json: bool,
    ) -> None:
        # GIVEN an AWS call that fails with a message echoing the secret, anywhere in a long message
        outputs = release(secret, place(message, secret.value, at, *separators), call, as_json)

        assert_clean(secret.secret, outputs, noise, message)

    example()


# --- (c) an environment value the configuration check reports on ------------------------------------------

URL_PASSWORD = st.text(B62 + "/:!$&()*+,;=._~%-", min_size=8, max_size=32).filter(
    lambda p: "://" not in p and not p.startswith("//")
)


@st.composite
def reported_values(draw: st.DrawFn) -> tuple[dict[str, str], str]:
    """An environment change the configuration check reports on, and the secret in it."""
    where = draw(st.sampled_from(["secret-named", "slash literal", "URL password", "fullwidth @", "format"]))
    if where == "URL password" or where == "fullwidth @":
        password = draw(URL_PASSWORD)
        cut = draw(st.integers(1, len(password) - 1))
        written = password[:cut] + "\uff20" + password[cut:] if where == "fullwidth @" else password
        return {"DATABASE_URL": f"postgres://app:{written}@db.staging.example.com/orders"}, written
    secret = draw(planted(known=True))
    if where == "format":
        return {"PARTNER_SETTING": secret.value}, secret.secret
    value = draw(
        st.text(st.characters(exclude_categories=["Cs"], exclude_characters="*\x00"), min_size=8, max_size=40)
    )
    assume(value.strip() and not value.startswith("arn:") and "{{resolve:" not in value)
    value = "/" + value.lstrip("/") if where == "slash literal" else value
    return {draw(st.sampled_from(["DB_PASSWORD", "JWT_SECRET_KEY", "DB_PWD"])): value}, value


def test_no_piece_of_a_secret_in_a_reported_environment_value_reaches_any_output(world: World) -> None:
    def release(change: dict[str, str], as_json: bool) -> Outputs:
        return world.release({**GOOD_ENV, **change}, {"how": "answer"}, as_json=as_json)

    noise = noise_of(
        lambda value: release({"DB_PASSWORD": "/" + value}, False),
        lambda value: release(
            {"DATABASE_URL": f"postgres://app:{value}\uff20x@db.staging.example.com/orders"}, False
        ),
        lambda value: release(
            {"DATABASE_URL": f"postgres://app:{value}x@db.staging.example.com/orders"}, False
        ),
        lambda _value: release({"PARTNER_SETTING": "ghp_" + "Ab1" * 12}, False),  # SEC001's words
    )

    @EXAMPLES
    @given(change_and_secret=reported_values(), as_json=st.booleans())
    def example(change_and_secret: tuple[dict[str, str], str], as_json: bool) -> None:
        change, secret = change_and_secret
        outputs = release(change, as_json)

        assert_clean(secret, outputs, noise)

    example()


# --- the record, and the terminal --------------------------------------------------------------------------


def test_a_url_urlsplit_rejects_fails_the_release_with_a_finding_not_a_crash(world: World) -> None:
    password = "hunter2\uff20Pa55w0rd"
    outputs = world.release(
        {**GOOD_ENV, "DATABASE_URL": f"postgres://app:{password}@db.staging.example.com/orders"},
        {"how": "answer"},
        as_json=False,
    )

    (record,) = outcome_lines(outputs.hook_log)
    assert "CFG005" in {f["code"] for f in record["checks"][1]["findings"]}
    assert "hook check crashed" not in outputs.hook_log and "internal error" not in record["reason"]
    assert_no_piece(password, *outputs.all())


def test_a_crash_after_the_versions_were_read_is_recorded_redacted_with_their_secrets(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a check that crashes quoting a secret-named value (a bug: no finding ever quotes one)
    secret = "vQ7#pL2x!Zr9-s3cr3t"

    def crashing(target: Any, *_args: Any, **_kwargs: Any) -> Any:
        raise ValueError(f"cannot parse {target.environment['DB_PASSWORD']!r} as a setting")

    monkeypatch.setattr("deployguard.checks.validate_config", crashing)

    # WHEN the release is deployed and checked
    outputs = world.release({**GOOD_ENV, "DB_PASSWORD": secret}, {"how": "answer"}, as_json=False)

    # THEN the crash is logged with its type and a redacted traceback, the record keeps the
    # deployment's target, and no output holds a piece of the secret
    (crash,) = [json.loads(line) for line in outputs.hook_log.splitlines() if "hook check crashed" in line]
    (record,) = outcome_lines(outputs.hook_log)
    assert crash["error_type"] == "ValueError" and "Traceback" in crash["traceback"]
    assert record["function_name"] == "orders" and record["checks"][0]["name"] == "policy"
    assert record["reason"].startswith("internal error (ValueError): cannot parse '***'")
    assert "internal error (ValueError): cannot parse '***'" in outputs.cli[1]  # check's stderr
    assert_no_piece(secret, *outputs.all())


def test_escape_sequences_in_a_functions_error_text_never_reach_the_terminal(world: World) -> None:
    forged = "boom \x1b]0;pwned\x07\x1b[2J\x9b31m"
    outputs = world.release({**GOOD_ENV}, {"how": "raise", "literal": forged}, as_json=False)

    check_out, _check_err, report_out, _report_err = outputs.cli
    for printed in (check_out, report_out):
        assert "\x1b" not in printed and "\x07" not in printed and "\x9b" not in printed
        assert "\\x1b]0;pwned\\x07\\x1b[2J\\x9b31m" in printed
