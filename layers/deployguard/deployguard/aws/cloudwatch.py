"""CloudWatch: alarms (metric and composite) and metric data, in as few calls as the APIs allow.

- DescribeAlarms takes at most 100 names per call: K named alarms cost ⌈K/100⌉ calls.
- GetMetricData takes at most 500 queries per call: every per-version series of a poll goes into
  one call.
- Alarms are found by tag through the Resource Groups Tagging API (one paginated GetResources
  call for every alarm with the tags), never by listing every alarm's tags.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal, Protocol, TypeVar

from deployguard.alarms import AlarmState
from deployguard.aws.errors import aws_call
from deployguard.version_health import MetricQuery

if TYPE_CHECKING:
    from mypy_boto3_cloudwatch import CloudWatchClient

MAX_NAMES_PER_CALL = 100  # DescribeAlarms AlarmNames
MAX_QUERIES_PER_CALL = 500  # GetMetricData MetricDataQueries
ALARM_TYPES: list[Literal["CompositeAlarm", "MetricAlarm"]] = ["MetricAlarm", "CompositeAlarm"]

T = TypeVar("T")


def batched(items: Sequence[T] | Mapping[T, Any], size: int) -> Iterator[list[T]]:
    """``items`` in lists of at most ``size`` (itertools.batched needs Python 3.12)."""
    values = list(items)
    for start in range(0, len(values), size):
        yield values[start : start + size]


class TaggingClient(Protocol):
    """The one Resource Groups Tagging API call DeployGuard makes (boto3's client satisfies it)."""

    def get_resources(self, **kwargs: Any) -> Mapping[str, Any]: ...


class Alarms:
    """DescribeAlarms (metric and composite alarms alike), alarm tags, and alarms by tag: the
    ``AlarmSource`` and ``AlarmLookup`` ports."""

    def __init__(self, client: CloudWatchClient, tagging: Callable[[], TaggingClient] | None = None) -> None:
        # NOTE: the tagging client is made on first use: only policies that select alarms by tag need it.
        self._client = client
        self._tagging = tagging

    def describe(self, names: Sequence[str]) -> list[AlarmState]:
        """The alarms named (those that exist), ⌈len(names)/100⌉ DescribeAlarms calls."""
        found: list[AlarmState] = []
        for chunk in batched(dict.fromkeys(names), MAX_NAMES_PER_CALL):
            found += self._describe_pages(AlarmNames=chunk)
        return found

    def alarm(self, name: str) -> AlarmState | None:
        """One alarm, metric or composite, as CloudWatch has it now (one DescribeAlarms call); None
        when no alarm has that name."""
        return next((alarm for alarm in self.describe([name]) if alarm.name == name), None)

    def describe_prefix(self, prefix: str) -> list[AlarmState]:
        """Every alarm whose name starts with ``prefix`` (paginated, 100 per call)."""
        return self._describe_pages(AlarmNamePrefix=prefix)

    def _describe_pages(self, **selection: Any) -> list[AlarmState]:
        found: list[AlarmState] = []
        token: str | None = None
        while True:
            with aws_call("DescribeAlarms"):
                request: dict[str, Any] = {**selection, **({"NextToken": token} if token else {})}
                answer = self._client.describe_alarms(
                    AlarmTypes=ALARM_TYPES, MaxRecords=MAX_NAMES_PER_CALL, **request
                )
            found += [_alarm(item, "metric") for item in answer.get("MetricAlarms", [])]
            found += [_alarm(item, "composite") for item in answer.get("CompositeAlarms", [])]
            token = answer.get("NextToken")
            if not token:
                return found

    def tags(self, alarm_arn: str) -> dict[str, str]:
        """One alarm's tags (ListTagsForResource)."""
        with aws_call("ListTagsForResource"):
            answer = self._client.list_tags_for_resource(ResourceARN=alarm_arn)
        return {tag["Key"]: tag["Value"] for tag in answer.get("Tags", [])}

    def names_tagged(self, tags: Mapping[str, str]) -> list[str]:
        """Names of the alarms that carry every one of ``tags`` (Resource Groups Tagging API)."""
        if self._tagging is None:
            raise ValueError("Alarms was built without a tagging client; alarms cannot be selected by tag")
        client = self._tagging()
        filters = [{"Key": key, "Values": [value]} for key, value in tags.items()]
        names: list[str] = []
        token = ""
        while True:
            with aws_call("GetResources"):
                answer = client.get_resources(
                    ResourceTypeFilters=["cloudwatch:alarm"],
                    TagFilters=filters,
                    **({"PaginationToken": token} if token else {}),
                )
            names += [
                str(item["ResourceARN"]).split(":alarm:", 1)[-1]
                for item in answer.get("ResourceTagMappingList", [])
            ]
            token = str(answer.get("PaginationToken") or "")
            if not token:
                return names


class Metrics:
    """GetMetricData: sums of many series in one call (the ``MetricSource`` port)."""

    def __init__(self, client: CloudWatchClient) -> None:
        self._client = client

    def sums(
        self, queries: Sequence[MetricQuery], start: datetime, end: datetime, *, period: int = 60
    ) -> dict[str, float]:
        """The sum over [start, end) of each query's datapoints, by query id (0.0 without data).

        ≤500 queries per call, so every series of a poll costs one call (plus a page per
        NextToken, which only very long windows produce).
        """
        sums = {query.id: 0.0 for query in queries}
        for chunk in batched(queries, MAX_QUERIES_PER_CALL):
            for result in self._results(chunk, start, end, period):
                sums[result["Id"]] += float(sum(result.get("Values", [])))
        return sums

    def _results(
        self, queries: Sequence[MetricQuery], start: datetime, end: datetime, period: int
    ) -> Iterator[Mapping[str, Any]]:
        token: str | None = None
        while True:
            with aws_call("GetMetricData"):
                page: dict[str, Any] = {"NextToken": token} if token else {}
                answer = self._client.get_metric_data(
                    MetricDataQueries=[_query(q, period) for q in queries],
                    StartTime=start,
                    EndTime=end,
                    ScanBy="TimestampAscending",
                    **page,
                )
            yield from answer.get("MetricDataResults", [])
            token = answer.get("NextToken")
            if not token:
                return


def _query(query: MetricQuery, period: int) -> Any:
    return {
        "Id": query.id,
        "MetricStat": {
            "Metric": {
                "Namespace": query.namespace,
                "MetricName": query.metric_name,
                "Dimensions": [{"Name": k, "Value": v} for k, v in query.dimensions.items()],
            },
            "Period": period,
            "Stat": query.stat,
        },
        "ReturnData": True,
    }


def _alarm(item: Mapping[str, Any], kind: Literal["metric", "composite"]) -> AlarmState:
    dimensions = {d["Name"]: d["Value"] for d in item.get("Dimensions", [])}
    for metric in item.get("Metrics", []):  # metric-math alarms keep their dimensions per series
        for dimension in metric.get("MetricStat", {}).get("Metric", {}).get("Dimensions", []):
            dimensions.setdefault(dimension["Name"], dimension["Value"])
    # NOTE: StateTransitionedTimestamp moves only when the state changes; StateUpdatedTimestamp also
    # moves when the reason is refreshed. The first is what "entered ALARM" means; older answers
    # (and moto) carry only the second.
    entered = item.get("StateTransitionedTimestamp") or item.get("StateUpdatedTimestamp")
    return AlarmState(
        name=item["AlarmName"],
        arn=item.get("AlarmArn", ""),
        kind=kind,
        state=item.get("StateValue", "INSUFFICIENT_DATA"),
        entered_at=entered,
        updated_at=item.get("StateUpdatedTimestamp"),
        dimensions=dimensions,
    )
