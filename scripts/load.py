"""Load test: a fleet of guarded deployments at once, and an alarm storm, inside AWS's API quotas.

On moto with AWS's published rate quotas enforced (``deployguard_cli.localaws.quotas``: throttled
calls answer as AWS does), with the real handlers (functions/*/app.py):

1. **pre-traffic burst**: N deployments (one function and deployment group each, the staging
   policy's config rules and 2 smoke cases) whose BeforeAllowTraffic hooks all start within 1 s;
   as each hook reports Succeeded, CodeDeploy shifts its traffic (all at once: one UpdateAlias,
   retried when throttled), inside the phase: CodeDeploy's calls draw on the same Lambda quota as
   the hooks' (reported apart, as AWS's own);
2. **post-traffic burst**: the same N deployments at AfterAllowTraffic within 1 s (a smoke case on
   the alias, 10 alarms and per-version health each, no bake);
3. **alarm storm**: M alarm events (cycling over the N x 10 alarms, each in ALARM) reach the alarm
   rollback, with at most 5 concurrent executions (its reserved concurrency,
   ``AlarmRollbackConcurrency``), the functions' deployment records table deployed as the template
   deploys it and the policy naming no deployment group (as the shipped ones; ``--named-groups``
   names them).

The world (functions, versions, aliases, groups, alarms, deployments, the policy) is built before
the bursts, outside the quotas: CloudFormation and the pipeline make those calls minutes before any
hook runs, at their own pace; they are counted and printed (``set-up``), not throttled.

The guarded functions are real: a Python ``app.handler`` that returns its event, run by the embedded
Lambda runner (``deployguard_cli.localaws.lambda_runner``) in a fresh interpreter per invocation, as
a cold start on Lambda is. (Fresh mode: the runner's pool keeps a forked server for 8 versions
(``POOL_SIZE``), and the fleet invokes 100, so it would start a server for nearly every invocation:
measured slower, 100 versions invoked twice by 20 threads took 7.1 s and 12.7 CPU-seconds against
6.1 s and 11.1 in fresh mode, and evicting a busy server once failed an invocation.) What
binds each phase in any account is printed ("the quota that binds": its answered calls at its
published rate), and each metered quota's answered calls by operation.

Every invocation runs in an *execution environment* of its own (its own boto3 clients and adapters,
reused while warm, as Lambda does): environments are made when all are busy and reused when free,
so the peak concurrent executions is the number made. Hooks get a 60 s timeout (the dev stage's).
What is modelled of warm state: everything DeployGuard remembers between invocations lives in its
adapters (the deployment records for 60 s, the alarm rollback's function tags for 60 s when it
reads them, published versions' environments, AppSpecs, the policy), and the adapters are built per
environment, so the storm's 5 environments each start cold and warm up on their own, as Lambda's
do. Not modelled: Lambda recycling an idle environment, or more than the reserved 5 (so a cache is
never lost).

Prints, per phase: spurious failures (a good release reported Failed, a hook or rollback that
raised, a function not rolled back; goal 0 %), p50/p99 duration, DeployGuard's AWS calls per
deployment or per alarm event (every request that reached the fake, retries included) and how many
were throttled, AWS's own calls in the phase, the answered calls per quota and operation, peak
concurrent executions; and the failure rate against the figure measured before retries were
bounded by the hook's deadline (73 % of 100 hooks failed within 1 s).

Run from the repository root: .venv/bin/python -m scripts.load [--deployments N] [--alarm-events M]
(``make load``). ``tests/integration/test_load.py`` runs a reduced fleet through :func:`run`.
"""

from __future__ import annotations

import argparse
import contextvars
import copy
import hashlib
import os
import random
import statistics
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cache
from typing import Any

import boto3
from botocore.exceptions import ClientError
from tests.support.aws import (
    FAKE_CREDENTIALS,
    REAL_AWS_VARIABLES,
    local_aws,
    publish_policy,
)
from tests.support.handlers import load_handler
from tests.support.outcomes import captured_output
from tests.support.release import GOOD_ENV, HOOK_ENV, POLICY, POLICY_BUCKET, alarm_event

