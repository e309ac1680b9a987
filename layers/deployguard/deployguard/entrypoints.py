"""Composition root: settings → adapters → use case, per function. Handlers call one function here.

The only module outside ``deployguard.aws`` that imports the adapters: it builds them and hands
them to the use cases as their ports. Adapters (and their boto3 clients) are built on the first
invocation, never at import, and are reused while the execution environment is warm.

Invalid settings end the same way in every function: one failed evaluation naming the variables
(:func:`deployguard.hook.failed_evaluation`), reported Failed by the hooks and the bake step, and
recorded (then raised, so Lambda retries) by the alarm rollback, which has no status to report.

NOTE: only what the pre-traffic hook needs is imported at module level. The post-traffic, bake
and rollback wiring imports its modules inside the function that uses them, so a pre-traffic cold
start does not pay for alarms, metrics, Step Functions and rollback code it never runs (and vice
versa the others pay only for their own). ``TYPE_CHECKING`` imports keep the annotations exact.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from functools import cache
from typing import TYPE_CHECKING, Any, Protocol

from deployguard.aws import clients
from deployguard.aws.codedeploy import CodeDeploy
from deployguard.aws.deployment_records import DeploymentRecords
from deployguard.aws.lambda_functions import ROLLBACK_TAGS_MAX_AGE, Lambda
from deployguard.aws.policy_store import PolicyStore
from deployguard.aws.references import ReferenceResolver
from deployguard.deadlines import deadline_at
from deployguard.errors import DeployGuardError, EventError
from deployguard.hook import (
    REPORT_MARGIN_SECONDS,
    Evaluate,
    Evaluation,
    HookName,
    HookRun,
    failed_evaluation,
    guard_lifecycle_event,
)
from deployguard.observability import logger
from deployguard.outcome import OutcomeRecord, Role
from deployguard.pre_traffic import PreTrafficPorts, evaluate_pre_traffic
from deployguard.settings import HookSettings, SettingsError

if TYPE_CHECKING:
    from deployguard.aws.cloudwatch import Alarms, Metrics
    from deployguard.aws.sns import Sns
    from deployguard.aws.stepfunctions import BakeWorkflow
    from deployguard.watch import WatchPorts

DEFAULT_RESERVE_SECONDS = 10.0
STAGE_VARIABLE = "DEPLOYGUARD_STAGE"


class LambdaContext(Protocol):
    def get_remaining_time_in_millis(self) -> int: ...


# --- adapters, built once per execution environment -----------------------------------------------


@cache
def codedeploy_adapter() -> CodeDeploy:
    return CodeDeploy(clients.codedeploy_client())


# The account of the function running, from its context's ARN (remember_account): the account of the
# functions it judges, whose ARNs the Lambda adapter builds for ListTags without a call to STS.
_running_account: list[str] = []


def remember_account(context: LambdaContext) -> None:
    """Note the running function's account (its ARN's fifth field), once per environment."""
    parts = str(getattr(context, "invoked_function_arn", "")).split(":")
    if not _running_account and len(parts) > 4 and parts[4].isdigit():
        _running_account.append(parts[4])


def _account() -> str | None:
    return _running_account[0] if _running_account else None


@cache
def lambda_adapter() -> Lambda:
    return Lambda(
        clients.lambda_client(),
        clients.lambda_invoke_client(),
        sts_client=clients.sts_client,
        account=_account,
    )


@cache
def rollback_lambda_adapter() -> Lambda:
    """The alarm rollback's: a function's tags (its scope) remembered for a minute, as its deployment
    records are (an alarm storm reads the same functions again and again)."""
    return Lambda(
        clients.lambda_client(),
        sts_client=clients.sts_client,
        account=_account,
        tags_max_age=ROLLBACK_TAGS_MAX_AGE,
    )


@cache
def references_adapter() -> ReferenceResolver:
    return ReferenceResolver(clients.ssm_client(), clients.secretsmanager_client)


@cache
def policy_store(bucket: str, max_age: int) -> PolicyStore:
    return PolicyStore(clients.s3_client, bucket, max_age=max_age)


@cache
def deployment_records(table_name: str) -> DeploymentRecords:
    return DeploymentRecords(clients.dynamodb_client, table_name)


def records_for(settings: HookSettings) -> DeploymentRecords | None:
    """The deployment records when DEPLOYGUARD_DEPLOYMENT_TABLE is set; None (none kept) otherwise."""
    return deployment_records(settings.deployment_table) if settings.deployment_table else None


@cache
def alert_publisher(topic_arn: str) -> Sns:
    from deployguard.aws.sns import Sns

    return Sns(clients.sns_client, topic_arn)


@cache
def alarms_adapter() -> Alarms:
    from deployguard.aws.cloudwatch import Alarms

    return Alarms(clients.cloudwatch_client(), clients.tagging_client)


@cache
def metrics_adapter() -> Metrics:
    from deployguard.aws.cloudwatch import Metrics

    return Metrics(clients.cloudwatch_client())


@cache
def bake_workflow(state_machine_arn: str) -> BakeWorkflow:
    from deployguard.aws.stepfunctions import BakeWorkflow

    return BakeWorkflow(clients.stepfunctions_client(), state_machine_arn)


def alerts_for(settings: HookSettings | None) -> Sns | None:
    """The alert publisher when DEPLOYGUARD_ALERT_TOPIC_ARN is set; None (no alerts) otherwise."""
    if settings is None or settings.alert_topic_arn is None:
        return None
    return alert_publisher(settings.alert_topic_arn)


def reset() -> None:
    """Forget every warm adapter and client (tests call this after starting moto)."""
    for cached in (
        codedeploy_adapter,
        lambda_adapter,
        rollback_lambda_adapter,
        references_adapter,
        policy_store,
        deployment_records,
        alert_publisher,
        alarms_adapter,
        metrics_adapter,
        bake_workflow,
    ):
        cached.cache_clear()
    _running_account.clear()
    clients.reset()


def now() -> datetime:
    """The clock of every guard function (tests replace it)."""
    return datetime.now(UTC)


def settings_from(environ: Mapping[str, str]) -> HookSettings | SettingsError:
    """The function's settings, or the error naming every invalid variable (logged here). Each
    entry point turns the error into :func:`deployguard.hook.failed_evaluation`."""
    try:
        return HookSettings.from_environ(environ)
    except SettingsError as exc:
        logger.error("invalid settings", extra={"error": str(exc)})
        return exc


def _policy(settings: HookSettings) -> PolicyStore:
    """The stage's policy source; its parser starts building now, in the background, while the
    invocation's first AWS calls wait on the network."""
    store = policy_store(settings.policy_bucket, settings.policy_cache_seconds)
    store.prepare()
    return store


