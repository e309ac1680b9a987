"""Stop, then restore: the one flow behind the alarm rollback and ``deployguard rollback``, with
stand-alone fakes of the CodeDeploy and Lambda ports."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime

import pytest

from deployguard.appspec import DeploymentTarget
from deployguard.deployment import IN_FLIGHT_STATUSES, Deployment
from deployguard.errors import AwsCallError, DeployGuardError
from deployguard.findings import Decision
from deployguard.outcome import Action, ActionKind
from deployguard.restore import (
    PRECONDITION_FAILED,
    Aim,
    Restore,
    Shape,
    alias_shape,
    plan_restore,
    redactor_for,
    stop_and_restore,
)
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

    def resolve(self, deployment_id: str, *, appspec: str | None = None) -> Deployment:
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
    moved_first: AliasState | None = None  # someone else's change, made just before our UpdateAlias
    environments: dict[str, dict[str, str]] = field(default_factory=dict)

    def alias(self, function_name: str, alias: str) -> AliasState:
        self.calls.append("GetAlias")
        return self.alias_state

    def point_alias(self, state: AliasState, version: str) -> AliasState:
        self.calls.append("UpdateAlias")
        if self.moved_first is not None:
            self.alias_state, self.moved_first = self.moved_first, None
        if state.revision_id != self.alias_state.revision_id:
            raise AwsCallError("UpdateAlias", PRECONDITION_FAILED, "revision changed")
        self.alias_state = replace(
            self.alias_state, function_version=version, additional_version_weights={}, revision_id="r-next"
        )
        return self.alias_state

    def snapshot(self, function_name: str, version: str, *, destinations: bool = True) -> FunctionSnapshot:
        raise AssertionError("not called")

    def environment(self, function_name: str, version: str) -> dict[str, str]:
        self.calls.append("GetFunctionConfiguration")
        if version not in self.environments:
            raise AwsCallError("GetFunctionConfiguration", "AccessDeniedException", "not allowed")
        return self.environments[version]

    def invoke(
        self, function_name: str, qualifier: str, payload: bytes, *, deployment_id: str | None = None
    ) -> InvocationResult:
        raise AssertionError("not called")

    def tags(self, function_name: str) -> dict[str, str]:
        raise AssertionError("not called")


def read_first(functions: FakeLambda) -> Aim:
    state = functions.alias("orders", "live")
    return Aim(state=state, plan=plan_restore(state, RELEASE))


def test_mid_shift_the_alias_goes_back_to_its_main_version() -> None:
    assert plan_restore(MID_CANARY, None) == Restore(version="1", leaving="2")


def test_at_100_percent_on_the_release_it_goes_back_to_the_appspecs_current_version() -> None:
    on_target = replace(MID_CANARY, function_version="2", additional_version_weights={})

    assert plan_restore(on_target, RELEASE) == Restore(version="1", leaving="2")
    assert plan_restore(replace(on_target, function_version="3"), RELEASE) is None


def test_it_reads_the_alias_then_stops_then_restores_it() -> None:
    codedeploy, functions = FakeCodeDeploy(), FakeLambda()
    aim = read_first(functions)

    done = stop_and_restore(codedeploy, functions, deployment_id="d-1", aim=aim)

    assert [*functions.calls[:1], *codedeploy.calls, *functions.calls[1:]] == [
        "GetAlias",
        "StopDeployment",
        "UpdateAlias",
    ]
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

    done = stop_and_restore(codedeploy, functions, deployment_id="d-1", aim=read_first(functions))

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
        aim=Aim(state=shown, plan=Restore(version="1", leaving="2")),
    )

    assert done.alias_changed and done.error is None and not done.restored
    assert functions.alias_state.function_version == "2"
    (action,) = done.actions
    assert (action.kind, action.ok) == (ActionKind.ALIAS_RESTORED, False)
    assert (
        "changed after it was read (RevisionId r-1, now on version 2 + 10% on version 2): not overwritten"
        in action.detail
    )


def test_an_alias_left_alone_is_not_touched() -> None:
    functions = FakeLambda()

    done = stop_and_restore(
        FakeCodeDeploy(),
        functions,
        deployment_id=None,
        aim=Aim(state=MID_CANARY, plan=None, left_alone="live is on version 3: left alone"),
    )

    assert functions.calls == []
    assert [(a.kind, a.detail) for a in done.actions] == [
        (ActionKind.NO_ACTION, "live is on version 3: left alone")
    ]


def test_an_alias_already_where_the_restore_puts_it_is_no_action_not_a_failure() -> None:
    # GIVEN a duplicate alarm's rollback moves live to 1 alone between our read and our UpdateAlias
    functions = FakeLambda()
    aim = read_first(functions)
    functions.moved_first = replace(MID_CANARY, additional_version_weights={}, revision_id="r-other")

    done = stop_and_restore(FakeCodeDeploy(), functions, deployment_id="d-1", aim=aim)

    # THEN the precondition failure is an answer: nothing to overwrite, nothing failed
    assert done.error is None and not done.alias_changed and not done.restored
    assert [(a.kind, a.ok) for a in done.actions] == [
        (ActionKind.DEPLOYMENT_STOPPED, True),
        (ActionKind.NO_ACTION, True),
    ]
    assert "already on version 1 alone" in done.actions[-1].detail
    assert functions.calls == ["GetAlias", "UpdateAlias", "GetAlias"]


def test_a_step_refused_by_the_deadline_changes_nothing_more_and_is_recorded() -> None:
    codedeploy, functions = FakeCodeDeploy(), FakeLambda()
    aim = read_first(functions)
    late = DeployGuardError("the rollback ran out of time before UpdateAlias")
    actions: list[Action] = []

    def before(step: str) -> None:
        if step == "UpdateAlias":
            raise late

    done = stop_and_restore(
        codedeploy, functions, deployment_id="d-1", aim=aim, actions=actions, before=before
    )

    assert codedeploy.stopped == ["d-1"] and "UpdateAlias" not in functions.calls
    assert done.restore_error is late and done.actions is actions
    assert [(a.kind, a.ok) for a in actions] == [
        (ActionKind.DEPLOYMENT_STOPPED, True),
        (ActionKind.ALIAS_RESTORED, False),
    ]


TARGET = RELEASE.target


@pytest.mark.parametrize(
    ("version", "weights", "shape"),
    [
        ("1", {"2": 0.1}, Shape.SHIFTING),
        ("2", {}, Shape.SHIFTED),
        ("1", {}, Shape.RESTORED),
        ("1", {"3": 0.2}, Shape.OTHER),  # an operator's hotfix canary
        ("3", {}, Shape.OTHER),
        ("2", {"3": 0.1}, Shape.OTHER),  # a later deployment's canary
        ("3", {"2": 0.1}, Shape.OTHER),
    ],
)
def test_the_alias_has_the_deployments_shape_only_as_codedeploy_shifts_it(
    version: str, weights: dict[str, float], shape: Shape
) -> None:
    state = replace(MID_CANARY, function_version=version, additional_version_weights=weights)

    assert alias_shape(state, TARGET) is shape


def test_the_redactor_knows_both_versions_or_says_it_knows_formats_only() -> None:
    secret = "Tr0ub4dor-and-3-more-words"
    functions = FakeLambda(environments={"1": {"DB_PASSWORD": secret}, "2": {"STAGE": "prod"}})

    redactor, note = redactor_for(functions, "orders", ["2", "1"])

    assert note is None and secret not in redactor(f"boom: {secret}")
    redactor, note = redactor_for(FakeLambda(), "orders", ["2", "1"])
    assert note is not None and "key formats only" in note and "AccessDenied" in note
