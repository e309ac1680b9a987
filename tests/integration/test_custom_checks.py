"""Custom checks end to end on moto: the application's own check functions (real code, run by the
local Lambda runner like any version) invoked by the real hooks with the deployment's context; their
answer joins the decision, its findings redacted like every other."""

from __future__ import annotations

import copy
import json
import textwrap
from collections.abc import Callable
from typing import Any

import boto3
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from deployguard.appspec import DeploymentTarget, render_appspec
from deployguard.stages import STAGE_TAG
from tests.support.aws import ROLE_POLICY, code_zip, start_deployment
from tests.support.handlers import FakeLambdaContext, load_handler
from tests.support.outcomes import captured_output, outcome_lines
from tests.support.release import (
    APPLICATION,
    GOOD_ENV,
    GROUP,
    HOOK_ENV,
    POLICY,
    GuardedRelease,
    Release,
    put_version_metrics,
)
from tests.support.secrets import Planted, assert_no_piece, planted

pytestmark = pytest.mark.usefixtures("aws")

# A check function: what it answers is set by its environment (MODE), and it can quote a value it
# holds (LEAK). It answers with the event it received, so the test sees the context it was given.
CHECK_CODE = textwrap.dedent(
    """
    import os, time

    def handler(event, context):
        mode = os.environ.get("MODE", "pass")
        if mode == "sleep":
            time.sleep(5)
        if mode == "raise":
            raise RuntimeError("table orders-staging is missing " + os.environ.get("LEAK", ""))
        if mode == "garbage":
            return "all good, probably"
        if mode == "shape":
            return {"result": "maybe"}
        if mode == "fail":
            return {"result": "fail", "findings": [{"code": "TABLE001", "level": "error",
                    "message": "table orders-staging has key (id) but (pk, sk) was expected " + os.environ.get("LEAK", "")}]}
        told = [{"code": k, "level": "warning", "message": str(v)} for k, v in event.items() if k != "deployguard"]
        return {"result": "pass", "findings": told}
    """
)


def check_function(name: str, mode: str, *, leak: str = "", stage: str | None = "staging") -> str:
    """A check function ``name`` answering as ``mode`` says, tagged for ``stage``; its ARN."""
    lam = boto3.client("lambda")
    role = boto3.client("iam").create_role(RoleName=f"{name}-role", AssumeRolePolicyDocument=ROLE_POLICY)
    arn: str = lam.create_function(
        FunctionName=name,
        Runtime="python3.12",
        Role=role["Role"]["Arn"],
        Handler="app.handler",
        Code={"ZipFile": code_zip(CHECK_CODE)},
        Timeout=10,
        Environment={"Variables": {"MODE": mode, **({"LEAK": leak} if leak else {})}},
        Tags={STAGE_TAG: stage} if stage else {},
    )["FunctionArn"]
    return arn


def with_checks(*checks: dict[str, Any], policy: dict[str, Any] | None = None) -> dict[str, Any]:
    policy = copy.deepcopy(policy or POLICY)
    policy["functions"]["orders"]["custom_checks"] = list(checks)
    return policy


@pytest.fixture
def pre_traffic(monkeypatch: pytest.MonkeyPatch) -> Callable[[Release], dict[str, Any]]:
    for key, value in {**HOOK_ENV, "DEPLOYGUARD_POLICY_CACHE_SECONDS": "0"}.items():
        monkeypatch.setenv(key, value)
    handler = load_handler("pre_traffic").handler

    def run(release: Release) -> dict[str, Any]:
        release.create()
        with captured_output() as out:
            handler(release.event, FakeLambdaContext())
        (record,) = outcome_lines(out.getvalue())
        return dict(record)

    return run


def custom(record: dict[str, Any], name: str) -> dict[str, Any]:
    (check,) = [c for c in record["checks"] if c["name"] == f"custom:{name}"]
    return dict(check)


