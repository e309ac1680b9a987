"""Composition root: settings → adapters → domain, per hook. Handlers call one function here.

Adapters (and their boto3 clients) are built on the first invocation, never at import, and are
reused while the execution environment is warm.

NOTE: only what the pre-traffic hook needs is imported at module level. The post-traffic, bake
and rollback wiring imports its modules inside the function that uses them, so a pre-traffic cold
start does not pay for alarms, metrics, Step Functions and rollback code it never runs (and vice
versa the others pay only for their own). ``TYPE_CHECKING`` imports keep the annotations exact.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from functools import cache
from typing import TYPE_CHECKING, Any, Protocol

from deployguard.aws import clients
from deployguard.aws.codedeploy import CodeDeploy
from deployguard.aws.lambda_ import Lambda
from deployguard.aws.policy_store import PolicyStore
from deployguard.aws.references import ReferenceResolver
from deployguard.errors import DeployGuardError, EventError
from deployguard.hook import Evaluate, Evaluation, HookName, HookRun, guard_lifecycle_event
from deployguard.observability import logger
from deployguard.outcome import OutcomeRecord, Role
from deployguard.pre_traffic import PreTrafficPorts, evaluate_pre_traffic
from deployguard.settings import HookSettings, SettingsError

if TYPE_CHECKING:
    from deployguard.aws.cloudwatch import Alarms, Metrics
    from deployguard.aws.sns import Sns
    from deployguard.aws.stepfunctions import BakeWorkflow
    from deployguard.policy import Policy
    from deployguard.post_traffic import WatchPorts

DEFAULT_RESERVE_SECONDS = 10.0


class LambdaContext(Protocol):
    def get_remaining_time_in_millis(self) -> int: ...


@cache
def codedeploy() -> CodeDeploy:
    return CodeDeploy(clients.codedeploy())


@cache
def lambda_adapter() -> Lambda:
    return Lambda(clients.lambda_(), clients.lambda_invoke())


@cache
def references() -> ReferenceResolver:
    return ReferenceResolver(clients.ssm(), clients.secretsmanager)


@cache
def policy_store(parameter: str, max_age: int) -> PolicyStore:
    return PolicyStore(clients.ssm(), parameter, max_age=max_age)


@cache
def alert_publisher(topic_arn: str) -> Sns:
    from deployguard.aws.sns import Sns

    return Sns(clients.sns, topic_arn)


@cache
def alarms() -> Alarms:
    from deployguard.aws.cloudwatch import Alarms

    return Alarms(clients.cloudwatch(), clients.tagging)


@cache
def metrics() -> Metrics:
    from deployguard.aws.cloudwatch import Metrics

    return Metrics(clients.cloudwatch())


@cache
def bake_workflow(state_machine_arn: str) -> BakeWorkflow:
    from deployguard.aws.stepfunctions import BakeWorkflow

    return BakeWorkflow(clients.stepfunctions(), state_machine_arn)


def alerts_for(settings: HookSettings | None) -> Sns | None:
    """The alert publisher when DEPLOYGUARD_ALERT_TOPIC_ARN is set; None (no alerts) otherwise."""
    if settings is None or settings.alert_topic_arn is None:
        return None
    return alert_publisher(settings.alert_topic_arn)


def reset() -> None:
    """Forget every warm adapter and client (tests call this after starting moto)."""
    for cached in (
        codedeploy,
        lambda_adapter,
        references,
        policy_store,
        alert_publisher,
        alarms,
        metrics,
        bake_workflow,
    ):
        cached.cache_clear()
    clients.reset()


def today() -> datetime:
    return datetime.now(UTC)


def now() -> datetime:
    """The clock of the post-traffic hook, the bake step and the rollback (tests replace it)."""
    return datetime.now(UTC)


def run_hook(
    event: Mapping[str, Any],
    context: LambdaContext,
    environ: Mapping[str, str],
    *,
    hook: HookName,
    role: Role,
    evaluate: Callable[[HookRun, HookSettings], Evaluation],
) -> dict[str, Any]:
    """Run one lifecycle hook; invalid settings still end in a reported Failed naming the variable."""
    try:
        settings: HookSettings | None = HookSettings.from_environ(environ)
    except SettingsError as exc:
        settings, error = None, exc

    def checks(run: HookRun) -> Evaluation:
        if settings is None:
            raise error
        return evaluate(run, settings)

    record = guard_lifecycle_event(
        event,
        hook=hook,
        role=role,
        stage=settings.stage.value if settings else environ.get("DEPLOYGUARD_STAGE"),
        codedeploy=codedeploy,
        evaluate=checks,
        remaining_ms=context.get_remaining_time_in_millis,
        reserve_seconds=settings.time_reserve_seconds if settings else DEFAULT_RESERVE_SECONDS,
        alerts=alerts_for(settings),
    )
    return summary(record)


def summary(record: OutcomeRecord) -> dict[str, Any]:
    return {
        "decision": record.decision.value if record.decision else None,
        "reason": record.reason,
        "deployment_id": record.deployment_id,
    }


def _policy_loader(settings: HookSettings) -> Callable[[], Policy]:
    """The stage's policy, loaded when first needed; its parser starts building now, in the
    background, while the invocation's first AWS calls wait on the network."""
    store = policy_store(settings.policy_parameter, settings.policy_cache_seconds)
    store.prepare()
    return lambda: store.load(settings.stage)


