"""Put a release back: stop its deployment (CodeDeploy's auto-rollback), then move the alias back to
the previous version at once, routing cleared.

One flow for the alarm rollback (``deployguard.alarm_rollback``) and ``deployguard rollback``: the
caller reads the alias and decides where it goes (:class:`Aim`: :func:`plan_restore` for the CLI,
:func:`alias_shape` for the alarm rollback, which acts only while the alias still has the shape
the deployment gave it); :func:`stop_and_restore` does it and returns what was done, as
outcome-record actions, for the caller to record, report or retry.

UpdateAlias carries the RevisionId of the alias as it was read: an alias changed since then (by a
person, or by CodeDeploy) is never overwritten. When the change put the alias exactly where the
restore would have (a duplicate alarm's rollback got there first), that is no action, not a failure.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from enum import StrEnum
from typing import TYPE_CHECKING

from deployguard.errors import AwsCallError, DeployGuardError
from deployguard.outcome import Action, ActionKind
from deployguard.records import datarecord
from deployguard.redaction import version_redactor
from deployguard.secrets import Redactor
from deployguard.snapshot import AliasState

if TYPE_CHECKING:
    from deployguard.appspec import DeploymentTarget
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


class Shape(StrEnum):
    """How an alias stands relative to one deployment (CurrentVersion → TargetVersion)."""

    SHIFTING = "shifting"  # CurrentVersion with weight on TargetVersion: the deployment's canary/linear
    SHIFTED = "shifted"  # TargetVersion alone: the deployment's end state
    RESTORED = "restored"  # CurrentVersion alone: before the shift, or already put back
    OTHER = "other"  # anything else: someone changed it since (not this deployment's shape)


def alias_shape(state: AliasState, target: DeploymentTarget) -> Shape:
    """The deployment's shapes are exactly what CodeDeploy gives the alias while it shifts: the
    current version with the target in the routing config, then the target alone."""
    routing = set(state.additional_version_weights)
    if state.function_version == target.current_version:
        if routing == {target.target_version}:
            return Shape.SHIFTING
        if not routing:
            return Shape.RESTORED
    if state.function_version == target.target_version and not routing:
        return Shape.SHIFTED
    return Shape.OTHER


def describe_alias(state: AliasState) -> str:
    """``version 1 + 20% on version 3`` / ``version 2 alone``, for reasons and alerts."""
    if not state.additional_version_weights:
        return f"version {state.function_version} alone"
    shares = ", ".join(
        f"{weight:.0%} on version {version}"
        for version, weight in sorted(state.additional_version_weights.items())
    )
    return f"version {state.function_version} + {shares}"


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


Step = Callable[[str], None]  # called before each step that changes something; raises to stop there


def stop_and_restore(
    codedeploy: CodeDeployPort,
    functions: LambdaPort,
    *,
    deployment_id: str | None,
    aim: Aim,
    actions: list[Action] | None = None,
    before: Step | None = None,
) -> Restoration:
    """Stop ``deployment_id`` (if given) with auto-rollback, then put the alias back as ``aim`` says.

    ``aim`` was read before anything changed: the alarm rollback decides from it whether to act at
    all; ``deployguard rollback`` hands back the alias it showed and the operator confirmed. Each
    action is appended to ``actions`` as it happens (the caller's list, so that what was done
    survives an exception). ``before(step)`` may raise a ``DeployGuardError`` (a deadline) to stop
    before a change: it is recorded as that step failing.
    """
    actions = [] if actions is None else actions
    stop_error: DeployGuardError | None = None
    if deployment_id is not None:
        try:
            if before is not None:
                before("StopDeployment")
            stopped = codedeploy.stop(deployment_id, auto_rollback=True)
            kind = ActionKind.DEPLOYMENT_STOPPED if stopped else ActionKind.NO_ACTION
            actions.append(Action(kind=kind, detail="with auto-rollback" if stopped else "already completed"))
        except AwsCallError as exc:  # NOTE: still restore the alias: that is what stops the harm
            actions.append(Action(kind=ActionKind.DEPLOYMENT_STOPPED, ok=False, detail=str(exc)))
            stop_error = exc
        except DeployGuardError as exc:  # not attempted (a deadline): change nothing more
            actions.append(Action(kind=ActionKind.DEPLOYMENT_STOPPED, ok=False, detail=str(exc)))
            return Restoration(actions=actions, aim=aim, restore_error=exc)
    if aim.plan is None or aim.left_alone is not None:
        left = aim.left_alone or f"{aim.state.alias} is not on the release: left alone"
        actions.append(Action(kind=ActionKind.NO_ACTION, detail=left))
        return Restoration(actions=actions, aim=aim, stop_error=stop_error)
    try:
        if before is not None:
            before("UpdateAlias")
        functions.point_alias(aim.state, aim.plan.version)
    except AwsCallError as exc:
        if exc.error_code != PRECONDITION_FAILED:
            actions.append(Action(kind=ActionKind.ALIAS_RESTORED, ok=False, detail=str(exc)))
            return Restoration(actions=actions, aim=aim, stop_error=stop_error, restore_error=exc)
        return _changed_meanwhile(functions, aim, aim.plan, actions, stop_error)
    except DeployGuardError as exc:
        actions.append(Action(kind=ActionKind.ALIAS_RESTORED, ok=False, detail=str(exc)))
        return Restoration(actions=actions, aim=aim, stop_error=stop_error, restore_error=exc)
    detail = f"{aim.state.alias} -> version {aim.plan.version}, routing cleared"
    actions.append(Action(kind=ActionKind.ALIAS_RESTORED, detail=detail))
    return Restoration(actions=actions, aim=aim, stop_error=stop_error)


def _changed_meanwhile(
    functions: LambdaPort,
    aim: Aim,
    plan: Restore,
    actions: list[Action],
    stop_error: DeployGuardError | None,
) -> Restoration:
    """UpdateAlias found a newer RevisionId: read the alias again. Already where the restore puts it
    (a duplicate alarm's rollback, or CodeDeploy's, got there first): no action. Else someone's
    newer change stands."""
    state = aim.state
    try:
        now: AliasState | None = functions.alias(state.function_name, state.alias)
    except DeployGuardError:
        now = None
    if now is not None and now.function_version == plan.version and not now.additional_version_weights:
        detail = (
            f"{state.alias} is already on version {plan.version} alone (changed after it was read, to "
            "where the rollback puts it): nothing to overwrite"
        )
        actions.append(Action(kind=ActionKind.NO_ACTION, detail=detail))
        return Restoration(actions=actions, aim=aim, stop_error=stop_error)
    seen = f", now on {describe_alias(now)}" if now is not None else ""
    detail = (
        f"{state.alias} changed after it was read (RevisionId {state.revision_id}{seen}): not overwritten; "
        "check it with `deployguard status`"
    )
    actions.append(Action(kind=ActionKind.ALIAS_RESTORED, ok=False, detail=detail))
    return Restoration(actions=actions, aim=aim, stop_error=stop_error, alias_changed=True)


def redactor_for(
    functions: LambdaPort, function_name: str, versions: Iterable[str | None]
) -> tuple[Redactor, str | None]:
    """The invocation's redactor from the versions' environments, or — when they cannot be read —
    the formats-only redactor and a note saying so (for the record)."""
    try:
        return version_redactor(functions, function_name, versions), None
    except DeployGuardError as exc:
        note = (
            f"the versions' environments could not be read ({type(exc).__name__}: "
            f"{getattr(exc, 'error_code', exc.code)}): text redacted by key formats only"
        )
        return Redactor(), note
