"""How the alarm rollback finds a function's deployment without searching the account, on moto: the
pre-traffic hook records the deployment it starts and the function's scope tag (a DynamoDB table,
as template.yaml defines it), the rollback reads the record and verifies it with CodeDeploy before
it acts. Without a record, or with one CodeDeploy refutes, it searches the account as before (in
parallel) and reads the function's tags itself; a second alarm finds the record in memory."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest

from deployguard import entrypoints
from deployguard.alarm_rollback import RollbackPorts, handle_alarm_event
from deployguard.appspec import DeploymentTarget, render_appspec
from deployguard.errors import DeployGuardError
from deployguard.lookup import DeploymentRecord
from deployguard.stages import Stage
from deployguard_cli.localaws import moto_cloudwatch, moto_codedeploy, moto_lambda_alias
from tests.support.aws import (
    Version,
    counted_calls,
    deployment_group,
    deployment_records_table,
    fail,
    function_with_versions,
    start_deployment,
)
from tests.support.handlers import FakeLambdaContext, load_handler
from tests.support.outcomes import RecordingPublisher, captured_output, json_lines, outcome_lines
from tests.support.release import (
    APPLICATION,
    ERRORS_ALARM,
    GROUP,
    HOOK_ENV,
    GuardedRelease,
    alarm_event,
    post_traffic_policy,
    put_alarm,
    set_alarm,
)

pytestmark = pytest.mark.usefixtures("aws")

REDACTOR_READS = "GetFunctionConfiguration"  # the record's redactor: both versions, when it quotes an error


@pytest.fixture
def table(monkeypatch: pytest.MonkeyPatch) -> str:
    moto_cloudwatch.install()
    moto_lambda_alias.install()
    name = deployment_records_table()
    for key, value in {**HOOK_ENV, "DEPLOYGUARD_DEPLOYMENT_TABLE": name}.items():
        monkeypatch.setenv(key, value)
    put_alarm(ERRORS_ALARM)
    return name


@pytest.fixture
def release(table: str) -> GuardedRelease:
    """orders 1 -> 2, guarded by a policy that names no deployment_group (as the shipped ones)."""
    return GuardedRelease(policy=post_traffic_policy(deployment_group=None)).create()


def pre_traffic(release: GuardedRelease, context: FakeLambdaContext) -> dict[str, Any]:
    """The real pre-traffic handler on the release's BeforeAllowTraffic; its outcome record."""
    with captured_output() as out:
        load_handler("pre_traffic").handler(release.event, context)
    (record,) = outcome_lines(out.getvalue())
    # NOTE: the rollback is another function: nothing the hook's adapters read is in its memory
    entrypoints.reset()
    return record


@dataclass
class Run:
    records: list[Any]
    error: Exception | None
    output: str
    calls: list[str]

    def record(self) -> dict[str, Any]:
        (record,) = outcome_lines(self.output)
        return record

    def warnings(self) -> list[dict[str, Any]]:
        return [line for line in json_lines(self.output) if line.get("level") == "WARNING"]


Rollback = Callable[[dict[str, Any]], Run]


@pytest.fixture
def rollback(table: str) -> Rollback:
    """The use case with the real adapters, the records included; the AWS calls it made."""

    def go(event: dict[str, Any]) -> Run:
        ports = RollbackPorts(
            codedeploy=entrypoints.codedeploy_adapter(),
            functions=entrypoints.rollback_lambda_adapter(),
            alarms=entrypoints.alarms_adapter(),
            policy=entrypoints.policy_store(HOOK_ENV["DEPLOYGUARD_POLICY_BUCKET"], 300),
            records=entrypoints.deployment_records(table),
        )
        records, error = [], None
        with captured_output() as out, counted_calls() as calls:
            try:
                records = handle_alarm_event(
                    event, ports, stage=Stage.STAGING, clock=entrypoints.now, alerts=RecordingPublisher()
                )
            except DeployGuardError as exc:
                error = exc
        return Run(records, error, out.getvalue(), [c for c in calls if c != "GetParameter"])

    return go


def fire(name: str = ERRORS_ALARM) -> dict[str, Any]:
    time.sleep(0.01)  # NOTE: CloudWatch's timestamps are in milliseconds: strictly after what came before
    set_alarm(name, "ALARM")
    return alarm_event(name)


