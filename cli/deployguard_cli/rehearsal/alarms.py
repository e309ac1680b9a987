"""CloudWatch's part: evaluate alarms from the metrics in CloudWatch, and shape each state change as
the "CloudWatch Alarm State Change" event CloudWatch puts on EventBridge.

moto stores alarms and metrics but never evaluates an alarm. :class:`AlarmEvaluator` does, every
minute, from the alarm as ``DescribeAlarms`` returns it (one metric, a percentile, or metric math)
and its data as ``GetMetricData`` returns it; a new state is written with ``SetAlarmState``. How it
judges, after the CloudWatch User Guide and LocalStack's ``alarm_scheduler.py`` (Apache-2.0, (c)
LocalStack contributors), and what remains approximate: docs/fidelity.md, "Alarm evaluation".
"""

from __future__ import annotations

import ast
import json
import math
import operator
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from deployguard.errors import DeployGuardError
from deployguard_cli.rehearsal.clock import floor_to
from deployguard_cli.rehearsal.wiring import ACCOUNT_ID, REGION

if TYPE_CHECKING:
    from mypy_boto3_cloudwatch import CloudWatchClient

__all__ = ["AlarmEvaluator", "AlarmStateChange", "MetricMathError", "evaluate_expression"]

_COMPARE: dict[str, tuple[Callable[[float, float], bool], str]] = {  # ComparisonOperator: test, words
    "GreaterThanThreshold": (operator.gt, "greater than"),
    "GreaterThanOrEqualToThreshold": (operator.ge, "greater than or equal to"),
    "LessThanThreshold": (operator.lt, "less than"),
    "LessThanOrEqualToThreshold": (operator.le, "less than or equal to"),
}
_SIMPLE_STATS = frozenset({"Sum", "Average", "Minimum", "Maximum", "SampleCount"})


class MetricMathError(DeployGuardError, ValueError):
    """An expression the rehearsal cannot evaluate."""

    code = "REHEARSAL"


@dataclass(frozen=True)
class AlarmStateChange:
    alarm_name: str
    previous: str
    state: str
    reason: str
    reason_data: dict[str, Any]
    event: dict[str, Any]  # what CloudWatch puts on the default event bus


# --- metric math --------------------------------------------------------------------------------
_Series = Mapping[datetime, float]
_ARITHMETIC: dict[type[ast.operator], Callable[[float, float], float]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Pow: operator.pow,
}
_COMPARISONS: dict[type[ast.cmpop], Callable[[float, float], bool]] = {
    ast.Gt: operator.gt,
    ast.GtE: operator.ge,
    ast.Lt: operator.lt,
    ast.LtE: operator.le,
    ast.Eq: operator.eq,
    ast.NotEq: operator.ne,
}
_AGGREGATES: dict[str, Callable[[list[float]], float]] = {
    "SUM": sum,
    "MIN": min,
    "MAX": max,
    "AVG": lambda values: sum(values) / len(values),
}


def evaluate_expression(expression: str, series: Mapping[str, _Series], at: datetime) -> float | None:
    """The value of a metric-math ``expression`` at one timestamp (None: no datapoint there)."""
    try:
        tree = ast.parse(expression.replace("&&", " and ").replace("||", " or "), mode="eval")
    except SyntaxError as exc:
        raise MetricMathError(f"cannot parse metric math {expression!r}: {exc.msg}") from exc
    return _value(tree.body, series, at)


def _value(node: ast.expr, series: Mapping[str, _Series], at: datetime) -> float | None:  # noqa: C901, PLR0912
    if isinstance(node, ast.Constant) and isinstance(node.value, int | float):
        return float(node.value)
    if isinstance(node, ast.Name):
        if node.id not in series:
            raise MetricMathError(f"metric math names {node.id!r}, which is not a query of the alarm")
        return series[node.id].get(at)
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        operand = _value(node.operand, series, at)
        return None if operand is None else -operand
    if isinstance(node, ast.BinOp):
        left, right = _value(node.left, series, at), _value(node.right, series, at)
        if left is None or right is None:
            return None
        if isinstance(node.op, ast.Div):
            return None if right == 0 else left / right  # CloudWatch drops the datapoint
        if type(node.op) in _ARITHMETIC:
            return float(_ARITHMETIC[type(node.op)](left, right))
    if isinstance(node, ast.Compare) and len(node.ops) == 1:
        left, right = _value(node.left, series, at), _value(node.comparators[0], series, at)
        if left is None or right is None:
            return None
        if type(node.ops[0]) not in _COMPARISONS:
            raise MetricMathError("unsupported comparison in metric math")
        return 1.0 if _COMPARISONS[type(node.ops[0])](left, right) else 0.0
    if isinstance(node, ast.BoolOp):
        values = [_value(v, series, at) for v in node.values]
        if any(v is None for v in values):
            return None
        truth = all if isinstance(node.op, ast.And) else any
        return 1.0 if truth(bool(v) for v in values) else 0.0
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
        return _call(node.func.id.upper(), node.args, series, at)
    raise MetricMathError(f"the rehearsal does not evaluate {ast.unparse(node)!r} in metric math")


