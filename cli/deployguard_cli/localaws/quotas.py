"""AWS's API rate quotas on moto: token buckets per API family, throttled calls answered as AWS does.

moto answers every call at once, however many arrive: a test on moto never sees a quota. With
:func:`enforced` active, each request that reaches moto (in process, or a ``ThreadedMotoServer`` in
this process) first takes a token from the bucket of its API family; an empty bucket answers the
throttling error of that service, serialized by moto from the botocore service model like any other
error, so botocore parses and retries it exactly as it does AWS's:

=============  =========================  ==========  =========================================
service        error code                 HTTP        body
=============  =========================  ==========  =========================================
Lambda         TooManyRequestsException   429         ``Type: User``, ``Reason: CallerRateLimitExceeded``,
                                                      ``message: Rate exceeded``
CloudWatch     Throttling                 400         Sender fault (``x-amzn-query-error``)
CodeDeploy     ThrottlingException        400         ``Rate exceeded``
SSM            ThrottlingException        400         ``Message: Rate exceeded``
Step Functions ThrottlingException        400         ``Rate exceeded``
=============  =========================  ==========  =========================================

The rates are AWS's published defaults (per account and Region), cited at each family in
:data:`FAMILIES`. Where AWS publishes none (CodeDeploy's APIs, SSM DescribeParameters, CloudWatch
ListTagsForResource) the family says so and its rate is an assumption, not a fact. Each bucket holds
one second of its rate (its burst), except where AWS publishes a bucket size (Step Functions).
Not metered: Lambda invocations (bounded by concurrency, not a request rate), S3 (5,500 GET per
second per prefix: never the binding quota here), DynamoDB on-demand tables, and every API not
listed. (Lambda's ``Retry-After`` header is not sent: moto's serializer writes no header of an error.)

Hooked into moto in one place: :func:`install` wraps ``moto.core.responses.BaseResponse.call_action``
(every service DeployGuard calls dispatches through it), and the wrapper does nothing unless a
:class:`Quotas` is active. Idempotent; :func:`enforced` activates one for a block.
"""

from __future__ import annotations

import threading
import time
import warnings
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Final

from moto.core.exceptions import ServiceException
from moto.core.responses import ActionResult, BaseResponse

_PATCH_MARK: Final = "_deployguard_quotas"
_lock = threading.Lock()

LAMBDA_QUOTAS: Final = "https://docs.aws.amazon.com/lambda/latest/dg/gettingstarted-limits.html#api-requests"
CLOUDWATCH_QUOTAS: Final = (
    "https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/cloudwatch_limits.html"
)
SSM_QUOTAS: Final = "https://docs.aws.amazon.com/general/latest/gr/ssm.html#limits_ssm"
SFN_QUOTAS: Final = "https://docs.aws.amazon.com/step-functions/latest/dg/service-quotas.html#service-limits-api-action-throttling"
CODEDEPLOY_QUOTAS: Final = "https://docs.aws.amazon.com/codedeploy/latest/userguide/limits.html"


@dataclass(frozen=True)
class Family:
    """One quota: the operations that share it, its rate (requests per second) and burst."""

    name: str
    service: str  # the boto3 service name
    operations: frozenset[str]  # empty: every operation of the service no other family names
    rate: float
    source: str
    burst: float | None = None  # bucket size; one second of the rate when None
    published: bool = True


