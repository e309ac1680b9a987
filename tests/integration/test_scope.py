"""Scope by tag, not by name, end to end on moto: the pre-traffic hook guards a function because it
is tagged ``deployguard:stage=<stage>``, whatever its name; an untagged function is out of scope, and
the hook still reports a status for it (never CodeDeploy's one-hour wait), as ``unguarded`` says."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest

from tests.support.handlers import FakeLambdaContext, load_handler
from tests.support.outcomes import captured_output, outcome_lines
from tests.support.release import HOOK_ENV, POLICY, Release

pytestmark = pytest.mark.usefixtures("aws")

# No *-<stage>-* in it, no pattern of any kind: only the tag can put it in scope.
LEGACY_NAME = "LegacyOrdersFn"


@pytest.fixture
def handler(monkeypatch: pytest.MonkeyPatch) -> Callable[..., dict[str, Any]]:
    for key, value in HOOK_ENV.items():
        monkeypatch.setenv(key, value)
    return load_handler("pre_traffic").handler  # type: ignore[no-any-return]


def policy_for(function_name: str, *, unguarded: str = "fail") -> dict[str, Any]:
    """The staging policy of the release, its 'orders' entry naming ``function_name``."""
    document = copy.deepcopy(POLICY)
    document["unguarded"] = unguarded
    document["functions"]["orders"]["match"] = function_name
    return document


def deploy(
    handler: Callable[..., dict[str, Any]], context: FakeLambdaContext, release: Release
) -> tuple[Release, dict[str, Any]]:
    release.create()
    with captured_output() as out:
        handler(release.event, context)
    (record,) = outcome_lines(out.getvalue())
    return release, record


def scope_findings(record: dict[str, Any]) -> list[dict[str, Any]]:
    return [f for check in record["checks"] for f in check.get("findings", []) if f["code"] == "SCP001"]


def test_a_function_outside_any_naming_pattern_is_guarded_because_it_is_tagged(
    handler: Callable[..., dict[str, Any]], lambda_context: FakeLambdaContext
) -> None:
    release = Release(function_name=LEGACY_NAME, policy=policy_for(LEGACY_NAME))

    release, record = deploy(handler, lambda_context, release)

    assert release.reports() == ["Succeeded"]
    checks = {check["name"]: check["result"] for check in record["checks"]}
    assert checks["policy"] == "passed"
    assert checks["config"] == "passed"  # the checks ran: it is guarded, not waved through
    assert checks["smoke:quote"] == "passed"
    assert scope_findings(record) == []


def test_an_untagged_function_is_reported_failed_with_the_tag_finding_when_unguarded_fails(
    handler: Callable[..., dict[str, Any]], lambda_context: FakeLambdaContext
) -> None:
    release = Release(function_name=LEGACY_NAME, function_stage=None, policy=policy_for(LEGACY_NAME))

    release, record = deploy(handler, lambda_context, release)

    assert release.reports() == ["Failed"]  # a status, reported at once: not CodeDeploy's hour
    (finding,) = scope_findings(record)
    assert finding["severity"] == "error"
    assert f"{LEGACY_NAME} has no tag deployguard:stage" in finding["message"]
    assert "Tags: {deployguard:stage: staging}" in finding["message"]
    assert "deployguard:stage" in record["reason"]
    assert [check["name"] for check in record["checks"]] == ["policy"]  # nothing else was run


def test_a_function_tagged_for_another_stage_is_out_of_this_stages_scope(
    handler: Callable[..., dict[str, Any]], lambda_context: FakeLambdaContext
) -> None:
    release = Release(function_stage="prod")

    release, record = deploy(handler, lambda_context, release)

    assert release.reports() == ["Failed"]
    (finding,) = scope_findings(record)
    assert "tagged deployguard:stage='prod', not staging" in finding["message"]


def test_an_untagged_function_passes_unguarded_when_the_policy_says_pass(
    handler: Callable[..., dict[str, Any]], lambda_context: FakeLambdaContext
) -> None:
    release = Release(
        function_name=LEGACY_NAME, function_stage=None, policy=policy_for(LEGACY_NAME, unguarded="pass")
    )

    release, record = deploy(handler, lambda_context, release)

    assert release.reports() == ["Succeeded"]
    assert [(c["name"], c["result"]) for c in record["checks"]] == [("policy", "skipped")]
    (finding,) = scope_findings(record)
    assert finding["severity"] == "warning"


# --- the alarm rollback: StopDeployment is allowed on "*", so the tag bounds it -----------------


def test_the_alarm_rollback_leaves_a_function_outside_its_scope_alone(
    monkeypatch: pytest.MonkeyPatch, lambda_context: FakeLambdaContext
) -> None:
    from deployguard_cli.localaws import moto_cloudwatch, moto_lambda_alias
    from tests.support.release import ERRORS_ALARM, GuardedRelease, alarm_event, put_alarm, set_alarm

    moto_cloudwatch.install()
    moto_lambda_alias.install()
    for key, value in HOOK_ENV.items():
        monkeypatch.setenv(key, value)
    put_alarm(ERRORS_ALARM)
    # GIVEN a canary of a function the staging policy names but that is tagged for prod
    release = GuardedRelease(function_stage="prod").create().mid_canary(0.1)
    set_alarm(ERRORS_ALARM, "ALARM")

    # WHEN its error alarm fires
    with captured_output() as out:
        load_handler("alarm_rollback").handler(alarm_event(ERRORS_ALARM), lambda_context)

    # THEN nothing is stopped nor moved, and the record says why
    assert release.stops() == []
    assert release.alias()["RoutingConfig"]["AdditionalVersionWeights"] == {"2": 0.1}
    (record,) = outcome_lines(out.getvalue())
    assert record["rolled_back"] is False
    assert "left alone: orders is tagged deployguard:stage='prod', not staging" in record["reason"]


# --- reading the tag: the adapter builds the function's ARN, it does not read it ------------------


def test_the_tags_of_a_plain_function_name_are_read_without_reading_its_configuration() -> None:
    """GetFunctionConfiguration is allowed only on functions tagged for the stage (the roles' tag
    condition): the adapter must not need it to read the tags of a function outside the scope."""
    from deployguard import entrypoints
    from deployguard.aws import clients
    from tests.support.aws import Version, function_with_versions

    function_with_versions(LEGACY_NAME, [Version()], stage=None)
    adapter = entrypoints.lambda_adapter()
    calls: list[str] = []

    def count(model: Any, **_kwargs: Any) -> None:
        calls.append(model.name)

    for client in (clients.lambda_client(), clients.sts_client()):
        client.meta.events.register("before-call.*.*", count)

    first, second = adapter.tags(LEGACY_NAME), adapter.tags(LEGACY_NAME)

    assert first == second
    assert "deployguard:stage" not in first
    assert calls == ["GetCallerIdentity", "ListTags", "ListTags"]  # the account once per environment

    # a handler knows its account from its context's ARN: no STS call at all
    entrypoints.reset()
    entrypoints.remember_account(FakeLambdaContext())
    calls.clear()
    for client in (clients.lambda_client(), clients.sts_client()):
        client.meta.events.register("before-call.*.*", count)

    assert entrypoints.lambda_adapter().tags(LEGACY_NAME) == first
    assert calls == ["ListTags"]