def _call(name: str, args: Sequence[ast.expr], series: Mapping[str, _Series], at: datetime) -> float | None:
    if name == "IF" and len(args) in (2, 3):
        condition = _value(args[0], series, at)
        if condition is None:
            return None
        if condition:
            return _value(args[1], series, at)
        return _value(args[2], series, at) if len(args) == 3 else None
    if name == "FILL" and len(args) == 2:
        value = _value(args[0], series, at)
        return _value(args[1], series, at) if value is None else value
    if name in _AGGREGATES and len(args) == 1 and isinstance(args[0], ast.List):
        values = [v for v in (_value(e, series, at) for e in args[0].elts) if v is not None]
        return _AGGREGATES[name](values) if values else None
    if name == "ABS" and len(args) == 1:
        value = _value(args[0], series, at)
        return None if value is None else abs(value)
    raise MetricMathError(f"the rehearsal does not evaluate the metric math function {name}")


# --- reading the metrics ------------------------------------------------------------------------
def _percentile(values: Sequence[float], percent: float) -> float:
    ordered = sorted(values)
    rank = max(math.ceil(percent / 100 * len(ordered)) - 1, 0)  # nearest-rank, as CloudWatch documents
    return ordered[rank]


def _period_start(when: datetime, start: datetime, period: int) -> datetime:
    """The start of the period (counted from ``start``) that ``when`` (aware) falls in."""
    offset = (when - start).total_seconds()
    return start + timedelta(seconds=period * math.floor(offset / period))


# --- evaluation ---------------------------------------------------------------------------------
TREATMENTS = ("missing", "ignore", "breaching", "notBreaching")