# Lambda: "Remainder of the control plane API requests (excludes invocation, GetFunction, and
# GetPolicy requests): 15 requests per second"; "GetFunction API requests: 100 requests per second";
# "GetPolicy API requests: 15 requests per second". Invocations are bounded by concurrency, not here.
LAMBDA_INVOCATIONS: Final = frozenset({"Invoke", "InvokeAsync", "InvokeWithResponseStream"})
FAMILIES: Final[tuple[Family, ...]] = (
    Family("lambda:GetFunction", "lambda", frozenset({"GetFunction"}), 100, LAMBDA_QUOTAS),
    Family("lambda:GetPolicy", "lambda", frozenset({"GetPolicy"}), 15, LAMBDA_QUOTAS),
    Family("lambda:control-plane", "lambda", frozenset(), 15, LAMBDA_QUOTAS),
    # CloudWatch: "DescribeAlarms: 9 transactions per second (TPS) per Region"; "GetMetricData: 50
    # TPS per Region" (10 with Metrics Insights queries, which DeployGuard does not send);
    # DescribeAlarmsForMetric 9; SetAlarmState, PutMetricAlarm 3 each; PutMetricData 500.
    Family("cloudwatch:DescribeAlarms", "cloudwatch", frozenset({"DescribeAlarms"}), 9, CLOUDWATCH_QUOTAS),
    Family(
        "cloudwatch:DescribeAlarmsForMetric",
        "cloudwatch",
        frozenset({"DescribeAlarmsForMetric"}),
        9,
        CLOUDWATCH_QUOTAS,
    ),
    Family("cloudwatch:GetMetricData", "cloudwatch", frozenset({"GetMetricData"}), 50, CLOUDWATCH_QUOTAS),
    Family("cloudwatch:SetAlarmState", "cloudwatch", frozenset({"SetAlarmState"}), 3, CLOUDWATCH_QUOTAS),
    Family("cloudwatch:PutMetricAlarm", "cloudwatch", frozenset({"PutMetricAlarm"}), 3, CLOUDWATCH_QUOTAS),
    Family("cloudwatch:PutMetricData", "cloudwatch", frozenset({"PutMetricData"}), 500, CLOUDWATCH_QUOTAS),
    # NOTE: CloudWatch publishes no rate for ListTagsForResource: assumed like DescribeAlarms.
    Family(
        "cloudwatch:ListTagsForResource",
        "cloudwatch",
        frozenset({"ListTagsForResource"}),
        9,
        CLOUDWATCH_QUOTAS,
        published=False,
    ),
    # SSM Parameter Store: "Max throughput (transactions per second): default throughput 40 (shared by
    # the following API actions: GetParameter, GetParameters, GetParametersByPath)".
    Family(
        "ssm:parameter-reads",
        "ssm",
        frozenset({"GetParameter", "GetParameters", "GetParametersByPath"}),
        40,
        SSM_QUOTAS,
    ),
    # NOTE: no published rate for DescribeParameters: assumed as the reads'.
    Family(
        "ssm:DescribeParameters", "ssm", frozenset({"DescribeParameters"}), 40, SSM_QUOTAS, published=False
    ),
    # Step Functions, "StartExecution — In US East (N. Virginia), US West (Oregon), and EU (Ireland)":
    # bucket size 1000, refill rate per second 200 ("may increase both ... at any time").
    Family(
        "stepfunctions:StartExecution", "stepfunctions", frozenset({"StartExecution"}), 200, SFN_QUOTAS, 1000
    ),
    # NOTE: CodeDeploy publishes no API rate (its quotas page lists resources only; AWS Support has
    # throttled GetDeployment polled at ~41/min with bursts). Assumed: 10 requests per second per
    # operation, a bucket of 10.
    Family("codedeploy:per-operation", "codedeploy", frozenset(), 10, CODEDEPLOY_QUOTAS, published=False),
)
PER_OPERATION: Final = frozenset({"codedeploy:per-operation"})


class Throttled(ServiceException):
    """A throttling error (defined here: moto looks a ``moto.*`` exception's model up by its package)."""


def _lambda_throttle() -> ServiceException:
    error = Throttled("TooManyRequestsException", "Rate exceeded")
    error.Type = "User"  # type: ignore[attr-defined]
    error.Reason = "CallerRateLimitExceeded"  # type: ignore[attr-defined]
    return error


def _throttling(code: str) -> Callable[[], ServiceException]:
    def error() -> ServiceException:
        return Throttled(code, "Rate exceeded")

    return error