def item(table: str, function_name: str = "orders", alias: str = "live") -> dict[str, Any]:
    answer = boto3.client("dynamodb").get_item(
        TableName=table, Key={"function_name": {"S": function_name}, "alias": {"S": alias}}
    )
    return {k: next(iter(v.values())) for k, v in answer.get("Item", {}).items()}


def forge(table: str, **values: str) -> None:
    """Someone who may write the table replaces orders:live's record."""
    forge_scoped(table, None, **values)


def forge_scoped(table: str, tags: dict[str, str] | None, **values: str) -> None:
    """As :func:`forge`, the record also holding scope ``tags`` (None: none)."""
    fields = {
        "function_name": "orders",
        "alias": "live",
        "deployment_id": "d-FORGED0001",
        "application_name": APPLICATION,
        "deployment_group_name": GROUP,
        "created_at": datetime.now(UTC).isoformat(),
        **values,
    }
    item: dict[str, Any] = {k: {"S": v} for k, v in fields.items()}
    if tags is not None:
        item["tags"] = {"M": {k: {"S": v} for k, v in tags.items()}}
    boto3.client("dynamodb").put_item(TableName=table, Item=item)


def other_function_in_flight(name: str = "payments") -> str:
    function_with_versions(name, [Version(), Version(description="release 2")])
    deployment_group(f"{name}-app", f"{name}-group")
    target = DeploymentTarget(function_name=name, alias="live", current_version="1", target_version="2")
    deployment_id = start_deployment(f"{name}-app", f"{name}-group", render_appspec(target))
    moto_codedeploy.start_lifecycle_event(deployment_id, "BeforeAllowTraffic")
    return deployment_id


def list_requests() -> list[dict[str, Any]]:
    """The parameters of every ListDeployments DeployGuard sends from now on (which group, or the
    account); its clients are dropped after each test."""
    from deployguard.aws import clients

    seen: list[dict[str, Any]] = []

    def keep(params: dict[str, Any], **_kwargs: Any) -> None:
        seen.append(dict(params))

    clients.codedeploy_client().meta.events.register("provide-client-params.codedeploy.ListDeployments", keep)
    return seen


# --- the pre-traffic hook keeps the record ------------------------------------------------------------


def test_the_pre_traffic_hook_records_the_deployment_it_starts(
    release: GuardedRelease, table: str, lambda_context: FakeLambdaContext
) -> None:
    record = pre_traffic(release, lambda_context)

    assert release.reports() == ["Succeeded"]
    assert "deployment-record" not in [c["name"] for c in record["checks"]]
    kept = item(table)
    assert (kept["deployment_id"], kept["application_name"], kept["deployment_group_name"]) == (
        release.deployment_id,
        APPLICATION,
        GROUP,
    )
    assert '"TargetVersion": "2"' in kept["appspec"]  # the AppSpec CodeDeploy holds
    assert kept["tags"] == {"deployguard:stage": {"S": "staging"}}  # its scope, as the hook read it
    expires = datetime.fromtimestamp(int(kept["expires_at"]), UTC)
    assert timedelta(days=29) < expires - datetime.now(UTC) < timedelta(days=31)  # the table's TTL


def test_a_record_that_cannot_be_written_is_a_warning_never_a_failed_deployment(
    release: GuardedRelease, table: str, lambda_context: FakeLambdaContext
) -> None:
    fail("dynamodb", "PutItem", "Throttling")

    record = pre_traffic(release, lambda_context)

    assert release.reports() == ["Succeeded"]
    (check,) = [c for c in record["checks"] if c["name"] == "deployment-record"]
    assert check["result"] == "warned"
    assert "PutItem failed with ThrottlingException" in check["message"]
    assert "search the account's deployments" in check["message"]
    assert item(table) == {}


def test_a_late_retry_of_an_older_hook_never_hides_a_newer_deployment(table: str) -> None:
    records = entrypoints.deployment_records(table)
    newer = DeploymentRecord(
        function_name="orders",
        alias="live",
        deployment_id="d-NEWER0001",
        application_name=APPLICATION,
        deployment_group_name=GROUP,
        created_at=datetime.now(UTC),
    )
    older = replace(newer, deployment_id="d-OLDER0001", created_at=newer.created_at - timedelta(minutes=5))

    assert records.record(newer) is True
    assert records.record(older) is False
    assert item(table)["deployment_id"] == "d-NEWER0001"


# --- the rollback reads it, and verifies it ------------------------------------------------------------