GOAL_SECONDS = 180  # the issue's: make load in 3 minutes
BEFORE_FAILED = 0.73  # 100 pre-traffic hooks within 1 s, 3 attempts per call (the measurement)
# The last figures before the storm's rollback took its scope from the deployment record and read the
# versions' environments only for a record quoting an AWS error (docs/benchmarks.md, 100 deployments,
# 1,000 events; the fleet's functions then echoed without running, CodeDeploy's shift outside the quotas)
BEFORE_SECONDS = 253
BEFORE_STORM_LAMBDA = 2649  # the storm's answered Lambda control-plane calls
BEFORE_STORM_SECONDS = 179
HOOK_TIMEOUT_MS = 60_000  # the dev stage's PreTrafficTimeout / PostTrafficTimeout
ROLLBACK_TIMEOUT_MS = 60_000
ROLLBACK_CONCURRENCY = 5  # template.yaml AlarmRollbackConcurrency default
ALARMS_PER_FUNCTION = 10
APPLICATION = "fleet-app"
TABLE_VARIABLE = "DEPLOYGUARD_DEPLOYMENT_TABLE"
PREFIX = "fleet-"


def environment() -> None:
    os.environ.update({**FAKE_CREDENTIALS, **HOOK_ENV})
    for key in REAL_AWS_VARIABLES:
        os.environ.pop(key, None)


# --- execution environments: one set of warm clients and adapters per concurrent execution -------
_environment: contextvars.ContextVar[dict[Any, Any]] = contextvars.ContextVar("load_environment")
_shared: dict[Any, Any] = {}


def _per_environment(built: Callable[..., Any]) -> Callable[..., Any]:
    """``built`` (a functools.cache'd builder) cached per execution environment instead of per process."""
    make = built.__wrapped__  # type: ignore[attr-defined]

    def cached(*args: Any) -> Any:
        cache = _environment.get(_shared)
        key = (make, args)
        if key not in cache:
            cache[key] = make(*args)
        return cache[key]

    cached.cache_clear = lambda: None  # type: ignore[attr-defined]
    return cached


@contextmanager
def execution_environments() -> Iterator[None]:
    """DeployGuard's clients and adapters cached per environment (the one the running invocation has)."""
    from deployguard import entrypoints
    from deployguard.aws import clients

    builders = [name for name, value in vars(entrypoints).items() if hasattr(value, "cache_info")]
    saved = {name: getattr(entrypoints, name) for name in builders}
    saved_client = clients._client
    for name in builders:
        setattr(entrypoints, name, _per_environment(saved[name]))
    clients._client = _per_environment(saved_client)  # type: ignore[assignment]
    try:
        yield
    finally:
        for name, builder in saved.items():
            setattr(entrypoints, name, builder)
        clients._client = saved_client


@dataclass
class Fleet:
    """A function's execution environments: a free one is reused, a new one made when all are busy."""

    limit: int | None = None  # reserved concurrency: invocations wait for a free environment
    free: list[dict[Any, Any]] = field(default_factory=list)
    made: int = 0
    busy: int = 0
    peak: int = 0
    _lock: threading.Condition = field(default_factory=threading.Condition)

    @contextmanager
    def environment(self) -> Iterator[None]:
        with self._lock:
            while self.limit is not None and self.busy >= self.limit:
                self._lock.wait()
            if self.free:
                env = self.free.pop()
            else:
                env, self.made = {}, self.made + 1
            self.busy += 1
            self.peak = max(self.peak, self.busy)
        token = _environment.set(env)
        try:
            yield
        finally:
            _environment.reset(token)
            with self._lock:
                self.busy -= 1
                self.free.append(env)
                self._lock.notify()