THROTTLE_ERRORS: Final[Mapping[str, Callable[[], ServiceException]]] = {
    "lambda": _lambda_throttle,
    "cloudwatch": _throttling("Throttling"),
    "codedeploy": _throttling("ThrottlingException"),
    "ssm": _throttling("ThrottlingException"),
    "stepfunctions": _throttling("ThrottlingException"),
}
# NOTE: moto warns when an error code matches no shape of the service's model; CloudWatch's
# 'Throttling' and CodeDeploy's 'ThrottlingException' are AWS's real answers all the same.
warnings.filterwarnings(
    "ignore", message=r"Exception\(Throttled\) with code (Throttling|ThrottlingException)"
)


class TokenBucket:
    """``rate`` tokens a second, at most ``capacity``; full at the start."""

    def __init__(self, rate: float, capacity: float, clock: Callable[[], float]) -> None:
        self._rate, self._capacity, self._clock = rate, capacity, clock
        self._tokens, self._updated = capacity, clock()
        self._lock = threading.Lock()

    def take(self) -> bool:
        with self._lock:
            now = self._clock()
            self._tokens = min(self._capacity, self._tokens + (now - self._updated) * self._rate)
            self._updated = now
            if self._tokens < 1:
                return False
            self._tokens -= 1
            return True


@dataclass
class Quotas:
    """The buckets of :data:`FAMILIES` (or ``families``), and what each API answered: ``calls`` counts
    every request by ``(service, operation)``, ``throttled`` those refused."""

    families: tuple[Family, ...] = FAMILIES
    clock: Callable[[], float] = time.monotonic
    calls: Counter[tuple[str, str]] = field(default_factory=Counter)
    throttled: Counter[tuple[str, str]] = field(default_factory=Counter)
    _buckets: dict[str, TokenBucket] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def family(self, service: str, operation: str) -> Family | None:
        default = None
        for family in self.families:
            if family.service != service:
                continue
            if operation in family.operations:
                return family
            if not family.operations:
                default = family
        if default is not None and service == "lambda" and operation in LAMBDA_INVOCATIONS:
            return None
        return default

    def admit(self, service: str, operation: str) -> bool:
        """Take a token for one request; False when its family's bucket is empty (throttled)."""
        family = self.family(service, operation)
        with self._lock:
            self.calls[service, operation] += 1
            if family is None:
                return True
            key = f"{family.name}:{operation}" if family.name in PER_OPERATION else family.name
            bucket = self._buckets.get(key)
            if bucket is None:
                capacity = family.burst if family.burst is not None else family.rate
                bucket = self._buckets[key] = TokenBucket(family.rate, capacity, self.clock)
        if bucket.take():
            return True
        with self._lock:
            self.throttled[service, operation] += 1
        return False

    def reset_counts(self) -> None:
        with self._lock:
            self.calls.clear()
            self.throttled.clear()


_active: Quotas | None = None


def active() -> Quotas | None:
    return _active


def install() -> None:
    """Wrap moto's ``BaseResponse.call_action`` with the quota check. Idempotent."""
    with _lock:
        if getattr(BaseResponse, _PATCH_MARK, False):
            return
        original: Callable[[BaseResponse], Any] = BaseResponse.call_action

        def call_action(self: BaseResponse) -> Any:
            quotas = _active
            if quotas is None:
                return original(self)
            service, operation = self.boto3_service_name, self._get_action()
            if quotas.admit(service, operation) or service not in THROTTLE_ERRORS:
                return original(self)
            status, headers, body = self.serialized(ActionResult(THROTTLE_ERRORS[service]()))
            headers["status"] = status
            headers, body = self._enrich_response(headers, body)
            return status, headers, body

        BaseResponse.call_action = call_action  # type: ignore[method-assign]
        setattr(BaseResponse, _PATCH_MARK, True)


@contextmanager
def enforced(quotas: Quotas | None = None) -> Iterator[Quotas]:
    """AWS's rate quotas on every moto request inside the block (one :class:`Quotas` at a time)."""
    global _active  # noqa: PLW0603 - the one switch the patched moto reads
    install()
    quotas = quotas or Quotas()
    with _lock:
        if _active is not None:
            raise RuntimeError("quotas are already enforced: one Quotas at a time")
        _active = quotas
    try:
        yield quotas
    finally:
        with _lock:
            _active = None