def test_with_a_record_the_rollback_finds_the_deployment_and_its_scope_in_three_reads(
    release: GuardedRelease, rollback: Rollback, lambda_context: FakeLambdaContext
) -> None:
    # GIVEN the hook recorded the canary, and 3 other functions have deployments in flight
    for name in ("payments", "search", "billing"):
        other_function_in_flight(name)
    pre_traffic(release, lambda_context)
    release.mid_canary(0.1)

    run = rollback(fire())

    # THEN it is rolled back after reading the alarm, the record, the deployment and the alias:
    # no ListDeployments, the record's AppSpec (its SHA-256 is CodeDeploy's) spares
    # GetApplicationRevision, and its deployguard:stage tag (the scope, as the hook read it) ListTags
    assert release.stops() == [True] and release.alias()["FunctionVersion"] == "1"
    assert run.record()["rolled_back"] is True
    # NOTE: the record is read while the alarm is read back (for the function the event names)
    assert sorted(run.calls[:2]) == ["DescribeAlarms", "Query"]
    assert run.calls[2:] == ["GetDeployment", "GetAlias", "StopDeployment", "UpdateAlias"]
    assert REDACTOR_READS not in run.calls  # nothing but DeployGuard's own sentences to redact


def test_a_second_alarm_finds_the_record_in_memory(
    release: GuardedRelease, rollback: Rollback, lambda_context: FakeLambdaContext
) -> None:
    put_alarm("orders-new-version-latency", metric="Duration")
    pre_traffic(release, lambda_context)
    release.mid_canary(0.1)
    rollback(fire())

    # WHEN another alarm of the rolled-back function enters ALARM
    run = rollback(fire("orders-new-version-latency"))

    # THEN the record is not read again, nothing more is done, and it takes few calls
    assert "Query" not in run.calls
    assert release.stops() == [True]
    assert run.record()["rolled_back"] is False
    assert len(run.calls) <= 10, run.calls


def test_a_second_alarm_of_a_rolled_back_release_takes_four_reads(
    release: GuardedRelease, rollback: Rollback, lambda_context: FakeLambdaContext
) -> None:
    # GIVEN a first alarm rolled the canary back in this warm environment
    put_alarm("orders-new-version-latency", metric="Duration")
    pre_traffic(release, lambda_context)
    release.mid_canary(0.1)
    first = rollback(fire())
    assert REDACTOR_READS not in first.calls and "ListTags" not in first.calls

    # WHEN a second alarm of the same release arrives
    second = rollback(fire("orders-new-version-latency"))

    # THEN neither the function's tags (in its record) nor a version's environment (the record quotes
    # no AWS error) is read, and the stopped release is found with one listing of its group, not
    # resolved again
    assert second.calls == ["DescribeAlarms", "GetDeployment", "ListDeployments", "GetAlias"], second.calls
    assert "formats only" not in second.record()["reason"]
    assert second.record()["rolled_back"] is False and release.stops() == [True]


def test_a_record_of_a_function_tagged_for_another_stage_leaves_it_alone_without_list_tags(
    table: str, rollback: Rollback, lambda_context: FakeLambdaContext
) -> None:
    # GIVEN the function is tagged for prod; its (staging) pre-traffic hook recorded that
    release = GuardedRelease(
        policy=post_traffic_policy(deployment_group=None), function_stage="prod"
    ).create()
    pre_traffic(release, lambda_context)
    release.mid_canary(0.1)

    run = rollback(fire())

    assert release.stops() == [] and release.alias()["RoutingConfig"]["AdditionalVersionWeights"] == {
        "2": 0.1
    }
    assert "tagged deployguard:stage='prod', not staging" in run.record()["reason"]
    assert "ListTags" not in run.calls


def test_a_refused_record_leaves_the_scope_to_the_functions_own_tags(
    release: GuardedRelease, rollback: Rollback, table: str
) -> None:
    # GIVEN orders' record forged to name payments' deployment, and to say orders is in scope
    other = other_function_in_flight()
    forge_scoped(
        table,
        {"deployguard:stage": "staging"},
        deployment_id=other,
        application_name="payments-app",
        deployment_group_name="payments-group",
    )
    release.mid_canary(0.1)

    run = rollback(fire())

    # THEN the record is refused, so are its tags: the function's own are read (ListTags)
    assert moto_codedeploy.stop_requests(other) == [] and release.stops() == [True]
    assert run.calls.count("ListTags") == 1


