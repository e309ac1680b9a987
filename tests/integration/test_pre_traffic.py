"""The pre-traffic hook end to end on moto: real Lambda versions, a real CodeDeploy deployment,
the real handler. Every path ends in exactly one status reported through the CodeDeploy API."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError, ReadTimeoutError

from deployguard.aws import clients
from deployguard_cli.policy_store import split_policy
from tests.support.aws import publish_policy
from tests.support.handlers import FakeLambdaContext, load_handler
from tests.support.outcomes import captured_output, json_lines, outcome_lines
from tests.support.release import GOOD_ENV, HOOK_ENV, POLICY, POLICY_BUCKET, Release

pytestmark = pytest.mark.usefixtures("aws")


@pytest.fixture
def hook_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in HOOK_ENV.items():
        monkeypatch.setenv(key, value)


@pytest.fixture
def handler(hook_env: None) -> Callable[[dict[str, Any], Any], dict[str, Any]]:
    return load_handler("pre_traffic").handler  # type: ignore[no-any-return]


def call(
    handler: Callable[..., dict[str, Any]], event: dict[str, Any], context: FakeLambdaContext
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Run the handler; its answer and the one outcome record it logged."""
    with captured_output() as out:
        answer = handler(event, context)
    (record,) = outcome_lines(out.getvalue())
    return answer, record


Run = Callable[..., tuple[Release, dict[str, Any], dict[str, Any]]]


@pytest.fixture
def run(
    handler: Callable[..., dict[str, Any]],
    lambda_context: FakeLambdaContext,
) -> Run:
    def go(
        release: Release | None = None, **release_fields: Any
    ) -> tuple[Release, dict[str, Any], dict[str, Any]]:
        release = (release or Release(**release_fields)).create()
        answer, record = call(handler, release.event, lambda_context)
        return release, answer, record

    return go


def test_a_good_release_succeeds_once_with_every_check_recorded(run: Run) -> None:
    release, answer, record = run()

    assert release.reports() == ["Succeeded"]
    assert answer["decision"] == "Succeeded"
    assert [(c["name"], c["result"]) for c in record["checks"]] == [
        ("policy", "passed"),
        ("config", "passed"),
        ("smoke:quote", "passed"),
        ("smoke:stage", "passed"),
    ]
    assert record["schema_version"] == "deployguard.outcome/1"
    assert (record["function_name"], record["current_version"], record["target_version"]) == (
        "orders",
        "1",
        "2",
    )
    assert record["correlation_id"] == release.deployment_id
    assert [a["kind"] for a in record["actions"]] == ["status_reported"]


@pytest.mark.parametrize(
    ("env_change", "code"),
    [
        ({"STAGE": "prod"}, "CFG002"),
        ({"DATABASE_URL": "postgres://db.prod.example.com/orders"}, "CFG003"),
        ({"DATABASE_URL": ""}, "CFG001"),
        ({"STRIPE_KEY": "sk_live_" + "0123456789abcdefABCD"}, "SEC001"),
        ({"DB_PASSWORD": "hunter2-literal"}, "SEC002"),
        ({"DB_PASSWORD_PARAM": "/orders/staging/typo"}, "REF001"),
        ({"DB_PASSWORD_PARAM": None}, "DRF001"),
    ],
)
def test_each_config_mistake_fails_the_deployment_before_any_invocation(
    run: Run, env_change: dict[str, str | None], code: str
) -> None:
    env = {k: v for k, v in {**GOOD_ENV, **env_change}.items() if v is not None}

    release, _answer, record = run(target_env=env)

    assert release.reports() == ["Failed"]
    config = record["checks"][1]
    assert config["result"] == "failed"
    assert code in {f["code"] for f in config["findings"]}
    assert {c["result"] for c in record["checks"][2:]} == {"skipped"}
    assert "sk_live_" not in json.dumps(record) and "hunter2-literal" not in json.dumps(record)


def test_a_string_total_fails_the_smoke_test_and_says_why(run: Run) -> None:
    release, _answer, record = run(target_env={**GOOD_ENV, "TOTAL_AS": "string"})

    assert release.reports() == ["Failed"]
    quote = record["checks"][2]
    assert quote["result"] == "failed"
    assert '$.total is the string "12.00" but the number 12 was expected' in quote["message"]
    assert "smoke:quote" in record["reason"]


def test_a_crashing_version_fails_with_the_error_type(run: Run) -> None:
    release = Release()
    assert release.policy is not None
    release.policy["functions"]["orders"]["smoke"].append(
        {"name": "boom", "payload": {"action": "boom"}, "expect": []}
    )

    release, _answer, record = run(release)

    assert release.reports() == ["Failed"]
    assert record["checks"][-1]["message"].startswith("the function raised RuntimeError: boom on purpose")


