"""``build_report`` / ``render_report`` without AWS (what the rehearsal prints), and reading records
back from log lines as CloudWatch holds them."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from deployguard.findings import CheckResult, Decision, Finding, Result, Severity
from deployguard.observability import record_outcome
from deployguard.outcome import Action, ActionKind, OutcomeRecord, Role
from deployguard.schema import parse_outcome
from deployguard_cli.report import (
    OutcomeLogs,
    ReportError,
    build_report,
    filter_pattern,
    parse_record,
    render_report,
)
from tests.support.outcomes import captured_output, outcome_lines, rollback_record

T0 = datetime(2026, 11, 28, 9, 0, tzinfo=UTC)
DEPLOYMENT = "d-ABCDEF123"


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def hook_record(
    hook: str, decision: Decision, start: float, checks: list[CheckResult], **extra: Any
) -> OutcomeRecord:
    role = Role.PRE_TRAFFIC if hook == "BeforeAllowTraffic" else Role.POST_TRAFFIC
    return parse_outcome(
        {
            "role": role,
            "hook": hook,
            "stage": "prod",
            "deployment_id": DEPLOYMENT,
            "function_name": "orders",
            "alias": "live",
            "current_version": "1",
            "target_version": "2",
            "decision": decision,
            "checks": checks,
            "actions": [Action(kind=ActionKind.STATUS_REPORTED, detail=decision.value, at=at(start + 1))],
            "started_at": at(start),
            "finished_at": at(start + 1.2),
            "duration_ms": 1200.0,
            **extra,
        }
    )


CONFIG_FAILED = CheckResult(
    name="config",
    result=Result.FAILED,
    duration_ms=40,
    message="1 error(s), 0 warning(s)",
    findings=[
        Finding(
            code="CFG002",
            severity=Severity.ERROR,
            subject="STAGE",
            message="STAGE is 'dev' but this is a prod deployment",
        )
    ],
)
PASSED = [
    CheckResult(name="policy", result=Result.PASSED, message="guarded by functions.orders"),
    CheckResult(name="config", result=Result.PASSED, duration_ms=30, message="configuration ok"),
    CheckResult(name="smoke:quote", result=Result.PASSED, duration_ms=85, message="ok"),
]


def test_a_pre_traffic_failure_tells_what_failed_and_that_no_traffic_moved() -> None:
    record = hook_record(
        "BeforeAllowTraffic",
        Decision.FAILED,
        0,
        [PASSED[0], CONFIG_FAILED, CheckResult(name="smoke:quote", result=Result.SKIPPED, message="skipped")],
        reason="config: 1 error(s), 0 warning(s)",
    )

    report = build_report([record])
    text = render_report(report)

    assert report.outcome == "failed"
    assert report.decision is Decision.FAILED
    assert not report.rolled_back
    assert "no traffic reached version 2" in report.rollback
    assert [e.event for e in report.timeline] == ["started", "decided Failed", "status_reported"]
    assert text.splitlines()[0] == f"Deployment {DEPLOYMENT}: FAILED"
    assert "function  orders, alias live, version 1 -> 2" in text
    assert "why       config: 1 error(s), 0 warning(s)" in text
    assert "            - CFG002 STAGE: STAGE is 'dev' but this is a prod deployment" in text
    assert report.errors == ["CFG002 STAGE: STAGE is 'dev' but this is a prod deployment"]
    assert "[FAIL] config" in text and "error CFG002 STAGE: STAGE is 'dev'" in text
    assert "[skip] smoke:quote" in text and "[PASS] policy" in text


def test_an_alarm_rollback_during_the_bake_is_the_end_of_the_story() -> None:
    pre = hook_record("BeforeAllowTraffic", Decision.SUCCEEDED, 0, PASSED)
    rollback = rollback_record(
        deployment_id=DEPLOYMENT,
        alarm_at=at(300),
        alarm_to_restore_ms=1500,
        actions=[
            Action(kind=ActionKind.DEPLOYMENT_STOPPED, detail=DEPLOYMENT, at=at(301)),
            Action(kind=ActionKind.ALIAS_RESTORED, detail="live -> 1", at=at(301.5)),
        ],
        started_at=at(300.8),
        finished_at=at(301.6),
    )

    report = build_report([rollback, pre])  # any order in, time order out
    text = render_report(report)

    assert report.outcome == "rolled_back" and report.rolled_back
    assert report.rollback == "alias live is back on version 1, 1.5 s after the alarm."
    assert [(e.source, e.event) for e in report.timeline] == [
        ("BeforeAllowTraffic", "started"),
        ("BeforeAllowTraffic", "decided Succeeded"),
        ("BeforeAllowTraffic", "status_reported"),
        ("alarm_rollback", "alarm"),
        ("alarm_rollback", "started"),
        ("alarm_rollback", "no decision"),
        ("alarm_rollback", "deployment_stopped"),
        ("alarm_rollback", "alias_restored"),
    ]
    assert "orders-errors went to ALARM" in text
    assert "action alias_restored done: live -> 1" in text
    assert text.splitlines()[0].endswith("ROLLED BACK")


def test_a_post_traffic_failure_is_rolled_back_by_codedeploy() -> None:
    records = [
        hook_record("BeforeAllowTraffic", Decision.SUCCEEDED, 0, PASSED),
        hook_record(
            "AfterAllowTraffic",
            Decision.FAILED,
            600,
            [CheckResult(name="alarms", result=Result.FAILED, message="orders-errors is in ALARM")],
            reason="alarms: orders-errors is in ALARM",
        ),
    ]

    report = build_report(records)

    assert report.outcome == "rolled_back"
    assert report.reason == "alarms: orders-errors is in ALARM"
    assert report.rollback == "CodeDeploy rolls alias live back to version 1."


def test_a_successful_deployment_and_a_retried_hook() -> None:
    pre = hook_record("BeforeAllowTraffic", Decision.SUCCEEDED, 0, PASSED)
    retry = OutcomeRecord(
        role=Role.PRE_TRAFFIC,
        hook="BeforeAllowTraffic",
        deployment_id=DEPLOYMENT,
        reason="BeforeAllowTraffic of this deployment already has status Succeeded; checks not re-run",
        actions=[Action(kind=ActionKind.STATUS_ALREADY_REPORTED, detail="Succeeded", at=at(60))],
        started_at=at(59),
    )
    post = hook_record("AfterAllowTraffic", Decision.SUCCEEDED, 600, PASSED)

    report = build_report([post, retry, pre, pre])  # the same line read twice counts once

    assert report.outcome == "succeeded"
    assert report.rollback == "nothing rolled back."
    assert len(report.records) == 3
    assert [r.hook for r in report.records] == [
        "BeforeAllowTraffic",
        "BeforeAllowTraffic",
        "AfterAllowTraffic",
    ]
    assert "status_already_reported" in render_report(report)


def test_records_of_other_deployments_are_left_out_and_none_is_an_error() -> None:
    other = replace(
        hook_record("BeforeAllowTraffic", Decision.FAILED, 0, [CONFIG_FAILED]), deployment_id="d-OTHER0000"
    )
    mine = hook_record("BeforeAllowTraffic", Decision.SUCCEEDED, 0, PASSED)

    assert build_report([other, mine], DEPLOYMENT).records == [mine]
    with pytest.raises(ReportError, match="no outcome records for deployment d-NOPE"):
        build_report([other, mine], "d-NOPE")
    with pytest.raises(ReportError):
        build_report([])


def test_the_json_report_round_trips() -> None:
    report = build_report([hook_record("BeforeAllowTraffic", Decision.FAILED, 0, [CONFIG_FAILED])])

    document = json.loads(report.model_dump_json())

    assert document["outcome"] == "failed"
    assert document["records"][0]["checks"][0]["code"] == "config"
    assert document["timeline"][0]["event"] == "started"


# --- reading log lines --------------------------------------------------------------------------


def logged_line(record: OutcomeRecord) -> str:
    with captured_output() as out:
        record_outcome(record)
    (line,) = outcome_lines(out.getvalue())
    return json.dumps(line)


def test_a_logged_line_parses_back_into_the_same_record() -> None:
    record = hook_record("BeforeAllowTraffic", Decision.FAILED, 0, [CONFIG_FAILED])
    line = logged_line(record)

    assert parse_record(line) == record
    assert parse_record(f"2026-11-28T09:00:00.000Z\tabc-123\tINFO\t{line}\n") is not None  # text prefix
    assert parse_record(json.dumps({"level": "INFO", "message": json.loads(line)})) is not None  # Lambda JSON


@pytest.mark.parametrize(
    "message",
    [
        "START RequestId: abc Version: $LATEST",
        '{"_aws": {"CloudWatchMetrics": []}, "Decisions": [1]}',
        '{"record_type": "outcome", "schema_version": "deployguard.outcome/2", "role": "pre_traffic"}',
        '{"record_type": "outcome", "schema_version": "deployguard.outcome/1", "role": "nobody"}',
        "{not json",
    ],
)
def test_other_lines_are_not_records(message: str) -> None:
    assert parse_record(message) is None


def test_the_filter_pattern_selects_one_deployment() -> None:
    assert (
        filter_pattern(DEPLOYMENT) == '{ ($.record_type = "outcome") && ($.deployment_id = "d-ABCDEF123") }'
    )


@dataclass
class PagedLogs:
    """A FilterLogEvents paginator that serves pages, and remembers what it was asked."""

    pages: list[list[str]]
    calls: list[dict[str, Any]] = field(default_factory=list)

    def get_paginator(self, operation: str) -> PagedLogs:
        assert operation == "filter_log_events"
        return self

    def paginate(self, **arguments: Any) -> Iterator[dict[str, Any]]:
        self.calls.append(arguments)
        for page in self.pages:
            yield {"events": [{"message": message} for message in page]}


def test_every_page_of_every_group_is_read() -> None:
    first = logged_line(hook_record("BeforeAllowTraffic", Decision.SUCCEEDED, 0, PASSED))
    second = logged_line(hook_record("AfterAllowTraffic", Decision.SUCCEEDED, 600, PASSED))
    future = json.dumps({**json.loads(second), "schema_version": "deployguard.outcome/2"})
    other = json.dumps({**json.loads(second), "deployment_id": "d-OTHER0000"})
    client = PagedLogs(pages=[[first, "noise"], [other], [second, future]])

    found = OutcomeLogs(client).find(DEPLOYMENT, ["/aws/lambda/a", "/aws/lambda/b"], start_time=T0)  # type: ignore[arg-type]

    assert [r.hook for r in found.records] == ["BeforeAllowTraffic", "AfterAllowTraffic"] * 2
    assert found.unreadable == 2  # the future-version line, once per group
    assert [c["logGroupName"] for c in client.calls] == ["/aws/lambda/a", "/aws/lambda/b"]
    assert client.calls[0]["filterPattern"] == filter_pattern(DEPLOYMENT)
    assert client.calls[0]["startTime"] == int(T0.timestamp() * 1000)


def test_a_deployment_id_that_could_bend_the_filter_pattern_is_refused() -> None:
    with pytest.raises(ReportError, match="not a CodeDeploy deployment id"):
        OutcomeLogs(PagedLogs(pages=[])).find('d-1") || ($.x = "', ["g"])  # type: ignore[arg-type]
