"""The outcome record (deployguard.outcome/1): its JSON Schema, the log lines validated against it,
and the promise that no secret value leaves the process in a log line, a metric or an alert."""

from __future__ import annotations

import json
import logging
import string
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import jsonschema  # type: ignore[import-untyped]
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from deployguard.appspec import DeploymentTarget
from deployguard.findings import CheckResult, Decision, Finding, Result, Severity
from deployguard.hook import Evaluation, HookRun, guard_lifecycle_event
from deployguard.outcome import (
    SCHEMA_VERSION,
    Bypassed,
    OutcomeRecord,
    Role,
)
from deployguard.schema import outcome_record_schema, parse_outcome, render
from deployguard.secrets import Redactor, is_reference
from tests.support.outcomes import (
    FakeCodeDeploy,
    RecordingPublisher,
    captured_output,
    emf_lines,
    outcome_lines,
    rollback_record,
)

ROOT = Path(__file__).resolve().parents[2]
SCHEMA_FILE = ROOT / "docs" / "outcome-record.schema.json"
EVENT = {"DeploymentId": "d-ABCDEF123", "LifecycleEventHookExecutionId": "exec-1"}
TARGET = DeploymentTarget(function_name="orders", alias="live", current_version="1", target_version="2")


def validator() -> Any:
    return jsonschema.Draft202012Validator(outcome_record_schema())


def run_guard(
    evaluate: Callable[[HookRun], Evaluation],
    *,
    codedeploy: FakeCodeDeploy | None = None,
    alerts: RecordingPublisher | None = None,
    event: dict[str, str] | None = None,
) -> tuple[OutcomeRecord, str]:
    fake = codedeploy or FakeCodeDeploy()
    with captured_output() as out:
        record = guard_lifecycle_event(
            EVENT if event is None else event,
            hook="BeforeAllowTraffic",
            role=Role.PRE_TRAFFIC,
            stage="prod",
            codedeploy=fake,
            evaluate=evaluate,
            remaining_ms=lambda: 60_000,
            reserve_seconds=1,
            alerts=alerts,
        )
    return record, out.getvalue()


def failing(run: HookRun) -> Evaluation:
    return Evaluation(
        checks=[
            CheckResult(name="policy", result=Result.PASSED, message="guarded by functions.orders"),
            CheckResult(
                name="config",
                result=Result.FAILED,
                duration_ms=12.5,
                message="1 error(s), 1 warning(s)",
                findings=[
                    Finding(
                        code="CFG002", severity=Severity.ERROR, subject="STAGE", message="STAGE is 'dev'"
                    ),
                    Finding(
                        code="DRF004", severity=Severity.WARNING, subject="MemorySize", message="128 -> 256"
                    ),
                ],
            ),
            CheckResult(name="smoke:quote", result=Result.SKIPPED, message="skipped: configuration failed"),
        ],
        target=TARGET,
    )


def passing(run: HookRun) -> Evaluation:
    return Evaluation(checks=[CheckResult(name="config", result=Result.PASSED)], target=TARGET)


def bypassed(run: HookRun) -> Evaluation:
    return Evaluation(
        checks=[CheckResult(name="policy", result=Result.PASSED)],
        target=TARGET,
        bypass=Bypassed(reason="hot fix while the alarm fires", approved_by="oncall"),
    )


def crashing(run: HookRun) -> Evaluation:
    raise RuntimeError("a bug")


# --- the schema ---------------------------------------------------------------------------------


def test_the_committed_schema_is_the_generated_one() -> None:
    assert SCHEMA_FILE.read_text() == render(), (
        "docs/outcome-record.schema.json is stale: run "
        "`.venv/bin/python -m deployguard.schema > docs/outcome-record.schema.json`"
    )


def test_the_schema_is_a_valid_json_schema_for_this_version() -> None:
    schema = outcome_record_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    assert schema["properties"]["schema_version"]["const"] == SCHEMA_VERSION
    issue_fields = {
        "deployment_id",
        "function_name",
        "alias",
        "current_version",
        "target_version",
        "stage",
        "hook",
        "checks",
        "decision",
        "actions",
        "started_at",
        "finished_at",
        "duration_ms",
        "alarm_to_restore_ms",
    }
    assert issue_fields <= set(schema["properties"])
    # null fields may be absent from a log line (Powertools drops them); the rest is always there
    assert set(schema["required"]) == {
        "schema_version",
        "record_type",
        "role",
        "reason",
        "checks",
        "actions",
        "started_at",
        "rolled_back",
    }
    check = schema["$defs"]["CheckRecord"]
    assert {"code", "name", "result", "duration_ms", "message", "findings"} <= set(check["required"])


@pytest.mark.parametrize(
    ("evaluate", "event", "already"),
    [
        (failing, None, None),
        (passing, None, None),
        (bypassed, None, None),
        (crashing, None, None),
        (passing, None, "Succeeded"),
        (passing, {"DeploymentId": "d-ABCDEF123"}, None),
    ],
    ids=["failed", "succeeded", "bypassed", "crashed", "already-reported", "malformed-event"],
)
def test_every_logged_record_is_valid_against_the_schema(
    evaluate: Callable[[HookRun], Evaluation], event: dict[str, str] | None, already: str | None
) -> None:
    _, output = run_guard(evaluate, codedeploy=FakeCodeDeploy(already=already), event=event)

    (line,) = outcome_lines(output)
    validator().validate(line)  # the whole log line: the record's keys plus Powertools' own
    assert parse_outcome(line).document() == {k: line.get(k) for k in outcome_record_schema()["properties"]}


