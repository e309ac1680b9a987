"""Version pruning on moto: after a Succeeded deployment the old versions go, and exactly the ones
that must stay stay (the aliases' versions, routing included; the newest N; the target; the previous
version while the rollback window is open). A pruning failure is recorded and changes nothing."""

from __future__ import annotations

import copy
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from deployguard.appspec import DeploymentTarget
from deployguard.aws import clients
from deployguard.entrypoints import lambda_adapter
from deployguard.policy import Prune
from deployguard.prune import prune_versions
from deployguard_cli.localaws import moto_cloudwatch, moto_lambda_alias
from tests.support.aws import Version, function_with_versions
from tests.support.handlers import FakeLambdaContext, load_handler
from tests.support.outcomes import captured_output, outcome_lines
from tests.support.release import HOOK_ENV, GuardedRelease, post_traffic_policy, put_version_metrics

pytestmark = pytest.mark.usefixtures("aws")


@pytest.fixture(autouse=True)
def moto_extensions(aws: None) -> None:
    moto_cloudwatch.install()
    moto_lambda_alias.install()


def versions_left(function_name: str) -> list[str]:
    pages = (
        boto3.client("lambda").get_paginator("list_versions_by_function").paginate(FunctionName=function_name)
    )
    return [v["Version"] for page in pages for v in page["Versions"] if v["Version"] != "$LATEST"]


@pytest.mark.parametrize(("window_open", "kept_previous"), [(True, ["9"]), (False, [])])
def test_pruning_keeps_exactly_the_aliases_versions_the_newest_the_target_and_the_previous_in_the_window(
    window_open: bool, kept_previous: list[str]
) -> None:
    # GIVEN versions 1..11, 'live' on 11 (the release), 'stable' on 3 routing 20% to 4, keep 1
    function_with_versions(
        "orders", [Version(description=f"release {n}") for n in range(1, 12)], alias_version="11"
    )
    lam = boto3.client("lambda")
    lam.create_alias(
        FunctionName="orders",
        Name="stable",
        FunctionVersion="3",
        RoutingConfig={"AdditionalVersionWeights": {"4": 0.2}},
    )
    target = DeploymentTarget(function_name="orders", alias="live", current_version="9", target_version="10")

    # WHEN the deployment 9 -> 10 succeeded and pruning runs
    result = prune_versions(lambda_adapter(), target, Prune(keep=1), rollback_window_open=window_open)

    # THEN only the versions nothing needs are gone
    assert result.result == "passed"
    expected = sorted(["3", "4", "10", "11", *kept_previous], key=int)
    assert versions_left("orders") == expected
    assert "$LATEST" in [
        v["Version"] for v in lam.list_versions_by_function(FunctionName="orders")["Versions"]
    ]
    deleted = [v for v in map(str, range(1, 12)) if v not in expected]
    assert result.message == f"deleted version(s) {', '.join(deleted)}"


def test_pruning_reads_every_page_of_versions_and_aliases() -> None:
    # GIVEN more versions and aliases than one page holds (Lambda pages at 50)
    function_with_versions(
        "orders", [Version(description=f"release {n}") for n in range(1, 56)], alias_version="55"
    )
    lam = boto3.client("lambda")
    for n in range(1, 53):
        lam.create_alias(FunctionName="orders", Name=f"pin{n}", FunctionVersion=str(n))
    target = DeploymentTarget(function_name="orders", alias="live", current_version="54", target_version="55")

    result = prune_versions(lambda_adapter(), target, Prune(keep=1), rollback_window_open=False)

    # THEN only 53 and 54 (no alias, not the newest, not the target) were deleted
    assert result.message == "deleted version(s) 53, 54"
    assert versions_left("orders") == [str(n) for n in range(1, 53)] + ["55"]


def post_traffic(release: GuardedRelease, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    for key, value in HOOK_ENV.items():
        monkeypatch.setenv(key, value)
    release.create().at_after_allow_traffic()
    put_version_metrics("2", invocations=40)
    with captured_output() as out:
        load_handler("post_traffic").handler(release.event, FakeLambdaContext())
    (record,) = outcome_lines(out.getvalue())
    return dict(record)


def prune_policy(recent_minutes: int = 0) -> dict[str, Any]:
    policy = copy.deepcopy(post_traffic_policy(prune={"keep": 1}))
    del policy["functions"]["orders"]["alarms"]  # the alarms are test_post_traffic's subject
    policy["rollback"] = {"recent_minutes": recent_minutes}
    return policy


@pytest.mark.parametrize(("recent_minutes", "left"), [(0, ["2"]), (30, ["1", "2"])])
def test_the_post_traffic_hook_prunes_after_reporting_succeeded(
    monkeypatch: pytest.MonkeyPatch, recent_minutes: int, left: list[str]
) -> None:
    # GIVEN a healthy release 1 -> 2 whose policy keeps 1 version
    release = GuardedRelease(policy=prune_policy(recent_minutes))

    # WHEN the post-traffic hook reports Succeeded
    record = post_traffic(release, monkeypatch)

    # THEN version 1 goes, unless the rollback window keeps it; the record says what was done
    assert release.reports() == ["Succeeded"], record["reason"]
    assert versions_left("orders") == left
    (prune,) = [c for c in record["checks"] if c["name"] == "prune"]
    assert prune["result"] == "passed"
    assert prune["message"] == ("deleted version(s) 1" if left == ["2"] else "nothing to delete")


def test_a_failed_release_prunes_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    release = GuardedRelease(policy=prune_policy())
    release.policy["functions"]["orders"]["smoke"][0]["expect"] = [{"path": "$.total", "equals": 13}]  # type: ignore[index]

    record = post_traffic(release, monkeypatch)

    assert release.reports() == ["Failed"]
    assert versions_left("orders") == ["1", "2"]
    assert "prune" not in [c["name"] for c in record["checks"]]


def test_a_pruning_failure_is_recorded_and_the_outcome_stands(monkeypatch: pytest.MonkeyPatch) -> None:
    # GIVEN DeleteFunction is refused
    def refuse(**_kwargs: Any) -> None:
        raise ClientError(
            {"Error": {"Code": "AccessDeniedException", "Message": "not allowed"}}, "DeleteFunction"
        )

    clients.lambda_client().meta.events.register("before-call.lambda.DeleteFunction", refuse)
    release = GuardedRelease(policy=prune_policy())

    # WHEN the release succeeds
    record = post_traffic(release, monkeypatch)

    # THEN it is reported Succeeded once; the record holds the warning; nothing was deleted
    assert release.reports() == ["Succeeded"]
    assert record["decision"] == "Succeeded"
    (prune,) = [c for c in record["checks"] if c["name"] == "prune"]
    assert prune["result"] == "warned"
    assert prune["findings"][0]["code"] == "PRN001"
    assert "AccessDeniedException" in prune["message"]
    assert versions_left("orders") == ["1", "2"]