class Context:
    """A Lambda context whose remaining time runs down from ``timeout_ms`` from now."""

    def __init__(self, timeout_ms: int) -> None:
        self._end = time.monotonic() + timeout_ms / 1000
        self.function_name = "CodeDeployHook_deployguard-load"
        self.memory_limit_in_mb = 512
        self.invoked_function_arn = f"arn:aws:lambda:us-east-1:123456789012:function:{self.function_name}"
        self.aws_request_id = "00000000-0000-0000-0000-000000000000"

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._end - time.monotonic()) * 1000))


# --- the world ----------------------------------------------------------------------------------------
@cache
def client(service: str) -> Any:
    """One boto3 client per service for building the world (each new client costs ~30 ms)."""
    return boto3.client(service)  # type: ignore[call-overload]


def function_name(index: int) -> str:
    return f"{PREFIX}{index:03d}"


def alarm_name(index: int, number: int) -> str:
    return f"{function_name(index)}-errors-{number}"


def fleet_policy(deployments: int, *, named_groups: bool = False) -> dict[str, Any]:
    """The staging policy with an entry per ``fleet-NNN`` function: the integration tier's config rules
    and smoke cases, the function's 10 alarms (by its prefix: one DescribeAlarms page), per-version
    health, no bake.

    Every environment reads the policy and caches it while warm."""
    policy = copy.deepcopy(POLICY)
    template = policy["functions"].pop("orders")
    template["smoke"] = ECHO_SMOKE
    for index in range(deployments):
        name = function_name(index)
        entry = copy.deepcopy(template)
        entry["alarms"] = {"select": {"prefixes": [f"{name}-"]}, "pre_existing": "report"}
        entry["version_health"] = {"min_invocations": 10, "inconclusive": "pass"}
        entry["bake"] = {"minutes": 0, "poll_seconds": 60}
        if named_groups:  # the rollback lists the group's deployments instead of looking them up
            entry["deployment_group"] = {"application": APPLICATION, "name": f"{name}-group"}
        policy["functions"][name] = entry
    return policy


# The fleet's code: every smoke case gets its payload back (a real invocation, in a process of its own).
ECHO_HANDLER = "def handler(event, context):\n    return event\n"
# NOTE: the Python of this interpreter (3.12 in the dev venv, as the Lambda runtime): the runner runs it
# without looking for another one.
FLEET_RUNTIME = f"python{sys.version_info.major}.{sys.version_info.minor}"
ECHO_SMOKE: list[dict[str, Any]] = [
    {
        "name": "quote",
        "payload": {"total": 12, "currency": "EUR"},
        "expect": [{"path": "$.total", "equals": 12}, {"path": "$.currency", "equals": "EUR"}],
        "max_latency_ms": 5000,
    },
    {"name": "stage", "payload": {"stage": "staging"}, "expect": [{"path": "$.stage", "equals": "staging"}]},
]


def echo_function(name: str) -> None:
    """Function ``name`` (its handler returns its event) with versions 1 and 2 configured for staging,
    alias live on 1."""
    from tests.support.aws import POLICY_APPLICATION, ROLE_POLICY, code_zip

    from deployguard.stages import APP_TAG, STAGE_TAG

    role = client("iam").create_role(RoleName=f"{name}-role", AssumeRolePolicyDocument=ROLE_POLICY)
    lam = client("lambda")
    lam.create_function(
        FunctionName=name,
        Runtime=FLEET_RUNTIME,
        Role=role["Role"]["Arn"],
        Handler="app.handler",
        Code={"ZipFile": code_zip(ECHO_HANDLER)},
        Timeout=10,
        Environment={"Variables": dict(GOOD_ENV)},
        Tags={STAGE_TAG: "staging", APP_TAG: POLICY_APPLICATION},  # the staging guard's scope, and its policy
    )
    lam.publish_version(FunctionName=name)
    lam.update_function_configuration(FunctionName=name, Description="release 2")
    lam.publish_version(FunctionName=name)
    lam.create_alias(FunctionName=name, Name="live", FunctionVersion="1")


