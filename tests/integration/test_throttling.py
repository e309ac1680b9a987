"""Throttling is not failure: AWS's rate quotas on moto (``deployguard_cli.localaws.quotas``), the
throttling errors each service answers, and DeployGuard's retries bounded by the hook's deadline."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from deployguard.findings import THROTTLED
from deployguard.policy import FunctionPolicy
from deployguard_cli.localaws import quotas
from deployguard_cli.localaws.quotas import Family, Quotas
from tests.support.aws import Version, counted_calls, fail, function_with_versions, put_metric_alarm
from tests.support.handlers import FakeLambdaContext, load_handler
from tests.support.outcomes import captured_output, outcome_lines
from tests.support.release import HOOK_ENV, Release

pytestmark = pytest.mark.usefixtures("aws")

ONE_ATTEMPT = Config(retries={"total_max_attempts": 1, "mode": "standard"})


def starved(service: str, rate: float = 0.001) -> Quotas:
    """Quotas where ``service`` allows one call, then about none."""
    return Quotas(families=(Family(f"{service}:all", service, frozenset(), rate, "test", burst=1),))


@pytest.mark.parametrize(
    ("service", "call", "code", "status", "fields"),
    [
        (
            "lambda",
            lambda c: c.get_function_configuration(FunctionName="f"),
            "TooManyRequestsException",
            429,
            {"Type": "User", "Reason": "CallerRateLimitExceeded", "message": "Rate exceeded"},
        ),
        ("cloudwatch", lambda c: c.describe_alarms(AlarmNames=["a"]), "Throttling", 400, {}),
        ("codedeploy", lambda c: c.list_applications(), "ThrottlingException", 400, {}),
        ("ssm", lambda c: c.describe_parameters(), "ThrottlingException", 400, {"Message": "Rate exceeded"}),
    ],
)
def test_a_throttled_call_is_answered_as_aws_answers_it(
    service: str, call: Callable[[Any], Any], code: str, status: int, fields: dict[str, str]
) -> None:
    function_with_versions("f", [Version()])
    put_metric_alarm("a")
    client = boto3.client(service, config=ONE_ATTEMPT)  # type: ignore[call-overload]

    with quotas.enforced(starved(service)) as counted:
        call(client)
        with pytest.raises(ClientError) as raised:
            call(client)

    response: dict[str, Any] = dict(raised.value.response)
    assert (response["Error"]["Code"], response["Error"]["Message"]) == (code, "Rate exceeded")
    assert response["ResponseMetadata"]["HTTPStatusCode"] == status
    assert {key: response[key] for key in fields} == fields
    assert sum(counted.throttled.values()) == 1


def test_the_lambda_control_plane_quota_is_shared_by_its_apis_and_getfunction_has_its_own() -> None:
    quota = Quotas()

    assert quota.family("lambda", "GetAlias") is quota.family("lambda", "UpdateAlias")
    assert quota.family("lambda", "GetFunctionEventInvokeConfig") is quota.family(
        "lambda", "GetFunctionConfiguration"
    )
    assert quota.family("lambda", "GetFunctionConfiguration").rate == 15  # type: ignore[union-attr]
    assert quota.family("lambda", "GetFunction").rate == 100  # type: ignore[union-attr]
    assert quota.family("lambda", "Invoke") is None
    assert quota.family("cloudwatch", "DescribeAlarms").rate == 9  # type: ignore[union-attr]
    assert quota.family("cloudwatch", "GetMetricData").rate == 50  # type: ignore[union-attr]


@pytest.fixture
def pre_traffic(monkeypatch: pytest.MonkeyPatch) -> Callable[..., Any]:
    for key, value in HOOK_ENV.items():
        monkeypatch.setenv(key, value)
    return load_handler("pre_traffic").handler  # type: ignore[no-any-return]


def run_hook(handler: Callable[..., Any], release: Release, remaining_ms: int = 120_000) -> dict[str, Any]:
    with captured_output() as out:
        handler(release.event, FakeLambdaContext(remaining_ms=remaining_ms))
    (record,) = outcome_lines(out.getvalue())
    return record


def test_a_hook_whose_calls_are_throttled_retries_them_and_passes(pre_traffic: Callable[..., Any]) -> None:
    # GIVEN Lambda's control plane answering 4 calls a second, one at a time
    release = Release().create()
    busy = Quotas(families=(Family("lambda:slow", "lambda", frozenset(), 4, "test", burst=1),))

    # WHEN the hook reads both versions at once
    with quotas.enforced(busy):
        record = run_hook(pre_traffic, release)

    # THEN the throttled reads were retried, and the release passes
    assert sum(busy.throttled.values()) >= 1
    assert release.reports() == ["Succeeded"]
    assert record["decision"] == "Succeeded"


def test_a_hook_throttled_until_its_deadline_reports_failed_in_time_naming_throttling(
    pre_traffic: Callable[..., Any],
) -> None:
    # GIVEN a hook with 3 s for its checks, and Lambda's control plane refusing about every call
    release = Release().create()

    began = time.monotonic()
    with quotas.enforced(starved("lambda", rate=0.01)):
        record = run_hook(pre_traffic, release, remaining_ms=13_000)  # 10 s reserve

    # THEN it gave up retrying before the deadline, and said why: AWS001, not a finding on the release
    assert time.monotonic() - began < 4
    assert release.reports() == ["Failed"]
    codes = [f["code"] for check in record["checks"] for f in check["findings"]]
    assert codes == [THROTTLED]
    assert "until the hook's deadline" in json.dumps(record)


@pytest.mark.parametrize(("rule", "calls"), [("ignore", 0), ("warning", 1)])
def test_the_event_invoke_config_is_read_only_for_its_rule_and_only_for_the_target(
    pre_traffic: Callable[..., Any], rule: str, calls: int
) -> None:
    release = Release()
    assert release.policy is not None
    release.policy["functions"]["orders"]["config"]["settings"] = {"on_failure_destination": rule}
    release.create()

    with counted_calls() as made:
        run_hook(pre_traffic, release)

    assert made.count("GetFunctionEventInvokeConfig") == calls
    assert made.count("GetFunctionConfiguration") == 2  # both versions, once each


def test_the_invoke_clients_pool_has_a_connection_for_every_case_a_policy_may_run_at_once() -> None:
    from deployguard.aws.clients import lambda_invoke_client

    most = FunctionPolicy.model_fields["smoke_concurrency"].metadata[-1].le
    assert lambda_invoke_client().meta.config.max_pool_connections == most  # type: ignore[attr-defined]


def test_with_its_rule_on_a_failing_event_invoke_config_read_fails_the_hook(
    pre_traffic: Callable[..., Any],
) -> None:
    release = Release()
    assert release.policy is not None
    release.policy["functions"]["orders"]["config"]["settings"] = {"on_failure_destination": "warning"}
    release.create()
    fail("lambda", "GetFunctionEventInvokeConfig", "Throttling")

    record = run_hook(pre_traffic, release)

    assert release.reports() == ["Failed"]
    assert "GetFunctionEventInvokeConfig" in json.dumps(record)
