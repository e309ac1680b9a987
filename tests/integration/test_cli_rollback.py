"""`deployguard status` and `deployguard rollback` — the emergency commands — on moto."""

from __future__ import annotations

import io
import json

import pytest

from deployguard_cli.localaws import moto_cloudwatch, moto_codedeploy, moto_lambda_alias
from deployguard_cli.main import main
from tests.support.release import GuardedRelease, someone_moves_the_alias_first

ROLLBACK = ["rollback", "--function", "orders", "--alias", "live"]
STATUS = ["status", "--function", "orders", "--alias", "live"]


@pytest.fixture(autouse=True)
def extensions(aws: None) -> None:
    moto_cloudwatch.install()
    moto_lambda_alias.install()


def answer(monkeypatch: pytest.MonkeyPatch, text: str) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO(text))


def test_status_shows_the_weights_and_the_deployment_in_flight(capsys: pytest.CaptureFixture[str]) -> None:
    release = GuardedRelease().create().mid_canary(0.1)

    assert main(STATUS) == 0

    out = capsys.readouterr().out
    assert "orders:live -> version 1 (90%), version 2 (10%)" in out
    assert f"deployment {release.deployment_id} InProgress: version 1 -> 2 (orders-app/orders-group)" in out


def test_status_as_json_with_nothing_in_flight(capsys: pytest.CaptureFixture[str]) -> None:
    release = GuardedRelease().create().at_after_allow_traffic()
    moto_codedeploy.set_deployment_status(release.deployment_id, "Succeeded")

    assert main([*STATUS, "--json", "--application", "orders-app", "--deployment-group", "orders-group"]) == 0

    status = json.loads(capsys.readouterr().out)
    assert (status["function_version"], status["traffic"], status["deployment"]) == ("2", {"2": 1.0}, None)


def test_rollback_of_a_canary_with_yes_stops_it_and_clears_the_routing(
    capsys: pytest.CaptureFixture[str],
) -> None:
    release = GuardedRelease().create().mid_canary(0.1)

    assert main([*ROLLBACK, "--yes"]) == 0

    assert release.alias()["FunctionVersion"] == "1"
    assert release.alias()["RoutingConfig"]["AdditionalVersionWeights"] == {}
    assert release.stops() == [True]
    out = capsys.readouterr().out
    assert "version 1 (90%), version 2 (10%) -> version 1 (100%), routing cleared" in out
    assert "action: alias_restored live -> version 1, routing cleared" in out


def test_rollback_asks_first_and_a_no_changes_nothing(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    release = GuardedRelease().create().mid_canary(0.1)
    answer(monkeypatch, "n\n")

    assert main(ROLLBACK) == 1

    assert "Proceed? [y/N]" in capsys.readouterr().out
    assert release.alias()["RoutingConfig"]["AdditionalVersionWeights"] == {"2": 0.1}
    assert release.stops() == []


def test_rollback_confirmed_at_the_prompt(monkeypatch: pytest.MonkeyPatch) -> None:
    release = GuardedRelease().create().mid_canary(0.1)
    answer(monkeypatch, "y\n")

    assert main(ROLLBACK) == 0
    assert release.alias()["FunctionVersion"] == "1"


def test_after_a_finished_release_the_previous_version_comes_from_its_appspec(
    capsys: pytest.CaptureFixture[str],
) -> None:
    release = GuardedRelease().create().at_after_allow_traffic()
    moto_codedeploy.set_deployment_status(release.deployment_id, "Succeeded")

    assert main([*ROLLBACK, "--yes", "--json"]) == 0

    assert release.alias()["FunctionVersion"] == "1"
    record = json.loads(capsys.readouterr().out.split("\n", 1)[1])
    assert (record["current_version"], record["target_version"], record["role"]) == ("1", "2", "cli")


def test_rollback_to_a_named_version() -> None:
    release = GuardedRelease().create().at_after_allow_traffic()
    moto_codedeploy.set_deployment_status(release.deployment_id, "Succeeded")

    assert main([*ROLLBACK, "--to", "1", "--yes"]) == 0
    assert release.alias()["FunctionVersion"] == "1"


def test_when_the_previous_version_cannot_be_told_it_asks_for_to(capsys: pytest.CaptureFixture[str]) -> None:
    # GIVEN live on 1 alone, and the last deployment (to 2) stopped before it shifted anything
    release = GuardedRelease().create()
    moto_codedeploy.set_deployment_status(release.deployment_id, "Stopped")

    assert (
        main([*ROLLBACK, "--yes", "--application", "orders-app", "--deployment-group", "orders-group"]) == 2
    )

    assert "name it with --to VERSION" in capsys.readouterr().err
    assert release.alias()["FunctionVersion"] == "1"


def test_an_alias_changed_meanwhile_is_not_overwritten(capsys: pytest.CaptureFixture[str]) -> None:
    release = GuardedRelease().create().mid_canary(0.1)
    someone_moves_the_alias_first("2")

    assert main([*ROLLBACK, "--yes"]) == 2

    assert release.alias()["FunctionVersion"] == "2"
    assert "changed after it was read" in capsys.readouterr().err


def test_a_deployment_that_cannot_be_stopped_still_gets_its_alias_moved_back(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from deployguard.aws import clients
    from tests.support.aws import fail

    release = GuardedRelease().create().mid_canary(0.1)
    clients.codedeploy_client()  # NOTE: fail() registers on the clients DeployGuard will use
    fail("codedeploy", "StopDeployment", "Throttling")

    assert main([*ROLLBACK, "--yes"]) == 2

    assert release.alias()["FunctionVersion"] == "1"
    assert release.alias()["RoutingConfig"]["AdditionalVersionWeights"] == {}
    assert "moving the alias back anyway" in capsys.readouterr().err


def test_an_alias_someone_already_put_back_is_nothing_to_do_not_a_failure(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # GIVEN the alarm rollback puts live on 1 alone between the command's read and its UpdateAlias
    release = GuardedRelease().create().mid_canary(0.1)
    someone_moves_the_alias_first("1")

    assert main([*ROLLBACK, "--yes"]) == 0

    assert release.alias()["FunctionVersion"] == "1"
    assert "action: no_action live is already on version 1 alone" in capsys.readouterr().out


def test_what_the_rollback_prints_is_redacted_with_the_versions_environments(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from botocore.exceptions import ClientError

    from deployguard.aws import clients
    from tests.support.release import GOOD_ENV

    secret = "Tr0ub4dor-hunter2-Sup3rSecret-9f8e7d"
    GuardedRelease(target_env={**GOOD_ENV, "DB_PASSWORD": secret}).create().mid_canary(0.1)

    def echo(**_kwargs: object) -> None:
        error = {"Error": {"Code": "ValidationException", "Message": f"bad value {secret}"}}
        raise ClientError(error, "StopDeployment")  # type: ignore[arg-type]

    clients.codedeploy_client().meta.events.register("before-call.codedeploy.StopDeployment", echo)

    assert main([*ROLLBACK, "--yes"]) == 2

    printed = "".join(capsys.readouterr())
    assert "StopDeployment failed with ValidationException" in printed
    assert not [secret[i : i + 8] for i in range(len(secret) - 7) if secret[i : i + 8] in printed]