def build(deployments: int, *, named_groups: bool = False) -> dict[str, str]:
    """Functions ``fleet-NNN`` (versions 1 and 2, alias live on 1), one deployment group each, their
    alarms, the policy; one deployment each, waiting for BeforeAllowTraffic. Execution ids by deployment."""
    from deployguard.appspec import DeploymentTarget, render_appspec
    from deployguard_cli.localaws import moto_codedeploy

    client("ssm").put_parameter(Name="/orders/staging/db-password", Value="not-read", Type="SecureString")
    codedeploy, cloudwatch = client("codedeploy"), client("cloudwatch")
    codedeploy.create_application(applicationName=APPLICATION, computePlatform="Lambda")
    executions: dict[str, str] = {}
    for index in range(deployments):
        name = function_name(index)
        echo_function(name)
        deployment_group_in(APPLICATION, f"{name}-group")
        dimensions = {"FunctionName": name, "Resource": f"{name}:live", "ExecutedVersion": "2"}
        for number in range(ALARMS_PER_FUNCTION):
            cloudwatch.put_metric_alarm(  # as tests.support.aws.put_metric_alarm, with one client
                AlarmName=alarm_name(index, number),
                Namespace="AWS/Lambda",
                MetricName="Errors",
                Statistic="Sum",
                Period=60,
                EvaluationPeriods=1,
                Threshold=0,
                ComparisonOperator="GreaterThanThreshold",
                TreatMissingData="notBreaching",
                Dimensions=[{"Name": k, "Value": v} for k, v in dimensions.items()],
            )
        target = DeploymentTarget(function_name=name, alias="live", current_version="1", target_version="2")
        content = render_appspec(target)
        deployment_id = codedeploy.create_deployment(
            applicationName=APPLICATION,
            deploymentGroupName=f"{name}-group",
            revision={
                "revisionType": "AppSpecContent",
                "appSpecContent": {
                    "content": content,
                    "sha256": hashlib.sha256(content.encode()).hexdigest(),
                },
            },
        )["deploymentId"]
        executions[deployment_id] = moto_codedeploy.start_lifecycle_event(deployment_id, "BeforeAllowTraffic")
    # NOTE: after the functions: publishing tags each function the policy names with its application
    publish_policy(POLICY_BUCKET, fleet_policy(deployments, named_groups=named_groups))
    return executions


def deployment_group_in(application: str, group: str) -> None:
    from tests.support.aws import CODEDEPLOY_ROLE

    client("codedeploy").create_deployment_group(
        applicationName=application,
        deploymentGroupName=group,
        serviceRoleArn=CODEDEPLOY_ROLE,
        deploymentConfigName="CodeDeployDefault.LambdaCanary10Percent5Minutes",
        deploymentStyle={"deploymentType": "BLUE_GREEN", "deploymentOption": "WITH_TRAFFIC_CONTROL"},
    )


@cache
def codedeploy_lambda() -> Any:
    """The Lambda client CodeDeploy's traffic shifting stands for (its retries: :func:`shift_traffic`)."""
    from botocore.config import Config

    return boto3.client("lambda", config=Config(retries={"mode": "standard", "max_attempts": 1}))


SHIFT_ATTEMPTS = 30
SHIFT_MAX_BACKOFF = 5.0  # seconds


def shift_traffic(deployment_id: str, function: str) -> None:
    """CodeDeploy shifts the deployment's traffic all at once (alias on 2): its UpdateAlias draws on
    the Lambda control-plane quota as the hooks' calls do, so it runs inside the phase.

    AWS does not say how CodeDeploy retries a throttled call. Assumed: as DeployGuard's own clients
    (``deployguard.aws.retries``: exponential backoff with full jitter, at most 5 s), here up to 30
    attempts. NOTE: by hand, not botocore's: the 100 shifts share one client, and botocore's retry
    modes keep per-client state that such sharing distorts: adaptive mode's rate limiter fell to a
    fraction of the quota (the burst took 79 s where its floor is 27 s), standard mode's retry quota
    ran dry and gave up on shifts after a few retries."""
    from deployguard_cli.localaws import moto_codedeploy

    moto_codedeploy.set_lifecycle_event_status(deployment_id, "AllowTraffic", "InProgress")
    for attempt in range(1, SHIFT_ATTEMPTS + 1):
        try:
            codedeploy_lambda().update_alias(
                FunctionName=function,
                Name="live",
                FunctionVersion="2",
                RoutingConfig={"AdditionalVersionWeights": {}},
            )
            break
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "TooManyRequestsException" or attempt == SHIFT_ATTEMPTS:
                raise
            time.sleep(random.uniform(0, min(2.0**attempt, SHIFT_MAX_BACKOFF)))  # jitter, not secrecy
    moto_codedeploy.set_target_version_weight(deployment_id, 1.0)
    moto_codedeploy.set_lifecycle_event_status(deployment_id, "AllowTraffic", "Succeeded")