def summary(record: OutcomeRecord) -> dict[str, Any]:
    return {
        "decision": record.decision.value if record.decision else None,
        "reason": record.reason,
        "deployment_id": record.deployment_id,
    }


# --- the lifecycle hooks ----------------------------------------------------------------------------


def run_hook(
    event: Mapping[str, Any],
    context: LambdaContext,
    environ: Mapping[str, str],
    *,
    hook: HookName,
    role: Role,
    checks: Callable[[HookSettings], Evaluate],
) -> dict[str, Any]:
    """Run one lifecycle hook with the checks ``checks`` wires for the settings; invalid settings
    still end in a reported Failed naming the variable."""
    remember_account(context)
    settings = settings_from(environ)
    if isinstance(settings, SettingsError):
        evaluate = _failing(failed_evaluation(settings))
        stage, reserve_seconds, alerts = environ.get(STAGE_VARIABLE), DEFAULT_RESERVE_SECONDS, None
    else:
        evaluate = checks(settings)
        stage, reserve_seconds = settings.stage.value, settings.time_reserve_seconds
        alerts = alerts_for(settings)
    record = guard_lifecycle_event(
        event,
        hook=hook,
        role=role,
        stage=stage,
        codedeploy=codedeploy_adapter(),
        evaluate=evaluate,
        remaining_ms=context.get_remaining_time_in_millis,
        reserve_seconds=reserve_seconds,
        alerts=alerts,
    )
    return summary(record)


def _failing(failure: Evaluation) -> Evaluate:
    def evaluate(_run: HookRun) -> Evaluation:
        return failure

    return evaluate


def _pre_traffic(settings: HookSettings) -> Evaluate:
    ports = PreTrafficPorts(
        codedeploy=codedeploy_adapter(),
        functions=lambda_adapter(),
        references=references_adapter(),
        policy=_policy(settings),
        records=records_for(settings),
    )
    return lambda run: evaluate_pre_traffic(run, ports, stage=settings.stage, today=now().date())


def pre_traffic_hook(
    event: Mapping[str, Any], context: LambdaContext, environ: Mapping[str, str]
) -> dict[str, Any]:
    return run_hook(
        event, context, environ, hook="BeforeAllowTraffic", role=Role.PRE_TRAFFIC, checks=_pre_traffic
    )


