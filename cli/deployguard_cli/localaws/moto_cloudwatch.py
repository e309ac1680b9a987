"""CloudWatch on moto: ``PutCompositeAlarm``, which moto 5.2 lacks, and ``DescribeAlarms``'
``AlarmTypes``, which it ignores.

moto stores composite alarms already (an ``Alarm`` with a ``rule``, which ``DescribeAlarms`` returns
under ``CompositeAlarms``) but answers ``PutCompositeAlarm`` with NotImplementedError. Its
``PutMetricAlarm`` handler reads ``AlarmRule`` for exactly this reuse, so :func:`install` routes
``PutCompositeAlarm`` there, as the CloudWatch API reference describes the call
(https://docs.aws.amazon.com/AmazonCloudWatch/latest/APIReference/API_PutCompositeAlarm.html):
the ``AlarmRule`` must parse (``ALARM``/``OK``/``INSUFFICIENT_DATA`` of an alarm, ``TRUE``,
``FALSE``, ``AT_LEAST``, ``AND``/``OR``/``NOT``, parentheses; else ``ValidationError``); a new alarm
starts in ``INSUFFICIENT_DATA`` and an update keeps the state; the ``ActionsSuppressor`` fields are
kept. The composite alarm's state is not computed from its rule: set it with ``SetAlarmState``.

``PutMetricAlarm`` refuses ``Metrics`` in which not exactly one query returns data, as CloudWatch
does ("Exactly one element of the metrics list should return data"); moto stores them.

``DescribeAlarms`` answers composite alarms only when ``AlarmTypes`` asks for them, and metric alarms
only when it is absent or asks for them ("If you omit this parameter, only metric alarms are
returned", API_DescribeAlarms.html).
"""

from __future__ import annotations

import re
import threading
from typing import Any, Final

from moto.cloudwatch.exceptions import ValidationError
from moto.cloudwatch.responses import CloudWatchResponse
from moto.core.responses import ActionResult, EmptyResult

_PATCH_MARK: Final = "_deployguard_moto_cloudwatch"
_TOKEN: Final = re.compile(r'\s*(?:(\(|\)|,)|("(?:[^"\\]|\\.)*")|([^\s(),"]+))')
_STATES: Final = frozenset({"ALARM", "OK", "INSUFFICIENT_DATA"})
_AT_LEAST_STATES: Final = _STATES | {f"NOT_{state}" for state in _STATES}
_MAX_RULE: Final = 10240
_lock = threading.Lock()
_original_describe_alarms = CloudWatchResponse.describe_alarms
_original_put_metric_alarm = CloudWatchResponse.put_metric_alarm


class _Rule:
    """A recursive-descent reading of an AlarmRule; :meth:`check` raises ValueError with the fault."""

    def __init__(self, text: str) -> None:
        self.tokens: list[str] = []
        position = 0
        while position < len(text.rstrip()):
            match = _TOKEN.match(text, position)
            if match is None:
                raise ValueError(f"unexpected text at character {position}")
            self.tokens.append(match.group(match.lastindex or 0))
            position = match.end()
        self.at = 0

    def check(self) -> None:
        self._expression()
        if self.at != len(self.tokens):
            raise ValueError(f"unexpected {self.tokens[self.at]!r}")

    def _next(self, *expected: str) -> str:
        token = self.tokens[self.at] if self.at < len(self.tokens) else ""
        if expected and token not in expected:
            raise ValueError(f"expected {' or '.join(expected)}, found {token or 'the end'}")
        self.at += 1
        return token

    def _peek(self) -> str:
        return self.tokens[self.at] if self.at < len(self.tokens) else ""

    def _expression(self) -> None:
        self._term()
        while self._peek() in ("AND", "OR"):
            self._next()
            self._term()

    def _term(self) -> None:
        word = self._next()
        if word == "NOT":
            self._term()
        elif word == "(":
            self._expression()
            self._next(")")
        elif word in _STATES:
            self._next("(")
            self._alarm()
            self._next(")")
        elif word == "AT_LEAST":
            self._next("(")
            if not re.fullmatch(r"\d+%?", self._next()):
                raise ValueError("AT_LEAST needs a count or a percentage first")
            self._next(",")
            self._next(*sorted(_AT_LEAST_STATES))
            self._next(",")
            self._next("(")
            self._alarm()
            while self._peek() == ",":
                self._next()
                self._alarm()
            self._next(")")
            self._next(")")
        elif word not in ("TRUE", "FALSE"):
            raise ValueError(f"unexpected {word or 'end of the rule'}")

    def _alarm(self) -> None:
        token = self._next()
        if token in ("", "(", ")", ","):
            raise ValueError("an alarm name or ARN is missing")


def _put_composite_alarm(self: CloudWatchResponse) -> EmptyResult:
    rule = self._get_param("AlarmRule")
    if not rule:
        raise ValidationError(
            "1 validation error detected: Value null at 'alarmRule' failed to satisfy constraint"
        )
    if len(rule) > _MAX_RULE:
        raise ValidationError(f"AlarmRule is longer than {_MAX_RULE} characters")
    try:
        _Rule(rule).check()
    except ValueError as exc:
        raise ValidationError(f"Invalid AlarmRule: {exc}") from exc
    name = self._get_param("AlarmName")
    previous = self.cloudwatch_backend.alarms.get(name)
    CloudWatchResponse.put_metric_alarm(self)
    alarm: Any = self.cloudwatch_backend.alarms[name]
    alarm.actions_suppressor = self._get_param("ActionsSuppressor")
    for key in ("ActionsSuppressorWaitPeriod", "ActionsSuppressorExtensionPeriod"):
        value = self._get_param(key)
        setattr(alarm, re.sub(r"(?<!^)(?=[A-Z])", "_", key).lower(), None if value is None else int(value))
    if previous is None:
        alarm.state_value = "INSUFFICIENT_DATA"
    else:
        alarm.state_value, alarm.state_reason = previous.state_value, previous.state_reason
        alarm.state_reason_data, alarm.state_updated_timestamp = (
            previous.state_reason_data,
            previous.state_updated_timestamp,
        )
    return EmptyResult()


def _put_metric_alarm(self: CloudWatchResponse) -> ActionResult:
    metrics = self._get_param("Metrics") or []
    returning = [m for m in metrics if str(m.get("ReturnData", True)).lower() != "false"]
    if metrics and len(returning) != 1:
        raise ValidationError("Exactly one element of the metrics list should return data.")
    return _original_put_metric_alarm(self)


def _describe_alarms(self: CloudWatchResponse) -> ActionResult:
    answer = _original_describe_alarms(self)
    types = self._get_param("AlarmTypes") or ["MetricAlarm"]
    result: Any = answer.result
    result["MetricAlarms"] = result["MetricAlarms"] if "MetricAlarm" in types else []
    result["CompositeAlarms"] = result["CompositeAlarms"] if "CompositeAlarm" in types else []
    return answer


def install() -> None:
    """Patch moto's CloudWatch (in-process ``mock_aws`` and moto servers). Idempotent."""
    with _lock:
        if getattr(CloudWatchResponse, _PATCH_MARK, False):
            return
        CloudWatchResponse.put_composite_alarm = _put_composite_alarm  # type: ignore[attr-defined]
        CloudWatchResponse.describe_alarms = _describe_alarms  # type: ignore[method-assign]
        CloudWatchResponse.put_metric_alarm = _put_metric_alarm  # type: ignore[method-assign]
        setattr(CloudWatchResponse, _PATCH_MARK, True)