def _pre_traffic(run: HookRun, settings: HookSettings) -> Evaluation:
    ports = PreTrafficPorts(
        codedeploy=codedeploy(),
        lambda_=lambda_adapter(),
        references=references(),
        load_policy=_policy_loader(settings),
    )
    return evaluate_pre_traffic(run, ports, stage=settings.stage, today=today().date())


def pre_traffic_hook(
    event: Mapping[str, Any], context: LambdaContext, environ: Mapping[str, str]
) -> dict[str, Any]:
    return run_hook(
        event, context, environ, hook="BeforeAllowTraffic", role=Role.PRE_TRAFFIC, evaluate=_pre_traffic
    )


def _watch() -> WatchPorts:
    from deployguard.post_traffic import WatchPorts

    return WatchPorts(alarms=alarms(), metrics=metrics())


def _post_traffic(run: HookRun, settings: HookSettings) -> Evaluation:
    from deployguard.post_traffic import PostTrafficPorts, evaluate_post_traffic

    arn = settings.bake_state_machine_arn
    ports = PostTrafficPorts(
        codedeploy=codedeploy(),
        lambda_=lambda_adapter(),
        watch=_watch(),
        load_policy=_policy_loader(settings),
        bake=bake_workflow(arn) if arn else None,
    )
    return evaluate_post_traffic(run, ports, stage=settings.stage, clock=now)


def post_traffic_hook(
    event: Mapping[str, Any], context: LambdaContext, environ: Mapping[str, str]
) -> dict[str, Any]:
    return run_hook(
        event, context, environ, hook="AfterAllowTraffic", role=Role.POST_TRAFFIC, evaluate=_post_traffic
    )


def bake_step(event: Mapping[str, Any], context: LambdaContext, environ: Mapping[str, str]) -> dict[str, Any]:
    """One poll of the bake workflow; invalid settings still end in a reported Failed."""
    from deployguard.post_traffic import BakePorts, run_bake_step

    try:
        settings = HookSettings.from_environ(environ)
    except SettingsError as exc:
        logger.error("invalid settings", extra={"error": str(exc)})
        state = event.get("state") if event.get("action") == "fail" else event
        failing = {"action": "fail", "state": {**dict(state or {}), "error": {"Error": str(exc)}}}
        ports = BakePorts(codedeploy=codedeploy(), watch=_watch(), load_policy=_no_policy(exc))
        return run_bake_step(failing, ports, clock=now)
    ports = BakePorts(codedeploy=codedeploy(), watch=_watch(), load_policy=_policy_loader(settings))
    return run_bake_step(event, ports, clock=now, alerts=alerts_for(settings))


def _no_policy(error: SettingsError) -> Callable[[], Policy]:
    def load() -> Policy:
        raise error

    return load


def alarm_rollback(
    event: Mapping[str, Any], context: LambdaContext, environ: Mapping[str, str]
) -> dict[str, Any]:
    """Roll back what a guarded alarm concerns. Errors are logged and raised (Lambda retries)."""
    from deployguard.rollback import RollbackError, RollbackPorts, handle_alarm_event

    try:
        settings = HookSettings.from_environ(environ)
    except SettingsError as exc:
        logger.error("invalid settings", extra={"error": str(exc)})
        raise
    ports = RollbackPorts(
        codedeploy=codedeploy(),
        lambda_=lambda_adapter(),
        alarms=alarms(),
        load_policy=_policy_loader(settings),
    )
    try:
        records = handle_alarm_event(
            event, ports, stage=settings.stage.value, clock=now, alerts=alerts_for(settings)
        )
    except EventError as exc:  # NOTE: not raised: a retry of a malformed event cannot succeed
        logger.error("malformed alarm event", extra={"error": str(exc)})
        return {"rolled_back": [], "records": [], "error": str(exc)}
    except RollbackError:
        raise  # logged with its outcome records
    except DeployGuardError as exc:  # the policy or the deployment could not be read: Lambda retries
        logger.error("alarm rollback failed", extra={"error_type": type(exc).__name__, "error": str(exc)})
        raise
    return {
        "rolled_back": [r.function_name for r in records if r.rolled_back],
        "records": [summary(r) for r in records],
    }


__all__ = [
    "Evaluate",
    "alarm_rollback",
    "bake_step",
    "post_traffic_hook",
    "pre_traffic_hook",
    "reset",
    "run_hook",
]