def evaluation_range(evaluation_periods: int) -> int:
    """How many datapoints an evaluation retrieves: N + max(N // 3, 2), LocalStack's reading
    (``collect_metric_data``) of the User Guide, which gives 5 for N = 3 (docs/fidelity.md)."""
    return evaluation_periods + max(evaluation_periods // 3, 2)


@dataclass(frozen=True)
class Verdict:
    """What :func:`judge` decided (None: the alarm keeps its state), and from which datapoints."""

    state: str | None
    breaching: int
    evaluated: int
    filled: int  # missing datapoints filled in with TreatMissingData (breaching/notBreaching)
    rule: str  # all missing, premature alarm, real datapoints, filled or too few


def judge(
    points: Sequence[bool | None],
    *,
    evaluation_periods: int,
    datapoints_to_alarm: int,
    treat_missing_data: str,
) -> Verdict:
    """An alarm's state from the datapoints of its evaluation range, oldest first (True: breaching,
    False: not breaching, None: missing), as the CloudWatch User Guide's "How alarm state is
    evaluated when data is missing" and "Avoiding premature transitions to alarm state" describe it
    (their tables are tests/integration/test_alarm_evaluation.py; the readings: docs/fidelity.md).

    Ported from LocalStack's ``calculate_alarm_state``/``is_triggering_premature_alarm``
    (``localstack/services/cloudwatch/alarm_scheduler.py``, Apache-2.0), with two changes the
    docs' tables need: ``ignore`` behaves as ``missing`` once some data is real, and the premature
    rule takes the oldest breaching datapoint "at least as old as" M, not exactly M.
    """
    if treat_missing_data not in TREATMENTS:
        raise ValueError(
            f"TreatMissingData must be one of {', '.join(TREATMENTS)}; it is {treat_missing_data!r}"
        )
    n, m = evaluation_periods, datapoints_to_alarm
    real = [p for p in points if p is not None]
    if not real:
        state = {"missing": "INSUFFICIENT_DATA", "ignore": None, "breaching": "ALARM", "notBreaching": "OK"}
        filled = n if treat_missing_data in ("breaching", "notBreaching") else 0
        breaching = n if treat_missing_data == "breaching" else 0
        return Verdict(state[treat_missing_data], breaching, filled, filled, "all missing")
    if len(real) >= n:
        breaching = sum(real[-n:])
        return Verdict("ALARM" if breaching >= m else "OK", breaching, n, 0, "real datapoints")
    if treat_missing_data in ("missing", "ignore") and all(real):
        oldest_age = len(points) - next(i for i, p in enumerate(points) if p is not None)
        if oldest_age >= m:
            state_if = "ALARM" if treat_missing_data == "missing" else None
            return Verdict(state_if, len(real), len(real), 0, "premature alarm")
    if treat_missing_data in ("breaching", "notBreaching"):
        filled = n - len(real)
        breaching = sum(real) + (filled if treat_missing_data == "breaching" else 0)
        return Verdict("ALARM" if breaching >= m else "OK", breaching, n, filled, "filled")
    breaching = sum(real)
    if breaching >= m:
        return Verdict("ALARM", breaching, len(real), 0, "real datapoints")
    if not all(real):
        return Verdict("OK", breaching, len(real), 0, "real datapoints")
    too_few = "INSUFFICIENT_DATA" if treat_missing_data == "missing" else None
    return Verdict(too_few, breaching, len(real), 0, "too few")


class AlarmEvaluator:
    """Evaluates the named alarms every minute and writes their new states.

    ``samples()``, if given, returns moto's stored metric data (for percentiles, which moto's
    ``GetMetricData`` does not compute). ``stamp(alarm_name, when)``, if given, is called after each
    state change: moto stamps ``StateUpdatedTimestamp`` with the real time, the rehearsal puts its
    virtual time there.
    """

    def __init__(
        self,
        cloudwatch: CloudWatchClient,
        alarm_names: Sequence[str],
        *,
        samples: Callable[[], Sequence[Any]] | None = None,
        stamp: Callable[[str, datetime], None] | None = None,
    ) -> None:
        self._cloudwatch = cloudwatch
        self._samples = samples
        self._stamp = stamp
        self._names = list(alarm_names)

    def evaluate(self, now: datetime) -> list[AlarmStateChange]:
        """Judge every alarm on the datapoints of its evaluation range ending at ``now``'s minute;
        SetAlarmState on each change."""
        if not self._names:
            return []
        changes = []
        for described in self._cloudwatch.describe_alarms(AlarmNames=self._names)["MetricAlarms"]:
            alarm: dict[str, Any] = dict(described)
            previous = str(alarm.get("StateValue", "INSUFFICIENT_DATA"))
            judged = self._judge(alarm, now)
            if judged is None or judged[0] == previous:
                continue
            state, reason, reason_data = judged
            self._cloudwatch.set_alarm_state(
                AlarmName=alarm["AlarmName"],
                StateValue=state,  # type: ignore[arg-type]
                StateReason=reason,
                StateReasonData=json.dumps(reason_data),
            )
            if self._stamp is not None:
                self._stamp(alarm["AlarmName"], now)
            event = state_change_event(
                alarm, previous=previous, state=state, reason=reason, reason_data=reason_data, at=now
            )
            changes.append(AlarmStateChange(alarm["AlarmName"], previous, state, reason, reason_data, event))
        return changes

    def _judge(self, alarm: Mapping[str, Any], now: datetime) -> tuple[str, str, dict[str, Any]] | None:
        """The alarm's state at ``now``, its reason and reason data (None: it keeps its state)."""
        period = _period(alarm)
        evaluation_periods = int(alarm.get("EvaluationPeriods") or 1)
        to_alarm = int(alarm.get("DatapointsToAlarm") or evaluation_periods)
        # NOTE: evaluated every minute over the last periods (the User Guide's "Alarm evaluation":
        # at the end of minute 6 a 5-minute alarm judges minutes 2 to 6), not on epoch buckets.
        end = floor_to(now, min(period, 60))
        span = evaluation_range(evaluation_periods)
        periods = [end - timedelta(seconds=period * (span - i)) for i in range(span)]
        values_by_period = self._values(alarm, periods[0], end)
        values = [values_by_period.get(p) for p in periods]
        threshold = float(alarm["Threshold"])
        compare, words = _COMPARE[str(alarm["ComparisonOperator"])]
        treat = str(alarm.get("TreatMissingData") or "missing")
        if alarm.get("Namespace") == "AWS/DynamoDB":
            treat = "ignore"  # the guide: AWS/DynamoDB alarms always ignore missing data
        verdict = judge(
            [None if v is None else compare(v, threshold) for v in values],
            evaluation_periods=evaluation_periods,
            datapoints_to_alarm=to_alarm,
            treat_missing_data=treat,
        )
        if verdict.state is None:
            return None
        reason_data = {
            "version": "1.0",
            "queryDate": now.isoformat(timespec="milliseconds"),
            "startDate": periods[-1].isoformat(timespec="milliseconds"),
            "period": period,
            "recentDatapoints": [v for v in values if v is not None],
            "threshold": threshold,
            "evaluatedDatapoints": [
                {"timestamp": p.isoformat(timespec="milliseconds"), "value": v}
                for p, v in zip(periods, values, strict=True)
                if v is not None
            ],
        }
        name = _describe(alarm)
        if verdict.state == "INSUFFICIENT_DATA":
            missing = sum(1 for v in values if v is None)
            reason = f"Insufficient Data: {missing} of the last {span} datapoints of {name} were missing."
            return verdict.state, reason, reason_data
        latest = next((v for v in reversed(values) if v is not None), None)
        alarming = verdict.state == "ALARM"
        counted = verdict.breaching if alarming else verdict.evaluated - verdict.breaching
        reason = (
            f"Threshold Crossed: {counted} out of the last {verdict.evaluated} datapoints of {name} "
            f"were {'' if alarming else 'not '}{words} the threshold ({threshold:g}) "
            f"(minimum {to_alarm} for ALARM); the most recent was {'missing' if latest is None else f'{latest:g}'}"
        )
        if verdict.filled:
            reason += f"; {verdict.filled} missing datapoint(s) treated as {treat}"
        if verdict.rule == "premature alarm":
            reason += "; every datapoint in the evaluation range breaches (premature alarm rule)"
        return verdict.state, reason + ".", reason_data

    def _values(self, alarm: Mapping[str, Any], start: datetime, end: datetime) -> dict[datetime, float]:
        """The values of the alarm's returned query, by period start: a metric's, or its expression's
        at the timestamps where a query has data."""
        queries = _queries(alarm)
        series = {q["Id"]: self._series(q["MetricStat"], start, end) for q in queries if "MetricStat" in q}
        returning = [q for q in queries if q.get("ReturnData", True)]
        if len(returning) != 1:  # PutMetricAlarm refuses it so: exactly one query returns data
            raise MetricMathError(
                f"alarm {alarm['AlarmName']}: exactly one element of the metrics list should return data "
                f"({len(returning)} do): set ReturnData: false on the others"
            )
        (returned,) = returning
        if "MetricStat" in returned:
            return series[returned["Id"]]
        stamps = sorted({t for s in series.values() for t in s})
        values = {t: evaluate_expression(returned["Expression"], series, t) for t in stamps}
        return {t: v for t, v in values.items() if v is not None}

    def _series(
        self, metric_stat: Mapping[str, Any], start: datetime, end: datetime
    ) -> dict[datetime, float]:
        """One query's ``MetricStat`` values by period start; periods count from ``start`` (a sliding
        window), not from the epoch."""
        metric, stat, period = metric_stat["Metric"], str(metric_stat["Stat"]), int(metric_stat["Period"])
        if stat in _SIMPLE_STATS:
            query: Any = {"Id": "m", "MetricStat": {"Metric": dict(metric), "Period": period, "Stat": stat}}
            answer = self._cloudwatch.get_metric_data(MetricDataQueries=[query], StartTime=start, EndTime=end)
            result = answer["MetricDataResults"][0]  # moto's periods start at StartTime, as ours
            return {
                _period_start(t, start, period): float(v)
                for t, v in zip(result.get("Timestamps", []), result.get("Values", []), strict=False)
            }
        if not (stat.startswith("p") and self._samples is not None):
            raise MetricMathError(f"the rehearsal does not compute the statistic {stat}")
        # NOTE: moto's GetMetricData has no percentiles; its stored samples are the same metric data.
        wanted = sorted((d["Name"], d["Value"]) for d in metric.get("Dimensions", []))
        buckets: dict[datetime, list[float]] = {}
        for datum in self._samples():
            if datum.namespace != metric["Namespace"] or datum.name != metric["MetricName"]:
                continue
            if sorted((d.name, d.value) for d in datum.dimensions) != wanted:
                continue
            stamp = (
                datum.timestamp if datum.timestamp.tzinfo else datum.timestamp.replace(tzinfo=start.tzinfo)
            )
            if start <= stamp < end and hasattr(datum, "value"):
                buckets.setdefault(_period_start(stamp, start, period), []).append(float(datum.value))
        return {when: _percentile(values, float(stat[1:])) for when, values in buckets.items()}


def _queries(alarm: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """The alarm's metric queries as a metric-math alarm lists them; a single-metric alarm's metric
    as one query (its id derived from the alarm's ARN, as CloudWatch's event shows it)."""
    if alarm.get("Metrics"):
        return list(alarm["Metrics"])
    metric = {
        "Namespace": alarm["Namespace"],
        "MetricName": alarm["MetricName"],
        "Dimensions": alarm.get("Dimensions", []),
    }
    stat = alarm.get("Statistic") or alarm.get("ExtendedStatistic") or "Average"
    return [
        {
            "Id": str(uuid.uuid5(uuid.NAMESPACE_URL, str(alarm["AlarmArn"]))),
            "MetricStat": {"Metric": metric, "Period": alarm["Period"], "Stat": stat},
            "ReturnData": True,
        }
    ]


def _period(alarm: Mapping[str, Any]) -> int:
    return min((int(q["MetricStat"]["Period"]) for q in _queries(alarm) if "MetricStat" in q), default=60)


def _describe(alarm: Mapping[str, Any]) -> str:
    if alarm.get("Metrics"):
        returned: Mapping[str, Any] = next((q for q in alarm["Metrics"] if q.get("ReturnData", True)), {})
        return str(
            returned.get("Label") or returned.get("Expression") or returned.get("Id", "the expression")
        )
    stat = alarm.get("Statistic") or alarm.get("ExtendedStatistic")
    return f"{alarm.get('MetricName')} ({stat})"


def _configuration(alarm: Mapping[str, Any]) -> dict[str, Any]:
    """The event's ``configuration``: the alarm's description and its queries."""
    metrics: list[dict[str, Any]] = []
    for query in _queries(alarm):
        entry: dict[str, Any] = {"id": query["Id"], "returnData": bool(query.get("ReturnData", True))}
        if "MetricStat" in query:
            stat, metric = query["MetricStat"], query["MetricStat"]["Metric"]
            entry["metricStat"] = {
                "metric": {
                    "namespace": metric["Namespace"],
                    "name": metric["MetricName"],
                    "dimensions": {d["Name"]: d["Value"] for d in metric.get("Dimensions", [])},
                },
                "period": int(stat["Period"]),
                "stat": stat["Stat"],
            }
        else:
            entry["expression"] = query["Expression"]
            entry["label"] = query.get("Label", query["Id"])
        metrics.append(entry)
    return {"description": alarm.get("AlarmDescription", ""), "metrics": metrics}


def _cloudwatch_time(when: datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}+0000"


def state_change_event(
    alarm: Mapping[str, Any],
    *,
    previous: str,
    state: str,
    reason: str,
    reason_data: Mapping[str, Any],
    at: datetime,
) -> dict[str, Any]:
    """The EventBridge event CloudWatch emits on an alarm state change."""
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "CloudWatch Alarm State Change",
        "source": "aws.cloudwatch",
        "account": ACCOUNT_ID,
        "time": at.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": REGION,
        "resources": [alarm["AlarmArn"]],
        "detail": {
            "alarmName": alarm["AlarmName"],
            "state": {
                "value": state,
                "reason": reason,
                "reasonData": json.dumps(reason_data),
                "timestamp": _cloudwatch_time(at),
            },
            "previousState": {
                "value": previous,
                "reason": str(alarm.get("StateReason", "")),
                "timestamp": _cloudwatch_time(at),
            },
            "configuration": _configuration(alarm),
        },
    }