def to_after_allow_traffic(shifted: list[str]) -> dict[str, str]:
    """AfterAllowTraffic invoked for every deployment whose traffic shifted; execution ids by deployment."""
    from deployguard_cli.localaws import moto_codedeploy

    return {
        deployment_id: moto_codedeploy.start_lifecycle_event(deployment_id, "AfterAllowTraffic")
        for deployment_id in shifted
    }


# --- phases ---------------------------------------------------------------------------------------------
@dataclass
class Phase:
    name: str
    unit: str  # what calls are counted per: "deployment" or "alarm event"
    runs: int
    failures: list[str]
    durations_ms: list[float]
    calls: Counter[tuple[str, str]]
    throttled: Counter[tuple[str, str]]
    peak: int
    seconds: float
    not_deployguards: frozenset[tuple[str, str]] = frozenset()  # calls AWS itself makes in the phase

    @property
    def failure_rate(self) -> float:
        return len(self.failures) / self.runs if self.runs else 0.0

    def report(self) -> str:
        ordered = sorted(self.durations_ms)
        p50 = statistics.median(ordered) if ordered else 0.0
        p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))] if ordered else 0.0
        mine = Counter({key: n for key, n in self.calls.items() if key not in self.not_deployguards})
        calls, throttled = sum(mine.values()), sum(n for k, n in self.throttled.items() if k in mine)
        busiest = ", ".join(f"{op} {n}" for (_svc, op), n in mine.most_common(4))
        lines = [
            f"{self.name}: {self.runs} in {self.seconds:.1f} s",
            f"  spurious failures: {len(self.failures)}/{self.runs} ({self.failure_rate:.1%})",
            f"  duration: p50 {p50 / 1000:.2f} s, p99 {p99 / 1000:.2f} s",
            f"  DeployGuard's AWS calls per {self.unit}: {calls / max(self.runs, 1):.1f} "
            f"({calls} in all, {throttled} throttled; most: {busiest})",
        ]
        if self.not_deployguards:
            theirs = ", ".join(
                f"{op} {self.calls[svc, op]} ({self.throttled[svc, op]} throttled)"
                for svc, op in sorted(self.not_deployguards)
            )
            lines.append(f"  AWS's own calls in the phase (CodeDeploy shifting traffic): {theirs}")
        lines += [f"  {line}" for line in self.by_quota()]
        lines += [
            f"  peak concurrent executions: {self.peak}",
            f"  the quota that binds: {self.binding_quota()}",
        ]
        lines += [f"  failed: {why}" for why in self.failures[:5]]
        return "\n".join(lines)

    def by_quota(self) -> list[str]:
        """Per metered quota (heaviest first, at its rate): each operation's answered calls, and
        those AWS itself made marked."""
        from deployguard_cli.localaws.quotas import Quotas

        quotas = Quotas()
        families: dict[str, tuple[float, Counter[str]]] = {}
        for (service, operation), count in self.calls.items():
            family = quotas.family(service, operation)
            if family is None:
                continue
            answered = count - self.throttled[service, operation]
            label = f"{operation} (AWS's)" if (service, operation) in self.not_deployguards else operation
            families.setdefault(family.name, (family.rate, Counter()))[1][label] += answered
        ordered = sorted(families.items(), key=lambda item: -sum(item[1][1].values()) / item[1][0])
        return [
            f"{name} ({rate:g}/s), answered: {sum(ops.values())} = "
            + ", ".join(f"{op} {n}" for op, n in ops.most_common())
            for name, (rate, ops) in ordered
        ]

    def binding_quota(self) -> str:
        """The API family whose answered calls need the longest at its published rate: the least time
        the phase can take in an account, however it is run."""
        binding = self._binding()
        if binding is None:
            return "none"
        name, calls, rate = binding
        return f"{name}, {calls} calls at {rate:g}/s = {calls / rate:.0f} s at least"

    def answered(self, family_name: str) -> int:
        """The phase's answered calls of one quota family (AWS's own included)."""
        from deployguard_cli.localaws.quotas import Quotas

        quotas = Quotas()
        return sum(
            count - self.throttled[key]
            for key, count in self.calls.items()
            if (family := quotas.family(*key)) is not None and family.name == family_name
        )

    @property
    def floor_seconds(self) -> float:
        """The least time the phase can take in an account: its binding quota's calls / its rate."""
        binding = self._binding()
        return binding[1] / binding[2] if binding else 0.0

    def _binding(self) -> tuple[str, int, float] | None:
        from deployguard_cli.localaws.quotas import PER_OPERATION, Quotas

        quotas, answered = Quotas(), Counter[str]()
        rates: dict[str, float] = {}
        for (service, operation), count in self.calls.items():
            family = quotas.family(service, operation)
            if family is not None:
                key = f"{family.name}:{operation}" if family.name in PER_OPERATION else family.name
                answered[key] += count - self.throttled[service, operation]
                rates[key] = family.rate
        if not answered:
            return None
        name = max(answered, key=lambda n: answered[n] / rates[n])
        return name, answered[name], rates[name]


