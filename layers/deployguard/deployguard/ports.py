"""The ports: what DeployGuard's domain needs from AWS, declared by the domain as Protocols.

The adapters in ``deployguard.aws`` implement them structurally (no base class) and import the
domain, never the reverse; ``deployguard.entrypoints`` is the one place that builds adapters and
hands them to the use cases. A test fake is any class with these methods.

NOTE: imported at every cold start (the pre-traffic hook's use case names its ports here), so the
domain types in the signatures are imported only for the type checker: ``deployguard.policy``,
``deployguard.alarms`` and ``deployguard.version_health`` need pydantic.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

from deployguard.deployment import IN_FLIGHT_STATUSES

if TYPE_CHECKING:
    from deployguard.alarms import AlarmState
    from deployguard.deployment import Deployment
    from deployguard.findings import Decision
    from deployguard.lookup import DeploymentRecord
    from deployguard.notify import Alert
    from deployguard.policy import Policy
    from deployguard.secrets import Reference
    from deployguard.snapshot import AliasState, FunctionSnapshot, InvocationResult
    from deployguard.stages import Stage
    from deployguard.version_health import MetricQuery


class HookStatusPort(Protocol):
    """The two CodeDeploy calls of the hook runner: is the hook already answered, and answer it."""

    def lifecycle_event_status(self, deployment_id: str, lifecycle_event: str) -> str | None:
        """Status of one lifecycle event (BeforeAllowTraffic…) of the deployment; None if unknown."""
        ...

    def report(self, deployment_id: str, lifecycle_event_hook_execution_id: str, decision: Decision) -> bool:
        """Report the hook's status; False when CodeDeploy already had one for it."""
        ...


class CodeDeployPort(HookStatusPort, Protocol):
    """CodeDeploy: resolve a deployment, read its status, stop it, list deployments."""

    def resolve(self, deployment_id: str, *, appspec: str | None = None) -> Deployment:
        """The deployment with its function and versions (ResolutionError when it names none);
        ``appspec``: content it may hold, used only if CodeDeploy's hash of its revision matches."""
        ...

    def stop(self, deployment_id: str, *, auto_rollback: bool = True) -> bool:
        """Stop the deployment; False when it had already completed."""
        ...

    def deployments(
        self,
        *,
        application_name: str | None = None,
        deployment_group_name: str | None = None,
        statuses: Sequence[str] = IN_FLIGHT_STATUSES,
        created_after: datetime | None = None,
        created_before: datetime | None = None,
    ) -> list[str]:
        """Ids of the deployments of one group (both names) or of the account, with ``statuses``."""
        ...


class DeploymentRecordsPort(Protocol):
    """The deployments the pre-traffic hook saw start, one per function and alias (hints: the alarm
    rollback verifies each with CodeDeploy before it acts)."""

    def record(self, entry: DeploymentRecord) -> bool:
        """Keep ``entry``; False when a newer deployment of the function and alias is kept."""
        ...

    def latest(self, function_name: str) -> list[DeploymentRecord]:
        """The records of ``function_name`` (a plain name), one per alias."""
        ...


class LambdaPort(Protocol):
    """Lambda: a version's configuration, synthetic invocations, and the alias."""

    def snapshot(self, function_name: str, version: str, *, destinations: bool = True) -> FunctionSnapshot:
        """The version's configuration; its on-failure destination only with ``destinations``
        (one more call, GetFunctionEventInvokeConfig, made only when a rule needs it)."""
        ...

    def environment(self, function_name: str, version: str) -> dict[str, str]:
        """The version's environment variables only (what a redactor is built from)."""
        ...

    def invoke(
        self, function_name: str, qualifier: str, payload: bytes, *, deployment_id: str | None = None
    ) -> InvocationResult:
        """A synchronous invocation, marked synthetic for the application."""
        ...

    def alias(self, function_name: str, alias: str) -> AliasState: ...

    def point_alias(self, state: AliasState, version: str) -> AliasState:
        """Put the alias on ``version``, routing cleared, only if it is still as ``state`` read it."""
        ...

    # issue 12: tags()
    def tags(self, function_name: str) -> Mapping[str, str]:
        """The function's tags (ListTags on its unqualified ARN): ``deployguard:app`` names its
        application policy, ``deployguard:stage`` the DeployGuard stage that may guard it."""
        ...


class VersionsPort(Protocol):
    """A function's published versions and aliases, deleting a version (version pruning), and a
    version's ARN."""

    def versions(self, function_name: str) -> list[str]:
        """Every version of the function, $LATEST included (ListVersionsByFunction, all pages)."""
        ...

    def aliases(self, function_name: str) -> list[AliasState]:
        """Every alias of the function with its routing (ListAliases, all pages)."""
        ...

    def delete_version(self, function_name: str, version: str) -> None:
        """DeleteFunction of exactly ``version`` (a Qualifier: never the function itself)."""
        ...

    def version_arn(self, function_name: str, version: str) -> str:
        """The qualified ARN of ``version`` (what a custom check is told after traffic shifts)."""
        ...


class ReferencePort(Protocol):
    """Does the SSM parameter or secret a variable points at exist? (Never reads a value.)"""

    def exists(self, reference: Reference) -> bool: ...


class AlarmSource(Protocol):
    """CloudWatch alarms with their states, by name, by prefix, and by tag."""

    def describe(self, names: Sequence[str]) -> list[AlarmState]: ...
    def describe_prefix(self, prefix: str) -> list[AlarmState]: ...
    def names_tagged(self, tags: Mapping[str, str]) -> list[str]: ...


class AlarmTags(Protocol):
    """One alarm's tags (the alarm rollback decides tag selectors with them)."""

    def tags(self, alarm_arn: str) -> dict[str, str]: ...


class AlarmLookup(AlarmTags, Protocol):
    """One alarm as CloudWatch has it now, and its tags: the alarm rollback re-reads the alarm an
    event names before it trusts the event."""

    def alarm(self, name: str) -> AlarmState | None:
        """The alarm (metric or composite) named ``name``; None when there is none."""
        ...


class MetricSource(Protocol):
    """Sums of metric series over a time range, by query id."""

    def sums(
        self, queries: Sequence[MetricQuery], start: datetime, end: datetime, *, period: int = 60
    ) -> dict[str, float]: ...


class AlertPublisher(Protocol):
    """Where the alert of a failed or rolled-back deployment goes (an SNS topic)."""

    def publish(self, alert: Alert) -> None: ...


class BakeStarter(Protocol):
    """Starts the bake workflow (a Step Functions execution); its name keeps a retry idempotent."""

    def start(self, name: str, payload: Mapping[str, Any]) -> str: ...


class PolicySource(Protocol):
    """The stage's guard policy. ``prepare`` may start work ahead (building the parser) so that
    ``load`` is quicker when the policy is needed; ``load`` raises PolicyError."""

    def prepare(self) -> None: ...
    def load(self, stage: Stage, application: str | None, function_name: str | None = None) -> Policy:
        """The effective policy of ``application``'s functions: the stage's baseline defaults with
        the application's document merged over them, floors checked (with ``function_name``: only
        the entry guarding it, which is all a hook judges). None (the function has no
        ``deployguard:app`` tag) or an application with no document: a policy that names no
        function and says why (``Policy.unnamed_reason``); the baseline's ``unguarded`` decides."""
        ...

    def load_all(self, stage: Stage) -> Policy:
        """Every application's entries of the stage in one policy (the alarm rollback)."""
        ...
