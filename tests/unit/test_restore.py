"""Stop, then restore: the one flow behind the alarm rollback and ``deployguard rollback``, with
stand-alone fakes of the CodeDeploy and Lambda ports."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime

from deployguard.appspec import DeploymentTarget
from deployguard.deployment import IN_FLIGHT_STATUSES, Deployment
from deployguard.errors import AwsCallError
from deployguard.findings import Decision
from deployguard.outcome import ActionKind
from deployguard.restore import PRECONDITION_FAILED, Aim, Restore, plan_restore, stop_and_restore
from deployguard.snapshot import AliasState, FunctionSnapshot, InvocationResult

MID_CANARY = AliasState(
    function_name="orders",
    alias="live",
    function_version="1",
    additional_version_weights={"2": 0.1},
    revision_id="r-1",
)
RELEASE = Deployment(
    deployment_id="d-1",
    application_name="orders-app",
    deployment_group_name="orders-group",
    status="InProgress",
    create_time=None,
    target=DeploymentTarget(function_name="orders", alias="live", current_version="1", target_version="2"),
)


@dataclass
class FakeCodeDeploy:
    """The CodeDeploy port; only ``stop`` matters here."""

    stop_error: AwsCallError | None = None
    stopped: list[str] = field(default_factory=list)
    calls: list[str] = field(default_factory=list)

    def stop(self, deployment_id: str, *, auto_rollback: bool = True) -> bool:
        self.calls.append("StopDeployment")
        if self.stop_error is not None:
            raise self.stop_error
        self.stopped.append(deployment_id)
        return True

    def resolve(self, deployment_id: str) -> Deployment:
        raise AssertionError("not called")

    def status(self, deployment_id: str) -> str:
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
class FakeLambda:
    """The Lambda port: an alias that moves only if nobody changed it (RevisionId)."""

    alias_state: AliasState = field(default_factory=lambda: MID_CANARY)
    calls: list[str] = field(default_factory=list)

    def alias(self, function_name: str, alias: str) -> AliasState:
        self.calls.append("GetAlias")
        return self.alias_state

    def point_alias(self, state: AliasState, version: str) -> AliasState:
        self.calls.append("UpdateAlias")
        if state.revision_id != self.alias_state.revision_id:
            raise AwsCallError("UpdateAlias", PRECONDITION_FAILED, "revision changed")
        self.alias_state = replace(
            self.alias_state, function_version=version, additional_version_weights={}, revision_id="r-next"
        )
        return self.alias_state

    def snapshot(self, function_name: str, version: str) -> FunctionSnapshot:
        raise AssertionError("not called")

    def environment(self, function_name: str, version: str) -> dict[str, str]:
        raise AssertionError("not called")

    def invoke(
        self, function_name: str, qualifier: str, payload: bytes, *, deployment_id: str | None = None
    ) -> InvocationResult:
        raise AssertionError("not called")


def read_after_the_stop(functions: FakeLambda) -> Aim:
    state = functions.alias("orders", "live")
    return Aim(state=state, plan=plan_restore(state, RELEASE))


def test_mid_shift_the_alias_goes_back_to_its_main_version() -> None:
    assert plan_restore(MID_CANARY, None) == Restore(version="1", leaving="2")


def test_at_100_percent_on_the_release_it_goes_back_to_the_appspecs_current_version() -> None:
    on_target = replace(MID_CANARY, function_version="2", additional_version_weights={})

    assert plan_restore(on_target, RELEASE) == Restore(version="1", leaving="2")
    assert plan_restore(replace(on_target, function_version="3"), RELEASE) is None


def test_it_stops_first_then_reads_and_restores_the_alias() -> None:
    codedeploy, functions = FakeCodeDeploy(), FakeLambda()

    done = stop_and_restore(
        codedeploy, functions, deployment_id="d-1", aim=lambda: read_after_the_stop(functions)
    )

    assert [*codedeploy.calls, *functions.calls] == ["StopDeployment", "GetAlias", "UpdateAlias"]
    assert [(a.kind, a.ok) for a in done.actions] == [
        (ActionKind.DEPLOYMENT_STOPPED, True),
        (ActionKind.ALIAS_RESTORED, True),
    ]
    assert done.restored and done.error is None
    assert (
        functions.alias_state.function_version == "1" and not functions.alias_state.additional_version_weights
    )


def test_a_failed_stop_still_restores_the_alias_and_is_reported() -> None:
    failure = AwsCallError("StopDeployment", "ThrottlingException", "Rate exceeded")
    codedeploy, functions = FakeCodeDeploy(stop_error=failure), FakeLambda()

    done = stop_and_restore(
        codedeploy, functions, deployment_id="d-1", aim=lambda: read_after_the_stop(functions)
    )

    assert done.restored
    assert done.stop_error is failure and done.error is failure
    assert [(a.kind, a.ok) for a in done.actions] == [
        (ActionKind.DEPLOYMENT_STOPPED, False),
        (ActionKind.ALIAS_RESTORED, True),
    ]


def test_an_alias_changed_since_it_was_read_is_not_overwritten() -> None:
    functions = FakeLambda()
    shown = functions.alias("orders", "live")
    functions.alias_state = replace(functions.alias_state, function_version="2", revision_id="r-someone")

    done = stop_and_restore(
        FakeCodeDeploy(),
        functions,
        deployment_id=None,
        aim=lambda: Aim(state=shown, plan=Restore(version="1", leaving="2")),
    )

    assert done.alias_changed and done.error is None and not done.restored
    assert functions.alias_state.function_version == "2"
    (action,) = done.actions
    assert (action.kind, action.ok) == (ActionKind.ALIAS_RESTORED, False)
    assert "changed after it was read (RevisionId r-1): not overwritten" in action.detail


def test_an_alias_left_alone_is_not_touched() -> None:
    functions = FakeLambda()

    done = stop_and_restore(
        FakeCodeDeploy(),
        functions,
        deployment_id=None,
        aim=lambda: Aim(state=MID_CANARY, plan=None, left_alone="live is on version 3: left alone"),
    )

    assert functions.calls == []
    assert [(a.kind, a.detail) for a in done.actions] == [
        (ActionKind.NO_ACTION, "live is on version 3: left alone")
    ]


def test_an_alias_that_cannot_be_read_is_a_restore_error_after_the_stop() -> None:
    codedeploy = FakeCodeDeploy()
    failure = AwsCallError("GetAlias", "AccessDeniedException", "no")

    def unreadable() -> Aim:
        raise failure

    done = stop_and_restore(codedeploy, FakeLambda(), deployment_id="d-1", aim=unreadable)

    assert codedeploy.stopped == ["d-1"]
    assert done.restore_error is failure and done.aim is None
    assert [(a.kind, a.ok) for a in done.actions] == [
        (ActionKind.DEPLOYMENT_STOPPED, True),
        (ActionKind.ALIAS_RESTORED, False),
    ]