@dataclass(frozen=True)
class Job:
    """One invocation (``run`` returns why it failed, or None), then what AWS does next once it
    succeeded (``then``: not DeployGuard's, not timed, but inside the phase and its quotas)."""

    run: Callable[[], str | None]
    then: Callable[[], None] | None = None


def _burst(
    name: str,
    unit: str,
    jobs: list[Job],
    *,
    within_seconds: float,
    fleet: Fleet,
    workers: int,
    not_deployguards: frozenset[tuple[str, str]] = frozenset(),
) -> Phase:
    """Run ``jobs`` starting at random instants within ``within_seconds``, each in an execution
    environment of ``fleet``; the quotas enforced. ``not_deployguards``: the operations only AWS
    itself calls in the phase (its traffic shift), reported apart."""
    from deployguard_cli.localaws import quotas

    starts = sorted(random.uniform(0, within_seconds) for _ in jobs)
    durations: list[float] = []
    failures: list[str] = []
    lock = threading.Lock()
    began = time.monotonic()

    def run(job: Job, start: float) -> None:
        time.sleep(max(0.0, began + start - time.monotonic()))
        with fleet.environment():
            t = time.perf_counter()
            try:
                why = job.run()
            except Exception as exc:
                why = f"raised {type(exc).__name__}: {exc}"[:300]
            elapsed = (time.perf_counter() - t) * 1000
        if why is None and job.then is not None:
            try:
                job.then()
            except Exception as exc:
                why = f"then raised {type(exc).__name__}: {exc}"[:300]
        with lock:
            durations.append(elapsed)
            if why is not None:
                failures.append(why)

    with quotas.enforced() as counted, ThreadPoolExecutor(max_workers=workers) as pool:
        for job, start in zip(jobs, starts, strict=True):
            pool.submit(contextvars.copy_context().run, run, job, start)
    return Phase(
        name=name,
        unit=unit,
        runs=len(jobs),
        failures=failures,
        durations_ms=durations,
        calls=counted.calls,
        throttled=counted.throttled,
        peak=fleet.peak,
        seconds=time.monotonic() - began,
        not_deployguards=not_deployguards,
    )


