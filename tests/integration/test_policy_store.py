"""The policy store on moto's S3: a stage's baseline and one document per application, published
with conditional PUTs and read by the hooks with ETag revalidation; floors, sizes and conflicts."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import boto3
import pytest

from deployguard import policy as policy_module
from deployguard.aws import clients
from deployguard.aws.policy_store import PolicyStore
from deployguard.documents import MAX_DOCUMENT_BYTES
from deployguard.errors import AwsCallError, PolicyError
from deployguard.guard import Unguarded, guard_function
from deployguard.stages import Stage
from deployguard_cli.commands.policy import effective_view, publish_application, publish_baseline
from deployguard_cli.localaws import moto_s3_limits
from deployguard_cli.policy_store import PublishConflict, PublishError, put_document
from tests.support.policies import PROD_BASELINE, compact, fleet_application

pytestmark = pytest.mark.usefixtures("aws")

BUCKET = "deployguard-prod-policies-123456789012-us-east-1"
ORDERS = {
    "version": 1,
    "stage": "prod",
    "application": "orders",
    "functions": {"orders": {"match": "deployguard-prod-orders", "bake": {"minutes": 20}}},
}
TAGS = {"deployguard:stage": "prod", "deployguard:app": "orders"}


@pytest.fixture
def s3() -> Any:
    client = boto3.client("s3")
    client.create_bucket(Bucket=BUCKET)
    return client


def write(folder: Path, name: str, document: object) -> Path:
    path = folder / name
    path.write_text(json.dumps(document))
    return path


def published(s3: Any, folder: Path, application: dict[str, Any] | None = None) -> PolicyStore:
    """The prod baseline and ``application`` (default: orders) published as the CLI publishes them."""
    publish_baseline(s3, BUCKET, Stage.PROD, write(folder, "baseline.json", PROD_BASELINE))
    document = application or ORDERS
    name = str(document["application"])
    publish_application(s3, BUCKET, Stage.PROD, name, write(folder, f"{name}.json", document))
    return PolicyStore(clients.s3_client, BUCKET, max_age=0)


def parser_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "deployguard-policy-parser"]


# --- what a hook loads ------------------------------------------------------------------------------


def test_the_effective_policy_is_the_baseline_defaults_under_the_application(s3: Any, tmp_path: Path) -> None:
    store = published(s3, tmp_path)

    policy = store.load(Stage.PROD, "orders", "deployguard-prod-orders")

    match = policy.for_function("deployguard-prod-orders")
    assert match is not None
    entry = match[1]
    assert entry.bake.minutes == 20  # the application's own value, above the floor of 10
    assert (
        entry.version_health is not None and entry.version_health.max_error_rate == 0.01
    )  # baseline default
    assert policy.unguarded == "fail"  # only the baseline sets it


def test_a_fleet_of_200_functions_with_20_cases_each_publishes_and_loads(s3: Any, tmp_path: Path) -> None:
    fleet = fleet_application()
    assert len(compact(fleet)) > 1_300_000  # the size the store is for: about 1.4 MB

    store = published(s3, tmp_path, fleet)
    last = store.load(Stage.PROD, "fleet", "fleet-prod-fn-199")
    everything = store.load(Stage.PROD, "fleet")

    assert last.for_function("fleet-prod-fn-199") is not None
    assert len(everything.functions) == 200
    assert all(len(entry.smoke) == 20 for entry in everything.functions.values())


def test_a_second_load_revalidates_with_a_304_and_parses_nothing(s3: Any, tmp_path: Path) -> None:
    store = published(s3, tmp_path)
    calls: list[dict[str, Any]] = []
    clients.s3_client().meta.events.register(
        "before-call.s3.GetObject", lambda params, **_: calls.append(dict(params["headers"]))
    )

    first = store.load(Stage.PROD, "orders", "deployguard-prod-orders")
    parses, validations = store.parses, store.validations
    second = store.load(Stage.PROD, "orders", "deployguard-prod-orders")

    assert second is first
    assert (store.parses, store.validations) == (parses, validations)  # no parse, no validation
    assert store.not_modified == 2  # the baseline and the application: each answered 304
    assert all("If-None-Match" in headers for headers in calls[2:]) and len(calls) == 4


def test_a_new_version_of_the_document_is_read_at_the_next_load(s3: Any, tmp_path: Path) -> None:
    store = published(s3, tmp_path)
    store.load(Stage.PROD, "orders", "deployguard-prod-orders")
    changed = json.loads(json.dumps(ORDERS))
    changed["functions"]["orders"]["bake"]["minutes"] = 30
    publish_application(s3, BUCKET, Stage.PROD, "orders", write(tmp_path, "orders.json", changed))

    match = store.load(Stage.PROD, "orders", "deployguard-prod-orders").for_function(
        "deployguard-prod-orders"
    )

    assert match is not None and match[1].bake.minutes == 30


def test_an_application_without_a_document_is_unguarded_with_the_fix(s3: Any, tmp_path: Path) -> None:
    store = published(s3, tmp_path)

    policy = store.load(Stage.PROD, "payments", "deployguard-prod-payments")
    found = guard_function(
        policy, "deployguard-prod-payments", tags={"deployguard:stage": "prod", "deployguard:app": "payments"}
    )

    assert isinstance(found, Unguarded)
    message = found.policy_check.message
    assert "application payments has no prod policy" in message
    assert "deployguard policy publish --stage prod --app payments FILE" in message
    assert found.policy_check.result.value == "failed"  # the prod baseline: unguarded: fail


def test_a_function_without_the_app_tag_is_unguarded_with_the_tag_to_add(s3: Any, tmp_path: Path) -> None:
    store = published(s3, tmp_path)

    found = guard_function(store.load(Stage.PROD, None), "orders", tags={"deployguard:stage": "prod"})

    assert isinstance(found, Unguarded)
    assert "has no deployguard:app tag" in found.policy_check.message


def test_a_missing_baseline_is_a_policy_error_naming_the_publish_command(s3: Any) -> None:
    store = PolicyStore(clients.s3_client, BUCKET, max_age=0)

    with pytest.raises(PolicyError, match=r"--stage prod --baseline FILE"):
        store.load(Stage.PROD, "orders")


def test_a_document_over_the_cap_in_the_bucket_is_refused_before_it_is_read(s3: Any, tmp_path: Path) -> None:
    store = published(s3, tmp_path)
    s3.put_object(Bucket=BUCKET, Key="prod/apps/big.json", Body=b" " * (MAX_DOCUMENT_BYTES + 1))

    with pytest.raises(PolicyError, match="over DeployGuard's cap of 4,194,304 bytes per document"):
        store.load(Stage.PROD, "big")


def test_prepare_starts_one_parser_and_load_waits_for_it(s3: Any, tmp_path: Path) -> None:
    store = published(s3, tmp_path)

    store.prepare()
    store.prepare()  # a second invocation, or a second call, starts nothing more
    assert len(parser_threads()) <= 1
    loaded = store.load(Stage.PROD, "orders", "deployguard-prod-orders")

    assert loaded.for_function("deployguard-prod-orders") is not None
    assert parser_threads() == []  # load() joined it


def test_a_parser_that_fails_to_build_costs_only_the_head_start(
    s3: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken() -> None:
        raise RuntimeError("simulated")

    store = published(s3, tmp_path)
    monkeypatch.setattr(policy_module, "build_parser", broken)

    store.prepare()

    assert store.load(Stage.PROD, "orders").stage is Stage.PROD


def test_an_invalid_document_in_the_bucket_is_a_policy_error_naming_the_path(s3: Any, tmp_path: Path) -> None:
    store = published(s3, tmp_path)
    bad = {**ORDERS, "functions": {"orders": {"smoke": [{"name": "q", "expect": [{"eqals": 1}]}]}}}
    s3.put_object(Bucket=BUCKET, Key="prod/apps/orders.json", Body=json.dumps(bad).encode())

    store.prepare()

    with pytest.raises(PolicyError, match=r"functions\.orders\.smoke\[0\]\.expect\[0\]\.eqals"):
        store.load(Stage.PROD, "orders", "orders")


# --- publishing -------------------------------------------------------------------------------------


def test_an_application_weaker_than_a_floor_is_refused_naming_the_floor(s3: Any, tmp_path: Path) -> None:
    published(s3, tmp_path)
    weak = json.loads(json.dumps(ORDERS))
    weak["functions"]["orders"]["bake"] = {"minutes": 5}
    weak["functions"]["orders"]["config"] = {"plaintext_secrets": "warning"}

    with pytest.raises(PolicyError) as caught:
        publish_application(s3, BUCKET, Stage.PROD, "orders", write(tmp_path, "weak.json", weak))

    message = str(caught.value)
    assert "functions.orders.bake.minutes: 5 is weaker than the baseline's floor bake.minutes: 10" in message
    assert "floor config.plaintext_secrets: 'error'" in message
    assert "set it to 10 or stricter, or remove it to take the baseline's default" in message
    stored = json.loads(s3.get_object(Bucket=BUCKET, Key="prod/apps/orders.json")["Body"].read())
    assert stored == ORDERS  # nothing was stored


def test_an_application_is_refused_until_the_baseline_is_published(s3: Any, tmp_path: Path) -> None:
    with pytest.raises(
        PublishError, match="publish it first with `deployguard policy publish --stage prod --baseline"
    ):
        publish_application(s3, BUCKET, Stage.PROD, "orders", write(tmp_path, "orders.json", ORDERS))


def test_two_publishers_racing_the_second_gets_a_conflict_and_overwrites_nothing(
    s3: Any, tmp_path: Path
) -> None:
    published(s3, tmp_path)
    ours = json.loads(json.dumps(ORDERS))
    ours["functions"]["orders"]["bake"]["minutes"] = 25
    theirs = json.loads(json.dumps(ORDERS))
    theirs["functions"]["orders"]["bake"]["minutes"] = 45
    raced: list[bool] = []

    def the_other_publisher_first(**_: Any) -> None:  # between our read of the ETag and our PUT
        if not raced:
            raced.append(True)
            publish_application(s3, BUCKET, Stage.PROD, "orders", write(tmp_path, "theirs.json", theirs))

    s3.meta.events.register_first("before-call.s3.PutObject", the_other_publisher_first)
    with pytest.raises(PublishConflict, match="changed while this publish ran"):
        publish_application(s3, BUCKET, Stage.PROD, "orders", write(tmp_path, "ours.json", ours))

    stored = json.loads(s3.get_object(Bucket=BUCKET, Key="prod/apps/orders.json")["Body"].read())
    assert stored["functions"]["orders"]["bake"]["minutes"] == 45  # theirs, not overwritten


def test_a_first_publish_never_overwrites_a_document_that_appeared_meanwhile(s3: Any) -> None:
    put_document(s3, BUCKET, "prod/apps/new.json", b"{}", etag=None)

    with pytest.raises(PublishConflict):
        put_document(s3, BUCKET, "prod/apps/new.json", b"{}", etag=None)


def test_a_document_over_deployguards_cap_is_refused_before_upload(s3: Any, tmp_path: Path) -> None:
    published(s3, tmp_path)
    huge = fleet_application("huge", functions=1, cases=2)
    (tmp_path / "blob.json").write_text(json.dumps({"blob": "x" * (MAX_DOCUMENT_BYTES * 2 // 3)}))
    for case in huge["functions"]["fn-000"]["smoke"]:  # each file within the cap, inlined twice: over it
        del case["payload"]
        case["payload_file"] = "blob.json"

    with pytest.raises(PublishError, match=r"over DeployGuard's cap of 4,194,304 bytes per document"):
        publish_application(s3, BUCKET, Stage.PROD, "huge", write(tmp_path, "huge.json", huge))

    assert "Contents" not in s3.list_objects_v2(Bucket=BUCKET, Prefix="prod/apps/huge")


def test_s3s_single_put_limit_is_enforced_by_the_local_aws(s3: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(moto_s3_limits, "MAX_SINGLE_PUT_BYTES", 1024)  # 5 GB on AWS

    with pytest.raises(AwsCallError, match="EntityTooLarge"):
        put_document(s3, BUCKET, "prod/apps/big.json", b"x" * 1025, etag=None)


def test_policy_show_says_where_each_value_comes_from(s3: Any, tmp_path: Path) -> None:
    published(s3, tmp_path)

    shown = effective_view(s3, BUCKET, Stage.PROD, "orders")

    origins = {item["path"]: (item["value"], item["origin"]) for item in shown["values"]}
    assert origins["unguarded"] == ("fail", "baseline")
    assert origins["functions.orders.bake.minutes"] == (20, "application")
    assert origins["functions.orders.version_health.max_error_rate"] == (0.01, "baseline default")
    assert origins["functions.orders.bake.poll_seconds"] == (60, "built-in default")
    assert shown["floors"]["bake.minutes"] == 10