def test_a_passing_check_lets_the_release_through_and_gets_the_deployment_context(
    pre_traffic: Callable[[Release], dict[str, Any]],
) -> None:
    # GIVEN an application check that passes (and echoes what it was told, as a warning)
    check_function("orders-table-check", "pass")
    release = Release(policy=with_checks({"name": "table", "function": "orders-table-check"}))

    # WHEN the pre-traffic hook runs
    record = pre_traffic(release)

    # THEN the release succeeds with the check in the record, told the deployment's context
    assert release.reports() == ["Succeeded"]
    check = custom(record, "table")
    assert check["result"] == "warned"
    context = {f["subject"].split("/", 1)[1]: f["message"] for f in check["findings"]}
    assert context["deployment_id"] == release.deployment_id
    assert context["lifecycle_event"] == "BeforeAllowTraffic"
    assert (context["stage"], context["function_name"], context["alias"]) == ("staging", "orders", "live")
    assert (context["target_version"], context["previous_version"]) == ("2", "1")
    assert context["target_version_arn"].endswith(":function:orders:2")
    assert context["application"] == "orders"


@pytest.mark.parametrize(
    ("mode", "timeout_ms", "code", "says"),
    [
        ("fail", 5000, "CHK001", "has key (id) but (pk, sk) was expected"),
        ("sleep", 300, "CHK002", "no answer within 300 ms (the check's timeout_ms)"),
        ("raise", 5000, "CHK003", "raised RuntimeError: table orders-staging is missing"),
        ("garbage", 5000, "CHK004", "not a check answer ($ is not an object)"),
        ("shape", 5000, "CHK004", '$.result is not "pass" or "fail"'),
    ],
)
def test_a_failing_slow_crashing_or_garbled_check_fails_the_release_with_a_finding(
    pre_traffic: Callable[[Release], dict[str, Any]], mode: str, timeout_ms: int, code: str, says: str
) -> None:
    check_function("orders-table-check", mode)
    release = Release(
        policy=with_checks({"name": "table", "function": "orders-table-check", "timeout_ms": timeout_ms})
    )

    record = pre_traffic(release)

    assert release.reports() == ["Failed"]
    check = custom(record, "table")
    assert check["result"] == "failed"
    assert code in {f["code"] for f in check["findings"]}
    assert says in check["message"]
    assert "custom:table" in record["reason"]


def test_a_check_that_cannot_be_invoked_fails_the_release_naming_the_tag(
    pre_traffic: Callable[[Release], dict[str, Any]],
) -> None:
    release = Release(policy=with_checks({"name": "table", "function": "no-such-check"}))

    record = pre_traffic(release)

    assert release.reports() == ["Failed"]
    check = custom(record, "table")
    assert check["result"] == "error" and check["findings"][0]["code"] == "CHK005"
    assert "deployguard:stage=staging" in check["message"]


def test_a_misconfigured_version_is_not_handed_to_the_checks(
    pre_traffic: Callable[[Release], dict[str, Any]],
) -> None:
    check_function("orders-table-check", "pass")
    release = Release(
        target_env={**GOOD_ENV, "STAGE": "prod"},
        policy=with_checks({"name": "table", "function": "orders-table-check"}),
    )

    record = pre_traffic(release)

    assert release.reports() == ["Failed"]
    assert custom(record, "table")["result"] == "skipped"