def _hook_job(handler: Callable[..., Any], deployment_id: str, execution_id: str) -> Callable[[], str | None]:
    from deployguard_cli.localaws import moto_codedeploy

    def job() -> str | None:
        event = {"DeploymentId": deployment_id, "LifecycleEventHookExecutionId": execution_id}
        answer = handler(event, Context(HOOK_TIMEOUT_MS))
        reports = [
            r.status
            for r in moto_codedeploy.hook_reports(deployment_id)
            if r.lifecycle_event_hook_execution_id == execution_id
        ]
        if reports != ["Succeeded"]:
            return f"{deployment_id}: reported {reports or 'nothing'}: {answer.get('reason')}"[:300]
        return None

    return job


def run(
    deployments: int,
    alarm_events: int,
    *,
    within_seconds: float = 1.0,
    named_groups: bool = False,
    log: Callable[[str], None] | None = None,
) -> list[Phase]:
    """The three phases on a fresh embedded AWS; their figures. ``named_groups``: the policy names each
    function's deployment group (none of the shipped policies does)."""
    from deployguard import entrypoints
    from deployguard_cli.localaws import moto_codedeploy, quotas

    log = log or _print
    phases: list[Phase] = []
    with local_aws(), captured_output(), execution_environments(), deployment_records(), fresh_invocations():
        entrypoints.reset()
        with quotas.enforced(quotas.Quotas(families=())) as setup:  # counted, never throttled
            executions = build(deployments, named_groups=named_groups)
        log(setup_report(setup.calls))
        functions = {d: function_name(i) for i, d in enumerate(executions)}
        shifted: list[str] = []

        def shift(deployment_id: str) -> Callable[[], None]:
            def then() -> None:
                shift_traffic(deployment_id, functions[deployment_id])
                shifted.append(deployment_id)

            return then

        handler = load_handler("pre_traffic").handler
        jobs = [Job(_hook_job(handler, d, e), then=shift(d)) for d, e in executions.items()]
        phases.append(
            _burst(
                "pre-traffic hooks",
                "deployment",
                jobs,
                within_seconds=within_seconds,
                fleet=Fleet(),
                workers=deployments,
                not_deployguards=frozenset({("lambda", "UpdateAlias")}),
            )
        )
        log(phases[-1].report())
        handler = load_handler("post_traffic").handler
        done = set(shifted)
        after = to_after_allow_traffic([d for d in executions if d in done])
        jobs = [Job(_hook_job(handler, d, e)) for d, e in after.items()]
        phases.append(
            _burst(
                "post-traffic hooks",
                "deployment",
                jobs,
                within_seconds=within_seconds,
                fleet=Fleet(),
                workers=deployments,
            )
        )
        log(phases[-1].report())

        phases.append(storm(executions, alarm_events, within_seconds=within_seconds))
        log(phases[-1].report())
        for deployment_id in executions:
            moto_codedeploy.set_deployment_status(deployment_id, "Stopped")
    entrypoints.reset()
    return phases


@contextmanager
def fresh_invocations() -> Iterator[None]:
    """The embedded Lambda runs each invocation of the fleet's functions in a fresh interpreter."""
    from deployguard_cli.localaws import lambda_runner

    previous = lambda_runner.set_mode("fresh")
    try:
        yield
    finally:
        lambda_runner.set_mode(previous)


@contextmanager
def deployment_records() -> Iterator[None]:
    """The deployment records' table as template.yaml deploys it, named in the functions' settings
    (the pre-traffic hook records each deployment; the alarm rollback reads it)."""
    from tests.support.aws import deployment_records_table

    saved = os.environ.get(TABLE_VARIABLE)
    os.environ[TABLE_VARIABLE] = deployment_records_table()
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop(TABLE_VARIABLE, None)
        else:
            os.environ[TABLE_VARIABLE] = saved


def setup_report(calls: Counter[tuple[str, str]]) -> str:
    """The world's building: calls CloudFormation and the pipeline would make before any deployment
    (not under the quotas: in an account they come minutes earlier, at their own pace)."""
    lam = sorted(((op, n) for (svc, op), n in calls.items() if svc == "lambda"), key=lambda x: -x[1])
    return (
        f"set-up (before the bursts, not under the quotas): {sum(calls.values())} calls; Lambda's: "
        + ", ".join(f"{op} {n}" for op, n in lam)
    )


