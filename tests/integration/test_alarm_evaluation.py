"""The rehearsal's alarm evaluation against the CloudWatch User Guide.

Every cell of the two tables in "Configuring how CloudWatch alarms treat missing data", section
"How alarm state is evaluated when data is missing"
(https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/alarms-and-missing-data.html),
the examples of its text and of "Avoiding premature transitions to alarm state", and the sliding
evaluation of "Alarm evaluation" ("an alarm is evaluated every minute": a 5-minute alarm judges
minutes 2 to 6 at the end of minute 6). In the tables a datapoint is ``0`` (not breaching), ``X``
(breaching) or ``-`` (missing), the most recent on the right; ``keep`` is "Retain current state".

The table tests need no moto; the module sits in tests/integration for the sliding-window tests,
which evaluate alarms stored in moto.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import boto3
import pytest

from deployguard.errors import DeployGuardError
from deployguard_cli.rehearsal.alarms import AlarmEvaluator, evaluation_range, judge
from tests.support.handlers import REGION

if TYPE_CHECKING:
    from mypy_boto3_cloudwatch import CloudWatchClient

TREATMENTS = ("missing", "ignore", "breaching", "notBreaching")
KEEP = "keep"

# First table: Datapoints to Alarm 3, Evaluation Periods 3, evaluation range 5.
THREE_OF_THREE = [
    ("0 - X - X", ("OK", "OK", "OK", "OK")),
    ("0 - - - -", ("OK", "OK", "OK", "OK")),
    ("- - - - -", ("INSUFFICIENT_DATA", KEEP, "ALARM", "OK")),
    ("0 X X - X", ("ALARM", "ALARM", "ALARM", "ALARM")),
    ("- - X - -", ("ALARM", KEEP, "ALARM", "OK")),
]
# Second table: Datapoints to Alarm 2, Evaluation Periods 3 (2 out of 3), evaluation range 5.
TWO_OF_THREE = [
    ("0 - X - X", ("ALARM", "ALARM", "ALARM", "ALARM")),
    ("0 0 X 0 X", ("ALARM", "ALARM", "ALARM", "ALARM")),
    ("0 - X - -", ("OK", "OK", "ALARM", "OK")),
    ("- - - - 0", ("OK", "OK", "ALARM", "OK")),
    ("- - - X -", ("ALARM", KEEP, "ALARM", "OK")),
]
CELLS = [
    pytest.param(m, points, treat, expected, id=f"{m}of3[{points}]-{treat}")
    for m, table in ((3, THREE_OF_THREE), (2, TWO_OF_THREE))
    for points, row in table
    for treat, expected in zip(TREATMENTS, row, strict=True)
]


def datapoints(text: str) -> list[bool | None]:
    return [{"0": False, "X": True, "-": None}[mark] for mark in text.split()]


def state(text: str, *, m: int, n: int = 3, treat: str = "missing") -> str:
    verdict = judge(datapoints(text), evaluation_periods=n, datapoints_to_alarm=m, treat_missing_data=treat)
    return KEEP if verdict.state is None else verdict.state


def test_the_tables_cover_all_40_cells() -> None:
    assert len(CELLS) == 40


@pytest.mark.parametrize(("m", "points", "treat", "expected"), CELLS)
def test_each_cell_of_the_missing_data_tables(m: int, points: str, treat: str, expected: str) -> None:
    assert state(points, m=m, treat=treat) == expected


def test_the_evaluation_range_of_three_evaluation_periods_is_five() -> None:
    # "CloudWatch retrieves the 5 most recent data points ... 5 is the evaluation range"
    assert evaluation_range(3) == 5
    assert all(evaluation_range(n) > n for n in range(1, 30))


def test_a_non_breaching_point_leaving_the_range_lets_missing_breaching_data_alarm() -> None:
    # Table 1, row 2: "the alarm stays OK even if missing data is treated as breaching ... The next
    # time this alarm is evaluated, if the data is still missing it will go to ALARM, as that
    # non-breaching data point will no longer be in the evaluation range."
    assert state("0 - - - -", m=3, treat="breaching") == "OK"
    assert state("- - - - -", m=3, treat="breaching") == "ALARM"


def test_enough_real_datapoints_make_the_treatment_irrelevant() -> None:
    # Table 1, row 4: "there are 3 real data points to evaluate"; table 2, row 2: "the two oldest
    # data points in the evaluation range are not needed ... so these two older data points are ignored"
    for treat in TREATMENTS:
        assert state("0 X X - X", m=3, treat=treat) == "ALARM"
        assert state("- X X X -", m=3, treat=treat) == "ALARM"
        assert state("X X 0 0 0", m=2, treat=treat) == "OK"


# Two rows of the first table as the guide's 2023 edition had them (awsdocs/amazon-cloudwatch-user-guide,
# doc_source/AlarmThatSendsEmail.md): rows the current edition dropped, kept here as its examples.
EARLIER_EDITION = [
    ("- - - - X", ("INSUFFICIENT_DATA", KEEP, "ALARM", "OK")),
    ("X - - - -", ("ALARM", KEEP, "ALARM", "OK")),
]


@pytest.mark.parametrize(("points", "row"), EARLIER_EDITION, ids=[points for points, _ in EARLIER_EDITION])
def test_the_rows_of_the_earlier_edition(points: str, row: tuple[str, ...]) -> None:
    assert tuple(state(points, m=3, treat=treat) for treat in TREATMENTS) == row


def test_a_recent_lone_breach_does_not_alarm_prematurely() -> None:
    # "the alarm does not go immediately into ALARM state when the data is either - - - - X or
    # - - - X - and Datapoints to Alarm is 3", so "- - - X 0" or "- - X - 0" never alarmed
    for points in ("- - - - X", "- - - X -"):
        assert state(points, m=3) != "ALARM"
        assert state(points, m=3, treat="ignore") == KEEP
    assert state("- - - X 0", m=3) == "OK"
    assert state("- - X - 0", m=3) == "OK"


def test_the_premature_rule_takes_the_oldest_breach_at_least_m_old_with_nothing_below_it() -> None:
    # "If the oldest breaching data point during the evaluation range is at least as old as the
    # value of Datapoints to Alarm, and all of the more recent data points are either breaching or
    # missing, the alarm goes into ALARM state no matter the value of M"
    assert state("X - - - -", m=3) == "ALARM"  # five datapoints old
    assert state("- X - X -", m=3) == "ALARM"
    assert state("- X - 0 -", m=3) == "OK"  # a more recent datapoint is not breaching


def test_an_unknown_treatment_is_refused_naming_the_field() -> None:
    with pytest.raises(ValueError, match="TreatMissingData must be one of"):
        judge([True], evaluation_periods=1, datapoints_to_alarm=1, treat_missing_data="Breaching")


# --- every minute, over the last periods (moto) ------------------------------------------------
MINUTE = timedelta(minutes=1)
START = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


def five_minute_alarm(cloudwatch: CloudWatchClient, name: str = "five-minutes") -> str:
    cloudwatch.put_metric_alarm(
        AlarmName=name,
        Namespace="App",
        MetricName="Errors",
        Statistic="Sum",
        Period=300,
        EvaluationPeriods=1,
        Threshold=0,
        ComparisonOperator="GreaterThanThreshold",
        TreatMissingData="notBreaching",
    )
    # NOTE: AWS starts a new alarm in INSUFFICIENT_DATA; moto in OK.
    cloudwatch.set_alarm_state(AlarmName=name, StateValue="INSUFFICIENT_DATA", StateReason="new")
    return name


def errors(cloudwatch: CloudWatchClient, at: datetime, value: float = 1) -> None:
    cloudwatch.put_metric_data(
        Namespace="App", MetricData=[{"MetricName": "Errors", "Timestamp": at, "Value": value}]
    )


def test_a_five_minute_alarm_is_evaluated_every_minute_not_on_five_minute_buckets(aws: None) -> None:
    # GIVEN a 5-minute alarm and one error at 12:06:30
    cloudwatch = boto3.client("cloudwatch", region_name=REGION)
    evaluator = AlarmEvaluator(cloudwatch, [five_minute_alarm(cloudwatch)])
    assert [c.state for c in evaluator.evaluate(START + 6 * MINUTE)] == ["OK"]
    errors(cloudwatch, START + timedelta(minutes=6, seconds=30))

    # WHEN evaluated at 12:07, the end of the minute the error fell in
    changes = evaluator.evaluate(START + 7 * MINUTE)

    # THEN it alarms at once, on the window 12:02-12:07 (not at 12:10, when the epoch bucket closes)
    assert [c.state for c in changes] == ["ALARM"]
    assert changes[0].reason_data["startDate"].startswith("2026-01-01T12:02:00")
    # ... and, the metric having stopped, stays in ALARM while that datapoint is in the evaluation
    # range (3 windows of 5 minutes: the guide's note on re-evaluating the last datapoints), then
    # OK once every window is missing (treated as not breaching): from 12:22
    assert all(evaluator.evaluate(START + m * MINUTE) == [] for m in range(8, 22))
    assert [c.state for c in evaluator.evaluate(START + 22 * MINUTE)] == ["OK"]


def test_the_new_state_is_stamped_with_the_evaluation_time(aws: None) -> None:
    # GIVEN an evaluator told to stamp state changes (the rehearsal puts its virtual time there)
    cloudwatch = boto3.client("cloudwatch", region_name=REGION)
    stamped: list[tuple[str, datetime]] = []
    evaluator = AlarmEvaluator(
        cloudwatch, [five_minute_alarm(cloudwatch)], stamp=lambda name, at: stamped.append((name, at))
    )
    errors(cloudwatch, START + timedelta(seconds=30))

    change = evaluator.evaluate(START + MINUTE)[0]

    assert stamped == [("five-minutes", START + MINUTE)]
    alarm = cloudwatch.describe_alarms(AlarmNames=["five-minutes"])["MetricAlarms"][0]
    assert alarm["StateValue"] == "ALARM"
    assert json.loads(alarm["StateReasonData"])["queryDate"] == change.reason_data["queryDate"]


def test_an_expression_the_rehearsal_cannot_evaluate_is_a_clear_error_not_a_crash(aws: None) -> None:
    # GIVEN a metric-math alarm on a function the rehearsal does not evaluate (anomaly detection)
    cloudwatch = boto3.client("cloudwatch", region_name=REGION)
    cloudwatch.put_metric_alarm(
        AlarmName="errors-band",
        Metrics=[
            {
                "Id": "m1",
                "MetricStat": {
                    "Metric": {"Namespace": "App", "MetricName": "Errors"},
                    "Period": 60,
                    "Stat": "Sum",
                },
                "ReturnData": False,
            },
            {"Id": "e1", "Expression": "ANOMALY_DETECTION_BAND(m1) * 2", "ReturnData": True},
        ],
        EvaluationPeriods=1,
        Threshold=1,
        ComparisonOperator="GreaterThanThreshold",
    )
    errors(cloudwatch, START + timedelta(seconds=30))

    # WHEN it is evaluated, THEN the error is DeployGuard's (the CLI prints it and exits 2) and names it
    with pytest.raises(DeployGuardError, match="ANOMALY_DETECTION_BAND"):
        AlarmEvaluator(cloudwatch, ["errors-band"]).evaluate(START + MINUTE)