def test_a_post_traffic_check_runs_after_traffic_shifted_only(monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN a check that runs only after traffic shifts, and one only before (which must not run)
    for key, value in HOOK_ENV.items():
        monkeypatch.setenv(key, value)
    check_function("orders-after-check", "fail")
    release = GuardedRelease()
    release.policy = with_checks(
        {"name": "after", "function": "orders-after-check", "when": ["post_traffic"]},
        {"name": "before", "function": "orders-before-check", "when": ["pre_traffic"]},
        policy=release.policy,
    )
    release.create().at_after_allow_traffic()
    put_version_metrics("2", invocations=40)

    # WHEN the post-traffic hook runs
    with captured_output() as out:
        load_handler("post_traffic").handler(release.event, FakeLambdaContext())
    (record,) = outcome_lines(out.getvalue())

    # THEN the failing post-traffic check fails the release; the pre-traffic one did not run
    assert release.reports() == ["Failed"]
    names = [c["name"] for c in record["checks"]]
    assert "custom:after" in names and "custom:before" not in names
    assert custom(record, "after")["findings"][0]["code"] == "CHK001"


LEAKS = settings(
    max_examples=8,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)


def test_no_piece_of_a_secret_a_check_quotes_reaches_the_record_or_the_answer(
    pre_traffic: Callable[[Release], dict[str, Any]],
) -> None:
    from deployguard_cli.localaws import moto_codedeploy

    lam = boto3.client("lambda")
    check_function("orders-table-check", "fail")
    policy = with_checks({"name": "table", "function": "orders-table-check"})
    policy["functions"]["orders"]["config"]["plaintext_secrets"] = "ignore"
    pre_traffic(Release(policy=policy))  # orders 1 -> 2, the deployment group, the policy
    handler = load_handler("pre_traffic").handler

    @LEAKS
    @given(secret=planted(), mode=st.sampled_from(["fail", "raise"]))
    def example(secret: Planted, mode: str) -> None:
        # GIVEN a new version holding a secret (or none: a well-known key format) and a check that
        # quotes it in its finding or its error
        assume(len(set(secret.secret)) >= 4)
        lam.update_function_configuration(
            FunctionName="orders-table-check", Environment={"Variables": {"MODE": mode, "LEAK": secret.value}}
        )
        lam.update_function_configuration(
            FunctionName="orders", Environment={"Variables": {**GOOD_ENV, **secret.environment}}
        )
        version = lam.publish_version(FunctionName="orders")["Version"]
        target = DeploymentTarget(
            function_name="orders", alias="live", current_version="1", target_version=version
        )
        deployment_id = start_deployment(APPLICATION, GROUP, render_appspec(target))
        execution_id = moto_codedeploy.start_lifecycle_event(deployment_id, "BeforeAllowTraffic")

        # WHEN the pre-traffic hook runs it
        with captured_output() as out:
            answer = handler(
                {"DeploymentId": deployment_id, "LifecycleEventHookExecutionId": execution_id},
                FakeLambdaContext(),
            )
        (record,) = outcome_lines(out.getvalue())

        # THEN the release fails on the check, and no 8 characters of the secret are in any output
        assume(any(c["name"] == "custom:table" and c["result"] == "failed" for c in record["checks"]))
        try:
            assert_no_piece(secret.secret, CHECK_CODE, json.dumps(GOOD_ENV))
        except AssertionError:
            assume(False)  # the secret shares 8 characters with what every release writes
        assert_no_piece(secret.secret, out.getvalue(), answer)

    example()


def test_a_secret_a_post_traffic_check_quotes_is_redacted(monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN version 2 holds a database password, and the post-traffic check quotes it when it fails
    secret = "Zq7-vLp2-Xk9w-Rt4m-Hs8d"
    for key, value in HOOK_ENV.items():
        monkeypatch.setenv(key, value)
    check_function("orders-after-check", "fail", leak=secret)
    release = GuardedRelease(target_env={**GOOD_ENV, "DB_PASSWORD": secret})
    release.policy = with_checks(
        {"name": "after", "function": "orders-after-check", "when": ["post_traffic"]}, policy=release.policy
    )
    release.create().at_after_allow_traffic()
    put_version_metrics("2", invocations=40)

    # WHEN the post-traffic hook runs it
    with captured_output() as out:
        answer = load_handler("post_traffic").handler(release.event, FakeLambdaContext())
    (record,) = outcome_lines(out.getvalue())

    # THEN the release fails on the check, and no 8 characters of the secret are in any output
    assert release.reports() == ["Failed"]
    after = custom(record, "after")
    assert after["result"] == "failed" and "but (pk, sk) was expected" in after["message"]
    assert_no_piece(secret, out.getvalue(), answer)