def test_a_rollback_record_with_every_field_set_is_valid() -> None:
    record = rollback_record(
        decision=Decision.FAILED, reason="orders-errors went to ALARM", alarm_to_restore_ms=850.0
    ).finish()
    document = record.document()

    validator().validate(document)
    assert document["rolled_back"] is True
    assert parse_outcome(document) == record


def test_checks_written_through_replace_still_carry_their_code() -> None:
    """Callers update records with dataclasses.replace: the code is added when written."""
    record = replace(
        OutcomeRecord(role=Role.CLI), checks=[CheckResult(name="smoke:quote", result=Result.FAILED)]
    )

    document = record.document()

    assert document["checks"][0]["code"] == "smoke"
    validator().validate(document)


def test_no_record_field_collides_with_a_logging_or_powertools_key() -> None:
    """Logger.info(extra=record) raises on LogRecord attributes and would hide Powertools' keys."""
    reserved = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}
    powertools = {
        "level",
        "location",
        "timestamp",
        "service",
        "sampling_rate",
        "xray_trace_id",
        "cold_start",
        "function_memory_size",
        "function_arn",
        "function_request_id",
        "correlation_id",
    }
    # NOTE: function_name deliberately overrides the hook's own name: in an outcome line it is the
    # guarded function (the hook is still named by function_arn).
    assert not set(outcome_record_schema()["properties"]) & (reserved | powertools)


# --- secrets never leave ------------------------------------------------------------------------

SECRET_NAMES = ["DB_PASSWORD", "STRIPE_API_KEY", "GITHUB_TOKEN", "JWT_SECRET"]
secret_values = st.text(
    alphabet=string.ascii_letters + string.digits + string.punctuation + " \n\t\u00e9\u20ac\u00df",
    min_size=10,
    max_size=40,
).filter(lambda s: any(c.isalpha() and c not in "eTZ" for c in s))


def forms(secret: str) -> list[str]:
    """The secret as written, and as any JSON encoder could escape it."""
    return [secret, json.dumps(secret)[1:-1], json.dumps(secret, ensure_ascii=False)[1:-1]]


def leaky(secret: str, variable: str) -> Callable[[HookRun], Evaluation]:
    """Checks whose messages quote the secret, as a careless check could."""

    def evaluate(run: HookRun) -> Evaluation:
        return Evaluation(
            checks=[
                CheckResult(
                    name="config",
                    result=Result.FAILED,
                    message=f"connection refused with {secret}",
                    findings=[
                        Finding(
                            code="SEC002",
                            severity=Severity.ERROR,
                            subject=variable,
                            message=f"{variable}={secret}",
                        )
                    ],
                ),
                CheckResult(name="smoke:quote", result=Result.ERROR, message=f"the answer echoed '{secret}'"),
            ],
            target=TARGET,
            redactor=Redactor.for_environment({variable: secret, "STAGE": "prod"}),
        )

    return evaluate


def everything_written(secret: str, variable: str) -> tuple[str, str, str]:
    publisher = RecordingPublisher()
    _, output = run_guard(leaky(secret, variable), alerts=publisher)
    (alert,) = publisher.alerts
    log = "\n".join(json.dumps(line) for line in outcome_lines(output))
    metrics = "\n".join(json.dumps(line) for line in emf_lines(output))
    sns = "\n".join([alert.subject, alert.message, json.dumps(alert.attributes)])
    return log, metrics, sns


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(secret=secret_values, variable=st.sampled_from(SECRET_NAMES))
def test_a_secret_in_a_check_message_never_reaches_a_log_line_a_metric_or_an_alert(
    secret: str, variable: str
) -> None:
    assume(not is_reference(secret))  # a pointer (an SSM name, an ARN) is not a secret value
    baseline = "\n".join(everything_written("PLACEHOLDER-0", variable))
    assume(not any(form in baseline for form in forms(secret)))  # e.g. a value equal to a key name

    log, metrics, sns = everything_written(secret, variable)

    for form in forms(secret):
        assert form not in log
        assert form not in metrics
        assert form not in sns
    assert "***" in log and "***" in sns


def test_a_long_reason_is_clipped_after_redaction_so_no_secret_is_cut_in_half() -> None:
    secret = "s3cr3t-Value-" + "x" * 20
    checks = [
        CheckResult(name=f"smoke:c{i}", result=Result.FAILED, message="m" * 90 + secret) for i in range(30)
    ]

    record, _ = run_guard(
        lambda run: Evaluation(
            checks=checks, target=TARGET, redactor=Redactor.for_environment({"DB_PASSWORD": secret})
        )
    )

    assert len(record.reason) <= 2000
    assert secret[:12] not in record.reason


def test_a_failed_outcome_is_a_warning_so_a_quieter_log_level_keeps_it() -> None:
    _, failed_output = run_guard(failing)
    _, passed_output = run_guard(passing)

    assert [line["level"] for line in outcome_lines(failed_output)] == ["WARNING"]
    assert [line["level"] for line in outcome_lines(passed_output)] == ["INFO"]
