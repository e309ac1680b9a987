"""The deployment record lookup without AWS: what a record keeps, which record is tried, what
refutes one, and the warm memory's bounds (the moto tests: tests/integration/test_rollback_lookup.py)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from deployguard.appspec import DeploymentTarget
from deployguard.aws.deployment_records import TABLE_KEYS, TTL_ATTRIBUTE, _record
from deployguard.aws.warm_cache import WarmCache
from deployguard.deployment import IN_FLIGHT_STATUSES, Deployment
from deployguard.errors import AwsCallError
from deployguard.findings import Decision
from deployguard.lookup import APPSPEC_MAX, DeploymentRecord, record_of, recorded_deployment
from tests.support.outcomes import captured_output
from tests.tools.transform import load_template

CREATED = datetime(2026, 3, 2, 17, 0, tzinfo=UTC)
RELEASE = Deployment(
    deployment_id="d-RELEASE01",
    application_name="orders-app",
    deployment_group_name="orders-group",
    status="InProgress",
    create_time=CREATED,
    target=DeploymentTarget(function_name="orders", alias="live", current_version="1", target_version="2"),
    appspec='{"version": 0.0}',
)


@dataclass
class FakeCodeDeploy:
    """The resolve of the CodeDeployPort: the deployments CodeDeploy has, or an error for all."""

    known: dict[str, Deployment] = field(default_factory=dict)
    error: AwsCallError | None = None
    resolved: list[str] = field(default_factory=list)

    def resolve(self, deployment_id: str, *, appspec: str | None = None) -> Deployment:
        self.resolved.append(deployment_id)
        if self.error is not None:
            raise self.error
        if deployment_id not in self.known:
            raise AwsCallError("GetDeployment", "DeploymentDoesNotExistException", "no such deployment")
        return self.known[deployment_id]

    def stop(self, deployment_id: str, *, auto_rollback: bool = True) -> bool:
        raise AssertionError("not called")

    def deployments(
        self,
        *,
        application_name: str | None = None,
        deployment_group_name: str | None = None,
        statuses: Sequence[str] = IN_FLIGHT_STATUSES,
        created_after: datetime | None = None,
        created_before: datetime | None = None,
    ) -> list[str]:
        raise AssertionError("not called")

    def lifecycle_event_status(self, deployment_id: str, lifecycle_event: str) -> str | None:
        raise AssertionError("not called")

    def report(self, deployment_id: str, lifecycle_event_hook_execution_id: str, decision: Decision) -> bool:
        raise AssertionError("not called")


@dataclass
class FakeRecords:
    kept: list[DeploymentRecord] = field(default_factory=list)

    def record(self, entry: DeploymentRecord) -> bool:
        self.kept.append(entry)
        return True

    def latest(self, function_name: str) -> list[DeploymentRecord]:
        return [r for r in self.kept if r.function_name == function_name]


def test_a_record_keeps_what_the_rollback_verifies_and_no_oversized_appspec() -> None:
    record = record_of(RELEASE)

    assert record is not None
    assert (record.function_name, record.alias, record.deployment_id) == ("orders", "live", "d-RELEASE01")
    assert (record.application_name, record.deployment_group_name) == ("orders-app", "orders-group")
    assert record.appspec == '{"version": 0.0}'
    oversized = record_of(replace(RELEASE, appspec="x" * (APPSPEC_MAX + 1)))
    assert oversized is not None and oversized.appspec is None
    assert record_of(replace(RELEASE, create_time=None)) is None


def test_a_record_keeps_the_functions_scope_tag_only_and_says_when_none_was_read() -> None:
    tags = {"deployguard:stage": "staging", "deployguard:app": "orders", "team": "payments"}

    record = record_of(RELEASE, tags)
    untagged = record_of(RELEASE, {"team": "payments"})

    assert record is not None and record.tags == {"deployguard:stage": "staging"}
    assert untagged is not None and untagged.tags == {}  # read: no scope tag
    unread = record_of(RELEASE)
    assert unread is not None and unread.tags is None  # not read: the rollback reads them itself


def test_a_verified_record_carries_its_scope_tags_to_the_rollback() -> None:
    record = record_of(RELEASE, {"deployguard:stage": "staging"})
    assert record is not None

    found = recorded_deployment(
        FakeRecords([record]), FakeCodeDeploy({RELEASE.deployment_id: RELEASE}), "orders", "live"
    )

    assert found is not None and found.tags == {"deployguard:stage": "staging"}


@pytest.mark.parametrize(
    ("item", "tags"),
    [
        (
            {"tags": {"M": {"deployguard:stage": {"S": "prod"}, "other": {"S": "x"}}}},
            {"deployguard:stage": "prod"},
        ),
        ({"tags": {"M": {}}}, {}),
        ({}, None),
        ({"tags": {"M": {"deployguard:stage": {"N": "1"}}}}, None),  # not a string: not believed
        ({"tags": {"S": "deployguard:stage=prod"}}, None),
    ],
    ids=["scope-tag", "none-read", "not-recorded", "not-a-string", "not-a-map"],
)
def test_the_tags_read_back_from_an_item_are_the_scope_tags_or_none(item: dict[str, Any], tags: Any) -> None:
    base = {
        "function_name": {"S": "orders"},
        "alias": {"S": "live"},
        "deployment_id": {"S": "d-RELEASE01"},
        "application_name": {"S": "orders-app"},
        "deployment_group_name": {"S": "orders-group"},
        "created_at": {"S": CREATED.isoformat()},
    }

    record = _record({**base, **item})

    assert record is not None and record.tags == tags


def test_the_newest_record_of_the_alarms_alias_is_tried_first() -> None:
    older = record_of(replace(RELEASE, deployment_id="d-OLDER0001", create_time=CREATED - timedelta(hours=1)))
    other_alias = record_of(
        replace(
            RELEASE,
            deployment_id="d-BETA00001",
            create_time=CREATED + timedelta(hours=1),
            target=replace(RELEASE.target, alias="beta"),
        )
    )
    newest = record_of(RELEASE)
    assert older and other_alias and newest
    codedeploy = FakeCodeDeploy({RELEASE.deployment_id: RELEASE})

    found = recorded_deployment(FakeRecords([older, other_alias, newest]), codedeploy, "orders", "live")

    assert found is not None and found.deployment is RELEASE
    assert codedeploy.resolved == ["d-RELEASE01"]
    assert found.in_flight_before(CREATED + timedelta(minutes=1))
    assert not found.in_flight_before(CREATED - timedelta(minutes=1))  # an alarm older than the release


def test_a_record_codedeploy_cannot_confirm_is_refused_and_the_next_tried() -> None:
    record = record_of(RELEASE)
    ghost = record_of(replace(RELEASE, deployment_id="d-GHOST0001", create_time=CREATED + timedelta(hours=1)))
    assert record and ghost

    with captured_output() as out:
        found = recorded_deployment(
            FakeRecords([record, ghost]), FakeCodeDeploy({RELEASE.deployment_id: RELEASE}), "orders", None
        )

    assert found is not None and found.deployment is RELEASE
    assert "deployment record refused" in out.getvalue()
    assert "CodeDeploy has no deployment d-GHOST0001" in out.getvalue()


def test_without_an_alias_the_deployment_in_flight_wins_over_a_newer_finished_one() -> None:
    # GIVEN live's release in flight, and a newer release of alias beta that has finished
    finished = replace(
        RELEASE,
        deployment_id="d-BETA00001",
        status="Succeeded",
        create_time=CREATED + timedelta(hours=1),
        target=replace(RELEASE.target, alias="beta"),
    )
    records = [record_of(RELEASE), record_of(finished)]
    codedeploy = FakeCodeDeploy({d.deployment_id: d for d in (RELEASE, finished)})

    found = recorded_deployment(FakeRecords([r for r in records if r]), codedeploy, "orders", None)

    assert found is not None and found.deployment is RELEASE
    assert codedeploy.resolved == ["d-BETA00001", "d-RELEASE01"]


def test_an_aws_error_while_verifying_is_raised_not_taken_for_a_refutation() -> None:
    # NOTE: a throttled GetDeployment says nothing about the record: the rollback records the
    # failure and Lambda retries, rather than searching on as if the record were forged
    record = record_of(RELEASE)
    assert record
    codedeploy = FakeCodeDeploy(error=AwsCallError("GetDeployment", "ThrottlingException", "Rate exceeded"))

    with pytest.raises(AwsCallError, match="ThrottlingException"):
        recorded_deployment(FakeRecords([record]), codedeploy, "orders", "live")


def test_the_warm_memory_forgets_after_its_age_and_beyond_its_size() -> None:
    now = [0.0]
    cache: WarmCache[str, int] = WarmCache(max_items=2, max_age=60, clock=lambda: now[0])
    cache.put("a", 1)
    cache.put("b", 2)
    assert cache.get("a") == 1  # a is now the most recently used
    cache.put("c", 3)  # b goes

    assert (cache.get("a"), cache.get("b"), cache.get("c")) == (1, None, 3)
    now[0] = 60.0
    assert cache.get("a") is None


def test_the_template_table_has_the_keys_and_ttl_the_adapter_writes() -> None:
    table = load_template()["Resources"]["DeploymentRecordsTable"]["Properties"]

    assert [(k["AttributeName"], k["KeyType"]) for k in table["KeySchema"]] == list(TABLE_KEYS)
    assert table["TimeToLiveSpecification"] == {"AttributeName": TTL_ATTRIBUTE, "Enabled": True}
    assert table["BillingMode"] == "PAY_PER_REQUEST"