def _watch() -> WatchPorts:
    from deployguard.watch import WatchPorts

    return WatchPorts(alarms=alarms_adapter(), metrics=metrics_adapter())


def _post_traffic(settings: HookSettings) -> Evaluate:
    from deployguard.post_traffic import PostTrafficPorts, evaluate_post_traffic

    arn = settings.bake_state_machine_arn
    ports = PostTrafficPorts(
        codedeploy=codedeploy_adapter(),
        functions=lambda_adapter(),
        watch=_watch(),
        policy=_policy(settings),
        bake=bake_workflow(arn) if arn else None,
        versions=lambda_adapter(),
    )
    return lambda run: evaluate_post_traffic(run, ports, stage=settings.stage, clock=now)


def post_traffic_hook(
    event: Mapping[str, Any], context: LambdaContext, environ: Mapping[str, str]
) -> dict[str, Any]:
    return run_hook(
        event, context, environ, hook="AfterAllowTraffic", role=Role.POST_TRAFFIC, checks=_post_traffic
    )


# --- the bake workflow's step and the alarm rollback ------------------------------------------------


def bake_step(event: Mapping[str, Any], context: LambdaContext, environ: Mapping[str, str]) -> dict[str, Any]:
    """One poll of the bake workflow; invalid settings still end in a reported Failed."""
    from deployguard.bake_step import BakePorts, fail_bake_step, run_bake_step

    remember_account(context)
    settings = settings_from(environ)
    if isinstance(settings, SettingsError):
        return fail_bake_step(
            event,
            codedeploy_adapter(),
            lambda_adapter(),
            failed_evaluation(settings).checks,
            stage=environ.get(STAGE_VARIABLE),
        )
    ports = BakePorts(
        codedeploy=codedeploy_adapter(),
        functions=lambda_adapter(),
        watch=_watch(),
        policy=_policy(settings),
        versions=lambda_adapter(),
    )
    # NOTE: the poll's calls end by the remaining time minus the reserve, the report by the last second
    remaining = context.get_remaining_time_in_millis() / 1000
    with deadline_at(time.monotonic() + remaining - REPORT_MARGIN_SECONDS):
        return run_bake_step(
            event,
            ports,
            stage=settings.stage,
            clock=now,
            alerts=alerts_for(settings),
            deadline=time.monotonic() + remaining - settings.time_reserve_seconds,
        )


def alarm_rollback(
    event: Mapping[str, Any], context: LambdaContext, environ: Mapping[str, str]
) -> dict[str, Any]:
    """Roll back what a guarded alarm concerns, within the deadline (the remaining time minus
    DEPLOYGUARD_TIME_RESERVE_SECONDS). Every path writes outcome records; a failure is raised after
    them (Lambda retries), a malformed event is not (a retry cannot fix it)."""
    from deployguard.alarm_rollback import RollbackError, RollbackPorts, handle_alarm_event, record_unrun
    from deployguard.observability import ERROR_MAX
    from deployguard.secrets import Redactor

    remember_account(context)
    settings = settings_from(environ)
    if isinstance(settings, SettingsError):
        record_unrun(failed_evaluation(settings), stage=environ.get(STAGE_VARIABLE))
        raise settings
    ports = RollbackPorts(
        codedeploy=codedeploy_adapter(),
        functions=rollback_lambda_adapter(),
        alarms=alarms_adapter(),
        policy=_policy(settings),
        records=records_for(settings),
    )
    reserve = settings.time_reserve_seconds
    # NOTE: the deadline's context variable reaches the rollback's worker only if it is submitted
    # with deployguard.deadlines.in_context; without it, retries are bounded by their attempts only
    deadline = time.monotonic() + context.get_remaining_time_in_millis() / 1000 - reserve
    try:
        with deadline_at(deadline):
            records = handle_alarm_event(
                event,
                ports,
                stage=settings.stage,
                clock=now,
                alerts=alerts_for(settings),
                seconds_left=lambda: context.get_remaining_time_in_millis() / 1000 - reserve,
            )
    except EventError as exc:  # NOTE: not raised: a retry of a malformed event cannot succeed
        error = Redactor().clip(str(exc), ERROR_MAX)  # the event's own text: key formats at least
        logger.error("malformed alarm event", extra={"error": error})
        return {"rolled_back": [], "records": [], "error": error}
    except RollbackError:
        raise  # logged with its outcome records
    except DeployGuardError as exc:
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
