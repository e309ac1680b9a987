"""Simulated traffic on the guarded alias while CodeDeploy shifts it, and the metrics it leaves.

Each request is a real invocation of one version of the example application (its own code and
environment, in a subprocess: :mod:`deployguard_cli.localaws.lambda_runner`). Which version answers
follows the alias as it is at that moment (``GetAlias``: ``FunctionVersion`` plus
``RoutingConfig.AdditionalVersionWeights``), so a rollback by anyone moves the traffic at once.
Lambda picks a version per request at random in proportion to the weights; the rehearsal spreads
requests deterministically in the same proportions (a running share), so a 10 % canary sees exactly
one request in ten and every run tells the same story.

After each minute :meth:`Traffic.run` writes what Lambda would publish for that minute, stamped
with the virtual clock: ``AWS/Lambda`` ``Invocations``, ``Errors``, ``Throttles`` and ``Duration``
per executed version, with the dimensions ``FunctionName``, ``Resource`` (``function:alias``) and
``ExecutedVersion`` (the per-version alarms' dimensions), and the same per function
(``FunctionName`` alone).
"""

from __future__ import annotations

import base64
import json
import random
import re
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mypy_boto3_cloudwatch import CloudWatchClient
    from mypy_boto3_lambda import LambdaClient

__all__ = ["MinuteOfTraffic", "Payload", "Traffic", "TrafficProfile", "VersionStats", "orders_requests"]

NAMESPACE = "AWS/Lambda"


Payload = dict[str, Any]
"""One request: the event the alias is invoked with."""


@dataclass(frozen=True)
class TrafficProfile:
    """How busy the alias is: requests per minute and what they ask."""

    requests_per_minute: int
    make_requests: Callable[[random.Random, int], list[Payload]]
    seed: int = 7
    concurrency: int = 4


@dataclass
class VersionStats:
    invocations: int = 0
    errors: int = 0
    durations_ms: list[float] = field(default_factory=list)

    def add(self, other: VersionStats) -> None:
        self.invocations += other.invocations
        self.errors += other.errors
        self.durations_ms += other.durations_ms


@dataclass(frozen=True)
class MinuteOfTraffic:
    """What one minute of traffic did, per executed version."""

    start: datetime
    by_version: dict[str, VersionStats]

    @property
    def invocations(self) -> int:
        return sum(s.invocations for s in self.by_version.values())

    @property
    def errors(self) -> int:
        return sum(s.errors for s in self.by_version.values())


class Traffic:
    """Sends a profile's requests to an alias through Lambda Invoke, a minute at a time."""

    def __init__(
        self,
        *,
        lambda_client: LambdaClient,
        cloudwatch: CloudWatchClient,
        function_name: str,
        alias: str,
        profile: TrafficProfile,
    ) -> None:
        self._lambda = lambda_client
        self._cloudwatch = cloudwatch
        self._function = function_name
        self._alias = alias
        self._profile = profile
        self._random = random.Random(profile.seed)  # noqa: S311 - reproducible traffic, not security
        self._credit: dict[str, float] = {}
        self.datapoints = 0  # AWS/Lambda datapoints written (each a metric, dimensions and minute)

    def weights(self) -> dict[str, float]:
        """The alias's routing now: version → share of requests (sums to 1)."""
        alias = self._lambda.get_alias(FunctionName=self._function, Name=self._alias)
        extra = {
            str(k): float(v)
            for k, v in (alias.get("RoutingConfig") or {}).get("AdditionalVersionWeights", {}).items()
        }
        shares = {str(alias["FunctionVersion"]): max(1.0 - sum(extra.values()), 0.0), **extra}
        return {version: share for version, share in shares.items() if share > 0}

    def run(self, start: datetime) -> MinuteOfTraffic:
        """One minute of traffic from ``start``: invoke, then publish the minute's metrics."""
        weights = self.weights()
        requests = self._profile.make_requests(self._random, self._profile.requests_per_minute)
        versions = [self._pick(weights) for _ in requests]
        with ThreadPoolExecutor(max_workers=self._profile.concurrency) as pool:
            outcomes = list(pool.map(self._invoke, versions, requests))
        by_version: dict[str, VersionStats] = {}
        for version, (failed, duration_ms) in zip(versions, outcomes, strict=True):
            stats = by_version.setdefault(version, VersionStats())
            stats.add(VersionStats(invocations=1, errors=int(failed), durations_ms=[duration_ms]))
        minute = MinuteOfTraffic(start=start, by_version=by_version)
        self._publish(minute)
        return minute

    def _pick(self, weights: Mapping[str, float]) -> str:
        # NOTE: smooth weighted round robin: each version earns its share per request; the one with
        # the most credit answers and pays 1. Exact proportions, no randomness in who answers.
        for version, share in weights.items():
            self._credit[version] = self._credit.get(version, 0.0) + share
        for version in list(self._credit):
            if version not in weights:
                del self._credit[version]
        chosen = max(self._credit, key=lambda v: (self._credit[v], v))
        self._credit[chosen] -= 1.0
        return chosen

    def _invoke(self, version: str, payload: Payload) -> tuple[bool, float]:
        """Whether the invocation failed (a function error), and its REPORT ``Duration``."""
        answer = self._lambda.invoke(
            FunctionName=self._function,
            Qualifier=version,
            Payload=json.dumps(payload).encode(),
            LogType="Tail",
        )
        return bool(answer.get("FunctionError")), _duration_ms(answer.get("LogResult"))

    def _publish(self, minute: MinuteOfTraffic) -> None:
        resource = f"{self._function}:{self._alias}"
        stamp = minute.start + timedelta(seconds=30)
        data: list[dict[str, Any]] = []
        totals = VersionStats()
        for version, stats in sorted(minute.by_version.items()):
            dimensions = [
                {"Name": "FunctionName", "Value": self._function},
                {"Name": "Resource", "Value": resource},
                {"Name": "ExecutedVersion", "Value": version},
            ]
            data += _datapoints(dimensions, stats, stamp)
            totals.add(stats)
        if totals.invocations:
            data += _datapoints([{"Name": "FunctionName", "Value": self._function}], totals, stamp)
        self.datapoints += len(data)
        for batch in range(0, len(data), 20):
            self._cloudwatch.put_metric_data(Namespace=NAMESPACE, MetricData=data[batch : batch + 20])  # type: ignore[arg-type]


