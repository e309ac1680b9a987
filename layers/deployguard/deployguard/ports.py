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

    def resolve(self, deployment_id: str) -> Deployment:
        """The deployment with its function and versions (ResolutionError when it names none)."""
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


class LambdaPort(Protocol):
    """Lambda: a version's configuration, synthetic invocations, and the alias."""

    def snapshot(self, function_name: str, version: str) -> FunctionSnapshot: ...

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
    def load(self, stage: Stage) -> Policy: ...
