"""Which versions pruning deletes (without AWS), and when the rollback window is open."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest

from deployguard.appspec import DeploymentTarget
from deployguard.deadlines import deadline_at
from deployguard.policy import Prune
from deployguard.prune import prune_versions, versions_to_delete, window_open
from deployguard.snapshot import AliasState

VERSIONS = ["$LATEST", *map(str, range(1, 13))]


def alias(name: str, version: str, **routing: float) -> AliasState:
    return AliasState(
        function_name="orders", alias=name, function_version=version, additional_version_weights=routing
    )


@pytest.mark.parametrize(
    ("window", "expected"),
    [(True, ["1", "2", "5", "6", "7", "8"]), (False, ["1", "2", "5", "6", "7", "8", "9"])],
)
def test_only_versions_nothing_needs_are_deleted(window: bool, expected: list[str]) -> None:
    doomed = versions_to_delete(
        VERSIONS,
        [alias("live", "12"), alias("stable", "3", **{"4": 0.2})],
        keep=2,
        target_version="10",
        previous_version="9",
        rollback_window_open=window,
    )

    assert doomed == expected  # 3, 4 aliased; 11, 12 the newest; 10 the target; 9 while the window is open


def test_latest_is_never_deleted_and_keep_counts_published_versions() -> None:
    assert (
        versions_to_delete(
            ["$LATEST", "1"],
            [],
            keep=1,
            target_version="1",
            previous_version=None,
            rollback_window_open=False,
        )
        == []
    )


def test_the_window_is_open_for_recent_minutes_after_the_deployment_started() -> None:
    now = datetime(2026, 1, 1, 12, tzinfo=UTC)

    assert window_open(30, now - timedelta(minutes=29), now)
    assert not window_open(30, now - timedelta(minutes=31), now)
    assert not window_open(0, now, now)
    assert window_open(30, None, now)  # unknown start: assume the rollback can still act


class Versions:
    """A function's versions in memory (the VersionsPort)."""

    def __init__(self, count: int) -> None:
        self.kept = [str(n) for n in range(1, count + 1)]

    def versions(self, _function_name: str) -> list[str]:
        return ["$LATEST", *self.kept]

    def aliases(self, _function_name: str) -> list[AliasState]:
        return [alias("live", self.kept[-1])]

    def delete_version(self, _function_name: str, version: str) -> None:
        self.kept.remove(version)

    def version_arn(self, function_name: str, version: str) -> str:
        return f"arn:aws:lambda:us-east-1:123456789012:function:{function_name}:{version}"


TARGET = DeploymentTarget(function_name="orders", alias="live", current_version="99", target_version="100")


def test_at_most_50_versions_go_per_deployment_the_rest_at_the_next() -> None:
    functions = Versions(100)

    first = prune_versions(functions, TARGET, Prune(keep=1), rollback_window_open=False)

    assert len(functions.kept) == 50 and first.message.endswith(
        "49 more at the next deployment (at most 50 each, as time allows)"
    )
    prune_versions(functions, TARGET, Prune(keep=1), rollback_window_open=False)
    assert functions.kept == ["100"]


def test_pruning_stops_before_the_invocation_runs_out_of_time() -> None:
    functions = Versions(10)

    with deadline_at(time.monotonic() + 1):  # less than the margin the record needs
        result = prune_versions(functions, TARGET, Prune(keep=1), rollback_window_open=False)

    assert result.result == "passed" and len(functions.kept) == 10
    assert "9 more at the next deployment" in result.message
