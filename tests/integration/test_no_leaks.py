"""No piece of a secret reaches any output, through the real hooks and functions on moto and the CLI.

Generated secrets of every kind (tests/support/secrets.py) are planted at any offset of (a) the
function's error text or answer that a smoke case quotes, (b) an AWS error message, (c) an
environment value the configuration check reports on; each release then runs through the
pre-traffic handler (real versions, a real CodeDeploy deployment, the real handler), through
``deployguard check`` and through ``deployguard report`` (reading the hook's records back from
CloudWatch Logs). No 8-character piece of the secret may appear in any output: the hook's log
lines (the crash log and its traceback included), its EMF, its return value, the SNS alert, the
CLI's stdout and stderr (text and ``--json``). And what a function writes cannot drive the terminal
the CLI prints to.

After traffic shifts, the same secrets go through the post-traffic hook (a smoke case quoting them),
the bake step's final poll (the smoke results it carries, a crashing poll), the alarm rollback (the
alarm's reason, a failing AWS call's error, the error raised for a retry) and ``deployguard
rollback`` (a failing AWS call's error).

moto is set up once per test; each example publishes a new version and starts a new deployment.
"""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import textwrap
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from unittest import mock

import boto3
import pytest
from botocore.client import BaseClient
from botocore.exceptions import ClientError
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from deployguard import entrypoints
from deployguard.appspec import DeploymentTarget, render_appspec
from deployguard.bake import execution_name
from deployguard.findings import CheckResult, Result
from deployguard.outcome import OutcomeRecord, Role
from deployguard.redaction import version_redactor
from deployguard_cli.localaws import moto_cloudwatch, moto_lambda_alias
from deployguard_cli.main import main
from tests.support.aws import (
    Version,
    deployment_group,
    function_with_versions,
    publish_policy,
    put_metric_alarm,
    start_deployment,
)
from tests.support.handlers import FakeLambdaContext, load_handler
from tests.support.outcomes import captured_output, outcome_lines
from tests.support.release import (
    APPLICATION,
    GOOD_ENV,
    GROUP,
    HOOK_ENV,
    POLICY,
    POLICY_BUCKET,
    alarm_event,
    post_traffic_policy,
)
from tests.support.secrets import B62, SEPARATORS, Planted, assert_no_piece, messages, place, planted

pytestmark = pytest.mark.usefixtures("aws")

