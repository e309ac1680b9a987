"""Put a release back: stop its deployment (CodeDeploy's auto-rollback), then move the alias back to
the previous version at once, routing cleared.

One flow for the alarm rollback (``deployguard.alarm_rollback``) and ``deployguard rollback``:
:func:`plan_restore` says where the alias goes; :func:`stop_and_restore` does it and returns what
was done, as outcome-record actions, for the caller to record, report or retry.

UpdateAlias carries the RevisionId of the alias as it was read: an alias changed since then (by a
person, or by CodeDeploy) is never overwritten.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from deployguard.errors import AwsCallError, DeployGuardError
from deployguard.outcome import Action, ActionKind
from deployguard.records import datarecord
from deployguard.snapshot import AliasState

if TYPE_CHECKING:
    from deployguard.deployment import Deployment
    from deployguard.ports import CodeDeployPort, LambdaPort

PRECONDITION_FAILED = "PreconditionFailedException"


@datarecord
class Restore:
    """Where the alias goes back to, and which version it leaves."""

    version: str
    leaving: str


def plan_restore(state: AliasState, deployment: Deployment | None) -> Restore | None:
    """Mid-shift (routing weights): back to the alias's main version. At 100% on the release's
    target: back to the AppSpec's CurrentVersion. Anything else: the alias is not on the release."""
    if state.additional_version_weights:
        return Restore(
            version=state.function_version, leaving=",".join(sorted(state.additional_version_weights))
        )
    if deployment is not None and state.function_version == deployment.target.target_version:
        return Restore(version=deployment.target.current_version, leaving=deployment.target.target_version)
    return None


@datarecord
class Aim:
    """The alias as read, where it goes back to, and (``left_alone``) why it must not move."""

    state: AliasState
    plan: Restore | None
    deployment: Deployment | None = None  # the release the plan was read from, if any
    left_alone: str | None = None


@datarecord
class Restoration:
    """What :func:`stop_and_restore` did, action by action."""

    actions: list[Action]
    aim: Aim | None  # None when the alias could not be read
    stop_error: DeployGuardError | None = None
    restore_error: DeployGuardError | None = None
    alias_changed: bool = False  # the alias changed after it was read: left as it is

    @property
    def error(self) -> DeployGuardError | None:
        """The first step that failed (an alias changed meanwhile is an answer, not an error)."""
        return self.stop_error or self.restore_error

    @property
    def restored(self) -> bool:
        return any(a.kind is ActionKind.ALIAS_RESTORED and a.ok for a in self.actions)


def stop_and_restore(
    codedeploy: CodeDeployPort, functions: LambdaPort, *, deployment_id: str | None, aim: Callable[[], Aim]
) -> Restoration:
    """Stop ``deployment_id`` (if given) with auto-rollback, then put the alias back as ``aim`` says.

    ``aim`` runs after the stop: the alarm rollback reads the alias only then (the freshest
    RevisionId); ``deployguard rollback`` hands back the alias it showed and the operator confirmed.
    """
    actions: list[Action] = []
    stop_error: DeployGuardError | None = None
    if deployment_id is not None:
        try:
            stopped = codedeploy.stop(deployment_id, auto_rollback=True)
            kind = ActionKind.DEPLOYMENT_STOPPED if stopped else ActionKind.NO_ACTION
            actions.append(Action(kind=kind, detail="with auto-rollback" if stopped else "already completed"))
        except DeployGuardError as exc:  # NOTE: still restore the alias: that is what stops the harm
            actions.append(Action(kind=ActionKind.DEPLOYMENT_STOPPED, ok=False, detail=str(exc)))
            stop_error = exc
    target: Aim | None = None
    try:
        target = aim()
        if target.plan is None or target.left_alone is not None:
            left = target.left_alone or f"{target.state.alias} is not on the release: left alone"
            actions.append(Action(kind=ActionKind.NO_ACTION, detail=left))
            return Restoration(actions=actions, aim=target, stop_error=stop_error)
        functions.point_alias(target.state, target.plan.version)
    except AwsCallError as exc:
        if target is None or exc.error_code != PRECONDITION_FAILED:
            actions.append(Action(kind=ActionKind.ALIAS_RESTORED, ok=False, detail=str(exc)))
            return Restoration(actions=actions, aim=target, stop_error=stop_error, restore_error=exc)
        state = target.state
        detail = (
            f"{state.alias} changed after it was read (RevisionId {state.revision_id}): not overwritten; "
            "check it with `deployguard status`"
        )
        actions.append(Action(kind=ActionKind.ALIAS_RESTORED, ok=False, detail=detail))
        return Restoration(actions=actions, aim=target, stop_error=stop_error, alias_changed=True)
    except DeployGuardError as exc:  # e.g. the AppSpec does not name the versions
        actions.append(Action(kind=ActionKind.ALIAS_RESTORED, ok=False, detail=str(exc)))
        return Restoration(actions=actions, aim=target, stop_error=stop_error, restore_error=exc)
    detail = f"{target.state.alias} -> version {target.plan.version}, routing cleared"
    actions.append(Action(kind=ActionKind.ALIAS_RESTORED, detail=detail))
    return Restoration(actions=actions, aim=target, stop_error=stop_error)