def test_a_scope_tag_forged_into_a_record_stops_nothing_aws_keeps_out_of_scope(
    table: str, rollback: Rollback, lambda_context: FakeLambdaContext
) -> None:
    # GIVEN a function tagged for prod, its real deployment recorded, the record's tag forged to staging
    release = GuardedRelease(
        policy=post_traffic_policy(deployment_group=None), function_stage="prod"
    ).create()
    pre_traffic(release, lambda_context)
    forge_scoped(table, {"deployguard:stage": "staging"}, deployment_id=release.deployment_id)
    release.mid_canary(0.1)
    # AND GetAlias refused as the rollback role's tag condition refuses it on a function of another stage
    from botocore.exceptions import ClientError

    from deployguard.aws import clients

    def denied(**_kwargs: Any) -> None:
        error = {"Error": {"Code": "AccessDeniedException", "Message": "not authorized: resource tag"}}
        raise ClientError(error, "GetAlias")  # type: ignore[arg-type]

    clients.lambda_client().meta.events.register("before-call.lambda.GetAlias", denied)

    run = rollback(fire())

    # THEN the alias is read before anything changes: nothing is stopped or moved, and it says why
    assert release.stops() == [] and release.alias()["RoutingConfig"]["AdditionalVersionWeights"] == {
        "2": 0.1
    }
    assert "StopDeployment" not in run.calls and run.error is not None
    assert "the alias could not be read" in run.record()["reason"]


def test_a_recorded_release_that_finished_is_not_undone_past_a_later_unrecorded_deployment(
    table: str, rollback: Rollback, lambda_context: FakeLambdaContext
) -> None:
    # GIVEN D1 1 -> 2 recorded and finished, its function alarm fired, then D2 2 -> 3 (no pre-traffic
    # hook ran for it: not recorded) finished
    policy = post_traffic_policy(deployment_group=None)
    policy["rollback"] = {"recent_minutes": 10}
    release = GuardedRelease(policy=policy).create()
    pre_traffic(release, lambda_context)
    release.at_after_allow_traffic()
    moto_codedeploy.set_deployment_status(release.deployment_id, "Succeeded")
    from tests.support.aws import put_metric_alarm

    put_metric_alarm("orders-new-version-function-errors", dimensions={"FunctionName": "orders"})
    event = fire("orders-new-version-function-errors")
    time.sleep(0.01)
    lam = boto3.client("lambda")
    lam.update_function_configuration(FunctionName="orders", Description="the revert")
    version = lam.publish_version(FunctionName="orders")["Version"]
    target = DeploymentTarget(
        function_name="orders", alias="live", current_version="2", target_version=version
    )
    revert = start_deployment(APPLICATION, GROUP, render_appspec(target))
    moto_codedeploy.set_deployment_status(revert, "Succeeded")

    # WHEN the alarm's event arrives
    run = rollback(event)

    # THEN the one listing of the recorded group sees D2: nothing is undone
    assert run.calls.count("ListDeployments") == 1, run.calls
    assert release.stops() == []
    assert f"deployment {revert} (version 2 -> {version}, Succeeded) came after" in run.record()["reason"]


def test_the_environment_of_latest_is_read_every_time(table: str) -> None:
    function_with_versions("cached", [Version(environment={"TOKEN": "first-value-000"})])
    adapter = entrypoints.rollback_lambda_adapter()
    lam = boto3.client("lambda")

    with counted_calls() as calls:
        assert adapter.environment("cached", "1") == {"TOKEN": "first-value-000"}
        assert adapter.environment("cached", "$LATEST") == {"TOKEN": "first-value-000"}
        lam.update_function_configuration(
            FunctionName="cached", Environment={"Variables": {"TOKEN": "second-value-00"}}
        )
        assert adapter.environment("cached", "$LATEST") == {"TOKEN": "second-value-00"}
        assert adapter.environment("cached", "1") == {"TOKEN": "first-value-000"}

    # $LATEST is read each time (it changes); version 1 once (published versions never change)
    assert calls.count("GetFunctionConfiguration") == 3, calls


def test_without_a_record_it_searches_the_account_and_still_rolls_back(
    release: GuardedRelease, rollback: Rollback
) -> None:
    # GIVEN no record (the pre-traffic hook never ran), another function's deployment in flight
    other = other_function_in_flight()
    release.mid_canary(0.1)
    requests = list_requests()

    run = rollback(fire())

    assert release.stops() == [True] and release.alias()["FunctionVersion"] == "1"
    assert moto_codedeploy.stop_requests(other) == []
    assert "Query" in run.calls
    assert "applicationName" not in requests[0]  # the account's deployments