def test_a_missing_policy_fails_with_the_fix(run: Run) -> None:
    boto3.client("s3").create_bucket(Bucket=POLICY_BUCKET)  # the stack's bucket, nothing published yet
    release, _answer, record = run(policy=None)

    assert release.reports() == ["Failed"]
    assert f"baseline s3://{POLICY_BUCKET}/staging/baseline.json is not published" in record["reason"]
    assert "deployguard policy publish --stage staging --baseline FILE" in record["reason"]


def test_a_missing_policy_bucket_fails_naming_the_setting(run: Run) -> None:
    release, _answer, record = run(policy=None)

    assert release.reports() == ["Failed"]
    assert f"could not be read from s3://{POLICY_BUCKET}/staging/baseline.json" in record["reason"]
    assert "NoSuchBucket" in record["reason"] and "DEPLOYGUARD_POLICY_BUCKET" in record["reason"]


def test_an_invalid_policy_fails_naming_the_path(run: Run) -> None:
    release = Release()
    assert release.policy is not None
    release.policy["functions"]["orders"]["smoke"][0]["expect"][0]["eqals"] = 12

    release, _answer, record = run(release)

    assert release.reports() == ["Failed"]
    assert "functions.orders.smoke[0].expect[0].eqals" in record["reason"]
    assert "did you mean 'equals'" in record["reason"]


def test_the_prod_policy_in_the_staging_store_is_refused(run: Run) -> None:
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket=POLICY_BUCKET)
    baseline, application = split_policy({**POLICY, "stage": "prod"}, "orders")
    s3.put_object(Bucket=POLICY_BUCKET, Key="staging/baseline.json", Body=json.dumps(baseline).encode())
    s3.put_object(Bucket=POLICY_BUCKET, Key="staging/apps/orders.json", Body=json.dumps(application).encode())

    release, _answer, record = run(Release(policy=None))

    assert release.reports() == ["Failed"]
    assert "a prod document but the guard runs in staging" in record["reason"]


def test_an_unguarded_function_fails_by_default(run: Run) -> None:
    release, _answer, record = run(function_name="payments")

    assert release.reports() == ["Failed"]
    assert "payments is not named in the staging policy" in record["reason"]


def test_a_bypass_is_explicit_and_audited(
    run: Run,
    handler: Callable[..., dict[str, Any]],
    lambda_context: FakeLambdaContext,
) -> None:
    release = Release(target_env={**GOOD_ENV, "STAGE": "prod"}).create()
    policy = json.loads(json.dumps(release.policy))
    policy["functions"]["orders"]["bypass"] = {
        "deployment_id": release.deployment_id,
        "reason": "hot fix for INC-42 while the error alarm fires",
        "approved_by": "oncall@example.com",
    }
    publish_policy(POLICY_BUCKET, policy)

    _answer, record = call(handler, release.event, lambda_context)

    assert release.reports() == ["Succeeded"]
    assert record["bypass"] == {
        "reason": "hot fix for INC-42 while the error alarm fires",
        "approved_by": "oncall@example.com",
    }
    assert "bypassed" in record["reason"]


def test_a_malformed_event_is_logged_and_nothing_is_reported(
    handler: Callable[..., dict[str, Any]],
    lambda_context: FakeLambdaContext,
) -> None:
    answer, record = call(handler, {"DeploymentId": "d-1"}, lambda_context)

    assert answer["decision"] is None
    assert "LifecycleEventHookExecutionId" in record["reason"]


@pytest.mark.parametrize(
    ("field", "value", "said"),
    [
        ("DeploymentId", 12345, "not a number"),
        ("DeploymentId", ["d-1"], "not an array"),
        ("LifecycleEventHookExecutionId", {"id": "x"}, "not an object"),
        ("LifecycleEventHookExecutionId", 7.5, "not a number"),
        ("DeploymentId", "d-" + "A" * 100, "not 102 characters"),
        ("LifecycleEventHookExecutionId", "x" * 2000, "not 2,000 characters"),
        ("DeploymentId", "d-1; DROP", "holds other characters"),
    ],
)
def test_a_lifecycle_id_of_the_wrong_type_is_logged_never_reported_nor_retried(
    handler: Callable[..., dict[str, Any]],
    lambda_context: FakeLambdaContext,
    field: str,
    value: Any,
    said: str,
) -> None:
    # GIVEN a real deployment waiting for its hook, invoked with one id of the wrong type or size
    release = Release().create()
    event: dict[str, Any] = {**release.event, field: value}

    # WHEN the hook runs: it returns (a raise would make Lambda retry an event that can never succeed)
    with captured_output() as out:
        answer = handler(event, lambda_context)

    # THEN nothing was reported, the log names the field and the fix, and no id of the record is
    # anything but a string
    assert answer["decision"] is None
    assert release.reports() == []
    (record,) = outcome_lines(out.getvalue())
    assert f"{field} must be a string" in record["reason"] and said in record["reason"]
    assert record.get("deployment_id") is None
    assert record.get("lifecycle_event_hook_execution_id") is None
    assert any(
        line.get("message") == "malformed hook event" and field in line["error"]
        for line in json_lines(out.getvalue())
    )
    assert str(value)[:40] not in record["reason"]  # the value itself is not echoed