def _datapoints(
    dimensions: list[dict[str, str]], stats: VersionStats, stamp: datetime
) -> list[dict[str, Any]]:
    def counted(name: str, total: int) -> dict[str, Any]:
        return {
            "MetricName": name,
            "Dimensions": dimensions,
            "Timestamp": stamp,
            "Unit": "Count",
            "StatisticValues": {
                "SampleCount": float(stats.invocations),
                "Sum": float(total),
                "Minimum": 1.0 if total == stats.invocations else 0.0,
                "Maximum": 1.0 if total else 0.0,
            },
        }

    return [
        counted("Invocations", stats.invocations),
        counted("Errors", stats.errors),
        counted("Throttles", 0),
        {
            "MetricName": "Duration",
            "Dimensions": dimensions,
            "Timestamp": stamp,
            "Unit": "Milliseconds",
            "Values": [round(d, 2) for d in stats.durations_ms],
        },
    ]


def _duration_ms(log_result: str | None) -> float:
    """The REPORT line's ``Duration`` from the invocation's log tail (0 without one)."""
    log = base64.b64decode(log_result or "").decode("utf-8", "replace")
    match = re.search(r"^REPORT .*?\tDuration: (\d+(?:\.\d+)?) ms", log, re.MULTILINE)
    return float(match.group(1)) if match else 0.0


def orders_requests(bulk_share: float = 0.25) -> Callable[[random.Random, int], list[Payload]]:
    """Quotes for the example orders application: baskets of 1-3 lines, mostly small quantities,
    ``bulk_share`` of them with one line of 4-12 units (a valid order: the limit is 99)."""
    skus = ("A-1", "B-2", "C-3")

    def make(rng: random.Random, count: int) -> list[Payload]:
        requests: list[Payload] = []
        for _ in range(count):
            lines = rng.randint(1, 3)
            chosen = rng.sample(skus, lines)
            bulk = rng.random() < bulk_share
            items = [{"sku": sku, "qty": rng.randint(1, 3)} for sku in chosen]
            if bulk:
                items[0]["qty"] = rng.randint(4, 12)
            requests.append({"action": "quote", "customer_id": "c-1001", "items": items})
        return requests

    return make


def summarize(minutes: Sequence[MinuteOfTraffic], version: str) -> VersionStats:
    """``version``'s traffic over ``minutes``, added up."""
    total = VersionStats()
    for minute in minutes:
        total.add(minute.by_version.get(version, VersionStats()))
    return total