def _print(text: str) -> None:
    # NOTE: the handlers' log lines are captured (thousands of them); the figures go to the real stdout
    print(text, file=sys.__stdout__, flush=True)


def storm(executions: dict[str, str], alarm_events: int, *, within_seconds: float) -> Phase:
    """``alarm_events`` events reach the alarm rollback, cycling over the fleet's alarms (every
    function's first, then every function's second…), each alarm in ALARM. Failed: an invocation
    that raised, or a function an event named whose alias is not back on 1 or whose deployment was
    not stopped."""
    from deployguard_cli.localaws import moto_codedeploy

    functions = len(executions)
    cloudwatch = client("cloudwatch")
    names = [alarm_name(i, n) for n in range(ALARMS_PER_FUNCTION) for i in range(functions)]
    time.sleep(0.01)  # alarm states strictly after the deployments were created
    for name in names[:alarm_events]:  # the alarms the events name
        cloudwatch.set_alarm_state(AlarmName=name, StateValue="ALARM", StateReason="load test")
    handler = load_handler("alarm_rollback").handler

    def job(name: str) -> Callable[[], str | None]:
        def event() -> str | None:
            handler(alarm_event(name), Context(ROLLBACK_TIMEOUT_MS))
            return None

        return event

    jobs = [Job(job(names[i % len(names)])) for i in range(alarm_events)]
    phase = _burst(
        "alarm storm",
        "alarm event",
        jobs,
        within_seconds=within_seconds,
        fleet=Fleet(limit=ROLLBACK_CONCURRENCY),
        workers=64,
    )
    lam = client("lambda")
    for index, deployment_id in list(enumerate(executions))[:alarm_events]:  # the functions an event named
        alias = lam.get_alias(FunctionName=function_name(index), Name="live")
        stopped = moto_codedeploy.stop_requests(deployment_id)
        if alias["FunctionVersion"] != "1" or not stopped:
            phase.failures.append(
                f"{function_name(index)}: alias on {alias['FunctionVersion']}, {len(stopped)} stop request(s)"
            )
    return phase


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--deployments", type=int, default=100)
    parser.add_argument("--alarm-events", type=int, default=1000)
    parser.add_argument("--within", type=float, default=1.0, help="seconds over which each burst starts")
    parser.add_argument(
        "--named-groups", action="store_true", help="the policy names each function's deployment group"
    )
    args = parser.parse_args()
    environment()
    began = time.monotonic()
    phases = run(
        args.deployments, args.alarm_events, within_seconds=args.within, named_groups=args.named_groups
    )
    pre = phases[0]
    print(
        f"pre-traffic spurious failure rate {pre.failure_rate:.1%} vs {BEFORE_FAILED:.0%} before "
        f"(100 hooks within 1 s, 3 attempts per call): {pre.failure_rate / BEFORE_FAILED:.2f}x"
    )
    storm = phases[-1]
    if args.deployments == 100 and args.alarm_events == 1000:  # the figures before were of this size
        lam = storm.answered("lambda:control-plane")
        print(
            f"alarm storm: {lam} Lambda control-plane calls vs {BEFORE_STORM_LAMBDA} before "
            f"({BEFORE_STORM_LAMBDA / max(lam, 1):.1f}x fewer), {storm.seconds:.0f} s vs {BEFORE_STORM_SECONDS} s "
            f"({BEFORE_STORM_SECONDS / storm.seconds:.2f}x)"
        )
    floor = sum(phase.floor_seconds for phase in phases)
    took = time.monotonic() - began
    print(
        f"load test: {took:.0f} s in all (goal {GOAL_SECONDS} s; {BEFORE_SECONDS} s before: {BEFORE_SECONDS / took:.2f}x); "
        f"the phases' floor inside AWS's published rates: {floor:.0f} s (each phase's binding quota: "
        "answered calls / rate)"
    )


if __name__ == "__main__":
    main()