def test_invalid_settings_still_report_failed_naming_the_variable(
    run: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DEPLOYGUARD_POLICY_BUCKET", "Not_A_Bucket")

    release, _answer, record = run()

    assert release.reports() == ["Failed"]
    assert "DEPLOYGUARD_POLICY_BUCKET" in record["reason"]


def test_a_retried_invocation_does_not_rerun_checks_or_report_twice(
    run: Run,
    handler: Callable[..., dict[str, Any]],
    lambda_context: FakeLambdaContext,
) -> None:
    from deployguard_cli.localaws import lambda_runner

    release, _answer, _record = run()
    invocations = len(lambda_runner.invocations())

    _answer, record = call(handler, release.event, lambda_context)

    assert release.reports() == ["Succeeded"]
    assert len(lambda_runner.invocations()) == invocations
    assert [a["kind"] for a in record["actions"]] == ["status_already_reported"]


def test_a_slow_version_is_failed_before_the_hook_times_out(
    run: Run, lambda_context: FakeLambdaContext
) -> None:
    release = Release()
    assert release.policy is not None
    release.policy["functions"]["orders"]["smoke"] = [
        {"name": "slow", "payload": {"action": "sleep", "seconds": 8}, "expect": [], "timeout_ms": 60000}
    ]
    lambda_context.remaining_ms = 12_500  # 10 s are kept in reserve: 2.5 s for the checks

    started = time.monotonic()
    release, _answer, record = run(release)

    assert time.monotonic() - started < 8
    assert release.reports() == ["Failed"]
    assert (
        "hook deadline" in record["reason"] or "did not finish before the hook's deadline" in record["reason"]
    )


# --- every AWS call failing in turn ---------------------------------------------------------------

CALLS = [
    ("codedeploy", "ListDeploymentTargets"),
    ("codedeploy", "GetDeploymentTarget"),
    ("codedeploy", "GetDeployment"),
    ("codedeploy", "GetApplicationRevision"),
    ("s3", "GetObject"),
    ("lambda", "ListTags"),  # the function's scope: deployguard:stage
    ("lambda", "GetFunctionConfiguration"),
    # NOTE: not GetFunctionEventInvokeConfig: made only when the policy's on_failure_destination rule is
    # on, which this release's policy leaves off (tests/integration/test_throttling.py covers it)
    ("ssm", "DescribeParameters"),
    ("lambda", "Invoke"),
]
FAILURES: dict[str, Callable[[str], Exception]] = {
    "AccessDenied": lambda op: ClientError({"Error": {"Code": "AccessDeniedException", "Message": "no"}}, op),
    "Throttling": lambda op: ClientError(
        {"Error": {"Code": "ThrottlingException", "Message": "Rate exceeded"}}, op
    ),
    "Timeout": lambda op: ReadTimeoutError(endpoint_url="https://aws.example"),
}


@pytest.fixture
def failing() -> Iterator[Callable[[str, str, str], None]]:
    def install(service: str, operation: str, failure: str) -> None:
        def raise_it(**_kwargs: Any) -> None:
            raise FAILURES[failure](operation)

        for client in (
            clients.codedeploy_client(),
            clients.lambda_client(),
            clients.lambda_invoke_client(),
            clients.ssm_client(),
            clients.secretsmanager_client(),
            clients.s3_client(),
        ):
            client.meta.events.register(f"before-call.{service}.{operation}", raise_it)

    yield install


@pytest.mark.parametrize("failure", list(FAILURES))
@pytest.mark.parametrize(("service", "operation"), CALLS)
def test_each_aws_call_failing_still_ends_in_exactly_one_failed(
    run: Run, failing: Callable[[str, str, str], None], service: str, operation: str, failure: str
) -> None:
    failing(service, operation, failure)

    release, _answer, record = run()

    assert release.reports() == ["Failed"]
    assert operation in json.dumps(record)


def test_a_status_that_cannot_be_delivered_raises_so_lambda_retries(
    handler: Callable[..., dict[str, Any]],
    lambda_context: FakeLambdaContext,
    failing: Callable[[str, str, str], None],
) -> None:
    release = Release().create()
    failing("codedeploy", "PutLifecycleEventHookExecutionStatus", "Throttling")

    with (
        captured_output() as out,
        pytest.raises(
            Exception, match="PutLifecycleEventHookExecutionStatus failed with ThrottlingException"
        ),
    ):
        handler(release.event, lambda_context)

    (record,) = outcome_lines(out.getvalue())
    assert release.reports() == []
    assert record["actions"][-1]["ok"] is False


def test_the_app_sees_the_synthetic_marker_but_real_traffic_does_not(run: Run) -> None:
    _release, _answer, record = run()  # the policy expects $.synthetic == true from the smoke call

    assert record["checks"][2]["result"] == "passed"

    plain = boto3.client("lambda").invoke(
        FunctionName="orders", Qualifier="2", Payload=b'{"action": "quote"}'
    )

    assert json.loads(plain["Payload"].read())["synthetic"] is False