EXAMPLES = settings(
    max_examples=20,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
# The paths after traffic shifts: fewer examples each (the whole file stays well under a minute).
AFTER_TRAFFIC = settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
LOG_GROUP = "/aws/lambda/CodeDeployHook_deployguard-staging-pre-traffic"
RECORD_SCHEMA = (Path(__file__).resolve().parents[2] / "docs" / "outcome-record.schema.json").read_text()

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
        publish_policy(POLICY_BUCKET, policy)
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
    written = [release(placeholder).all() for release in releases for placeholder in ("<the secret>", "")]
    # NOTE: the --json outputs also carry every field name of the outcome record (``_restore`` of
    # ``alarm_to_restore_ms``): ordinary text too, whichever output mode the noise runs used.
    return json.dumps(written) + RECORD_SCHEMA


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

Release = Callable[[Planted, str, tuple[str, str], bool], Outputs]


def prove_aws_messages_never_leak(
    release: Release, calls: list[tuple[str, str]], noise: str, examples: settings
) -> None:
    """The property: whichever of ``calls`` fails with a long AWS message that echoes the secret
    anywhere (``release`` runs the guard with that failure), no 8 characters of it reach an output."""

    @examples
    @given(
        secret=planted(),
        message=messages,
        at=st.integers(0, 600),  # the old clip: 300 characters of an AWS message
        separators=st.tuples(SEPARATORS, SEPARATORS),
        call=st.sampled_from(calls),
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
        outputs = release(secret, place(message, secret.value, at, *separators), call, as_json)
        assert_clean(secret.secret, outputs, noise, message)

    example()


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

    prove_aws_messages_never_leak(release, AFTER_THE_REDACTOR, noise, EXAMPLES)


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


# --- after traffic shifts: the post-traffic hook, the bake step, the alarm rollback, `rollback` ----------


def quote_case(smoke_payload: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"name": "quote", "payload": smoke_payload, "expect": [{"path": "$.total", "equals": 12}]}]


def deploy(environment: dict[str, str], policy: dict[str, Any]) -> tuple[str, str]:
    """Publish a version of 'orders' with ``environment`` and ``policy``, and start its deployment
    (1 -> it): the version and the deployment's id."""
    lam = boto3.client("lambda")
    lam.update_function_configuration(FunctionName="orders", Environment={"Variables": environment})
    version = str(lam.publish_version(FunctionName="orders")["Version"])
    publish_policy(POLICY_BUCKET, policy)
    target = DeploymentTarget(
        function_name="orders", alias="live", current_version="1", target_version=version
    )
    return version, start_deployment(APPLICATION, GROUP, render_appspec(target))


def traffic_shifted(deployment_id: str, version: str) -> str:
    """live -> ``version`` alone; the AfterAllowTraffic hook's execution id."""
    from deployguard_cli.localaws import moto_codedeploy

    moto_codedeploy.set_lifecycle_event_status(deployment_id, "BeforeAllowTraffic", "Succeeded")
    moto_codedeploy.set_lifecycle_event_status(deployment_id, "AllowTraffic", "Succeeded")
    moto_codedeploy.set_target_version_weight(deployment_id, 1.0)
    point_alias(version)
    return moto_codedeploy.start_lifecycle_event(deployment_id, "AfterAllowTraffic")


def mid_canary(deployment_id: str, version: str) -> None:
    """live -> 1 with 10% on ``version``."""
    from deployguard_cli.localaws import moto_codedeploy

    moto_codedeploy.set_lifecycle_event_status(deployment_id, "BeforeAllowTraffic", "Succeeded")
    moto_codedeploy.set_target_version_weight(deployment_id, 0.1)
    point_alias("1", {version: 0.1})


def point_alias(version: str, weights: dict[str, float] | None = None) -> None:
    boto3.client("lambda").update_alias(
        FunctionName="orders",
        Name="live",
        FunctionVersion=version,
        RoutingConfig={"AdditionalVersionWeights": weights or {}},
    )


def done_with(deployment_id: str) -> None:
    """The next example starts from live on 1 alone and no deployment in flight."""
    from deployguard_cli.localaws import moto_codedeploy

    status = boto3.client("codedeploy").get_deployment(deploymentId=deployment_id)["deploymentInfo"]["status"]
    if status not in ("Succeeded", "Failed", "Stopped"):
        moto_codedeploy.set_deployment_status(deployment_id, "Stopped")
    point_alias("1")


def run_handler(function: str, event: dict[str, Any], outputs: Outputs) -> None:
    """Run a function's handler: what it logged, and what it returned or raised (the message Lambda
    logs for a raised error)."""
    with captured_output() as out:
        try:
            outputs.hook_answer = load_handler(function).handler(event, FakeLambdaContext())
        except Exception as exc:  # raised for Lambda's retry: its text is an output too
            outputs.hook_answer = {
                "raised": f"{type(exc).__name__}: {exc}",
                "args": [str(a) for a in exc.args],
            }
    outputs.hook_log = out.getvalue()


@pytest.fixture
def shifted(world: World, monkeypatch: pytest.MonkeyPatch) -> World:
    """The world, with moto's Lambda alias routing and CloudWatch extensions and a bake state machine."""
    moto_cloudwatch.install()
    moto_lambda_alias.install()
    role = boto3.client("iam").create_role(
        RoleName="bake-role", AssumeRolePolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": []})
    )["Role"]["Arn"]
    machine = boto3.client("stepfunctions").create_state_machine(
        name="deployguard-staging-bake",
        definition=json.dumps({"StartAt": "Done", "States": {"Done": {"Type": "Succeed"}}}),
        roleArn=role,
    )["stateMachineArn"]
    monkeypatch.setenv("DEPLOYGUARD_BAKE_STATE_MACHINE_ARN", machine)
    return world


def test_no_piece_of_a_secret_quoted_after_traffic_shifted_reaches_any_output_of_the_post_traffic_hook(
    shifted: World,
) -> None:
    def release(secret: Planted, before: str, after: str, how: str) -> Outputs:
        from deployguard_cli.localaws import moto_codedeploy

        payload: dict[str, Any] = {"how": how, "before": before, "after": after}
        payload |= {"variable": secret.variable} if secret.variable else {"literal": secret.value}
        policy = post_traffic_policy(smoke=quote_case(payload))  # bake.minutes: 0, decided at once
        version, deployment_id = deploy({**GOOD_ENV, **secret.environment}, policy)
        execution_id = traffic_shifted(deployment_id, version)
        outputs = Outputs()
        event = {"DeploymentId": deployment_id, "LifecycleEventHookExecutionId": execution_id}
        run_handler("post_traffic", event, outputs)
        assert [r.status for r in moto_codedeploy.hook_reports(deployment_id)] == ["Failed"]
        outputs.alerts = shifted.alerts()
        done_with(deployment_id)
        return outputs

    noise = noise_of(
        *(
            lambda value, how=how: release(Planted("", "", value, None), "the order failed: ", "", how)
            for how in ("raise", "answer")
        )
    )

    assert "<the secret>" in noise  # the text reaches the outputs: masking it is what is proven

    @AFTER_TRAFFIC
    @given(
        secret=planted(),
        message=messages,
        at=st.one_of(st.integers(0, 400), st.integers(160, 199), st.integers(40, 78)),
        separators=st.tuples(SEPARATORS, SEPARATORS),
        how=st.sampled_from(["raise", "answer"]),
    )
    def example(secret: Planted, message: str, at: int, separators: tuple[str, str], how: str) -> None:
        # GIVEN a new version, 100% of the traffic, whose error text or answer quotes the secret
        padded = (message + " the order failed" * 30)[:at]
        before, after = padded + separators[0], separators[1] + message

        # WHEN the AfterAllowTraffic hook smoke-tests it (and fails it at once)
        outputs = release(secret, before, after, how)

        # THEN no log line, EMF, return value or alert holds 8 characters of the secret
        assert_clean(secret.secret, outputs, noise, message)

    example()


def test_no_piece_of_a_secret_in_the_smoke_results_or_a_crash_reaches_any_output_of_the_bake_step(
    shifted: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    from deployguard.watch import poll_checks as real_poll

    def release(secret: Planted, text: str, crash: bool) -> Outputs:
        from deployguard_cli.localaws import moto_codedeploy

        policy = post_traffic_policy(bake={"minutes": 10, "poll_seconds": 60})
        version, deployment_id = deploy({**GOOD_ENV, **secret.environment}, policy)
        execution_id = traffic_shifted(deployment_id, version)
        time.sleep(0.01)  # NOTE: the window opens strictly after the deployment was created
        # GIVEN the bake's last poll: its window ends now; the hook's smoke result quotes the version
        now = datetime.now(UTC).isoformat()
        # NOTE: as the hook writes them into the workflow's input: redacted with the versions'
        # environments (the bake step echoes its state back to the workflow as it is)
        redactor = version_redactor(entrypoints.lambda_adapter(), "orders", [version, "1"])
        quoted = CheckResult(name="smoke:quote", result=Result.FAILED, message=f"the function raised: {text}")
        (smoke,) = OutcomeRecord(role=Role.POST_TRAFFIC, checks=[quoted]).redacted(redactor).checks
        state = {
            "deployment_id": deployment_id,
            "lifecycle_event_hook_execution_id": execution_id,
            "window": {"started_at": now, "until": now, "poll_seconds": 60},
            "polls": 10,
            "prior_checks": [dataclasses.asdict(smoke)],
        }
        document = {"state": state, "verdict": "continue", "wait_seconds": 60}
        event = {"input": document, "execution_name": execution_name(deployment_id, execution_id)}

        def crashing(*_args: Any, **_kwargs: Any) -> Any:
            raise RuntimeError(f"the poll tripped over {text}")

        monkeypatch.setattr("deployguard.bake_step.poll_checks", crashing if crash else real_poll)
        outputs = Outputs()
        run_handler("bake_step", event, outputs)
        assert [r.status for r in moto_codedeploy.hook_reports(deployment_id)] == ["Failed"]
        outputs.alerts = shifted.alerts()
        done_with(deployment_id)
        return outputs

    noise = noise_of(
        *(
            lambda value, crash=crash: release(Planted("", "", value, None), value, crash)
            for crash in (False, True)
        )
    )

    assert "<the secret>" in noise  # the text reaches the outputs: masking it is what is proven

    @AFTER_TRAFFIC
    @given(
        secret=planted(),
        message=messages,
        at=st.integers(0, 600),
        separators=st.tuples(SEPARATORS, SEPARATORS),
        crash=st.booleans(),
    )
    def example(secret: Planted, message: str, at: int, separators: tuple[str, str], crash: bool) -> None:
        outputs = release(secret, place(message, secret.value, at, *separators), crash)

        assert_clean(secret.secret, outputs, noise, message)

    example()


# Calls of the alarm rollback once the release is found (the AppSpec names its versions): their
# errors reach the record, the alert and the error raised for a retry.
ROLLBACK_CALLS = [("lambda", "GetAlias"), ("codedeploy", "StopDeployment"), ("lambda", "UpdateAlias")]
# Calls of `deployguard rollback`. Its first, GetAlias, fails before any version is known: its error
# is redacted with $LATEST's environment (what the release under way published).
CLI_ROLLBACK_CALLS = [("lambda", "GetAlias"), ("codedeploy", "StopDeployment"), ("lambda", "UpdateAlias")]


def test_no_piece_of_a_secret_in_an_alarm_or_an_aws_error_reaches_any_output_of_the_alarm_rollback(
    shifted: World,
) -> None:
    def release(secret: Planted, text: str, call: tuple[str, str]) -> Outputs:
        version, deployment_id = deploy({**GOOD_ENV, **secret.environment}, post_traffic_policy())
        mid_canary(deployment_id, version)
        # GIVEN the new version's alarm fires, its StateReason quoting the secret
        name = f"orders-new-version-errors-{version}"
        dimensions = {"FunctionName": "orders", "Resource": "orders:live", "ExecutedVersion": version}
        put_metric_alarm(name, dimensions=dimensions, treat_missing_data="notBreaching")
        time.sleep(0.01)  # NOTE: CloudWatch's timestamps are in milliseconds: after the deployment
        cloudwatch = boto3.client("cloudwatch")
        cloudwatch.set_alarm_state(AlarmName=name, StateValue="ALARM", StateReason=text[:1023])
        event = alarm_event(name, dimensions=dimensions)
        event["detail"]["state"]["reason"] = text
        outputs = Outputs()
        # WHEN it rolls back, and an AWS call fails with a message echoing the secret
        with failing(*call, text):
            run_handler("alarm_rollback", event, outputs)
        outputs.alerts = shifted.alerts()
        cloudwatch.set_alarm_state(AlarmName=name, StateValue="OK", StateReason="recovered")
        done_with(deployment_id)
        return outputs

    noise = noise_of(
        *(
            lambda value, call=call: release(Planted("", "", value, None), value, call)
            for call in ROLLBACK_CALLS
        )
    )

    assert "<the secret>" in noise  # the text reaches the outputs: masking it is what is proven

    @AFTER_TRAFFIC
    @given(
        secret=planted(),
        message=messages,
        at=st.integers(0, 600),
        separators=st.tuples(SEPARATORS, SEPARATORS),
        call=st.sampled_from(ROLLBACK_CALLS),
    )
    def example(
        secret: Planted, message: str, at: int, separators: tuple[str, str], call: tuple[str, str]
    ) -> None:
        outputs = release(secret, place(message, secret.value, at, *separators), call)

        # THEN no log line, EMF, return value, raised error or alert holds 8 characters of it
        assert_clean(secret.secret, outputs, noise, message)

    example()


def test_no_piece_of_a_secret_in_an_aws_error_reaches_the_output_of_deployguard_rollback(
    shifted: World,
) -> None:
    def release(secret: Planted, text: str, call: tuple[str, str], as_json: bool) -> Outputs:
        version, deployment_id = deploy({**GOOD_ENV, **secret.environment}, post_traffic_policy())
        mid_canary(deployment_id, version)
        outputs = Outputs()
        json_flag = ["--json"] if as_json else []
        with failing(*call, text):
            outputs.cli += cli("rollback", "--function", "orders", "--alias", "live", "--yes", *json_flag)
        done_with(deployment_id)
        return outputs

    noise = noise_of(
        *(
            lambda value, call=call: release(Planted("", "", value, None), value, call, False)
            for call in CLI_ROLLBACK_CALLS
        )
    )

    assert "<the secret>" in noise  # the text reaches the outputs: masking it is what is proven

    prove_aws_messages_never_leak(release, CLI_ROLLBACK_CALLS, noise, AFTER_TRAFFIC)