def test_unreadable_records_fall_back_to_the_account_search(
    release: GuardedRelease, rollback: Rollback, lambda_context: FakeLambdaContext
) -> None:
    pre_traffic(release, lambda_context)
    release.mid_canary(0.1)
    fail("dynamodb", "Query", "Throttling")

    run = rollback(fire())

    assert run.error is None
    assert release.stops() == [True] and release.alias()["FunctionVersion"] == "1"
    assert "ListDeployments" in run.calls
    assert any(w["message"] == "deployment records unreadable; searching" for w in run.warnings())


def test_a_forged_record_naming_another_functions_deployment_is_refused(
    release: GuardedRelease, rollback: Rollback, table: str
) -> None:
    # GIVEN orders' record forged to name payments' deployment in flight (and payments' group)
    other = other_function_in_flight()
    forge(table, deployment_id=other, application_name="payments-app", deployment_group_name="payments-group")
    release.mid_canary(0.1)

    run = rollback(fire())

    # THEN payments' deployment is left alone; orders' own deployment is found by the search
    assert moto_codedeploy.stop_requests(other) == []
    assert release.stops() == [True]
    (refused,) = [w for w in run.warnings() if w["message"] == "deployment record refused"]
    assert f"deployment {other} shifts payments:live, not orders:live" in refused["reason"]


@pytest.mark.parametrize(
    ("forged", "why"),
    [
        ({"deployment_id": "d-NOSUCH001"}, "CodeDeploy has no deployment d-NOSUCH001"),
        ({"deployment_group_name": "another-group"}, "belongs to another deployment group than recorded"),
    ],
    ids=["no-such-deployment", "another-group"],
)
def test_a_record_codedeploy_refutes_is_refused_and_the_account_searched(
    release: GuardedRelease, rollback: Rollback, table: str, forged: dict[str, str], why: str
) -> None:
    forge(table, **({"deployment_id": release.deployment_id} | forged))
    release.mid_canary(0.1)

    run = rollback(fire())

    assert release.stops() == [True]
    (refused,) = [w for w in run.warnings() if w["message"] == "deployment record refused"]
    assert why in refused["reason"]


def test_a_record_whose_appspec_was_tampered_with_is_not_believed(
    release: GuardedRelease, rollback: Rollback, table: str, lambda_context: FakeLambdaContext
) -> None:
    # GIVEN the record's AppSpec rewritten to claim the release goes from 3 to 1
    pre_traffic(release, lambda_context)
    tampered = render_appspec(
        DeploymentTarget(function_name="orders", alias="live", current_version="3", target_version="1")
    )
    forge(table, deployment_id=release.deployment_id, appspec=tampered)
    release.mid_canary(0.1)

    run = rollback(fire())

    # THEN its SHA-256 is not CodeDeploy's: the AppSpec is read from CodeDeploy, and live goes back to 1
    assert "GetApplicationRevision" in run.calls
    record = run.record()
    assert (record["current_version"], record["target_version"]) == ("1", "2")
    assert release.alias()["FunctionVersion"] == "1"


def test_a_record_of_a_finished_deployment_leads_to_its_group_not_the_account(
    release: GuardedRelease, rollback: Rollback, lambda_context: FakeLambdaContext
) -> None:
    # GIVEN the recorded deployment finished, and a newer one of the same group (its hook not run,
    # so no record) is in flight
    pre_traffic(release, lambda_context)
    moto_codedeploy.set_deployment_status(release.deployment_id, "Succeeded")
    lam = boto3.client("lambda")
    lam.update_function_configuration(FunctionName="orders", Description="release 3")
    lam.publish_version(FunctionName="orders")
    target = DeploymentTarget(function_name="orders", alias="live", current_version="2", target_version="3")
    newer = start_deployment(APPLICATION, GROUP, render_appspec(target))
    lam.update_alias(
        FunctionName="orders",
        Name="live",
        FunctionVersion="2",
        RoutingConfig={"AdditionalVersionWeights": {"3": 0.1}},
    )
    put_alarm("orders-new-version-v3", version="3")
    requests = list_requests()

    run = rollback(fire("orders-new-version-v3"))

    # THEN the newer deployment is rolled back, found by listing the recorded deployment's group only
    assert moto_codedeploy.stop_requests(newer) and release.alias()["FunctionVersion"] == "2"
    assert run.record()["deployment_id"] == newer
    assert requests and all(r.get("deploymentGroupName") == GROUP for r in requests)
