"""Nothing leaks, nothing forged, without AWS: generated secrets of every kind at any offset of an
error, an AWS error message, a check's message or a failed alert, through the hook protocol and the
record path, leave no 8-character piece in any output (log lines and the crash log with its
traceback, EMF, the hook's return value, the alert, an error's text); and text a function wrote
cannot drive the terminal the CLI prints to.

The same property through the real hooks on moto and the CLI: tests/integration/test_no_leaks.py.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import replace

import pytest
from botocore.exceptions import ClientError
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from deployguard.aws.errors import AWS_MESSAGE_MAX, aws_call
from deployguard.entrypoints import summary
from deployguard.errors import DeployGuardError
from deployguard.findings import CheckResult, Decision, Finding, Result, Severity
from deployguard.hook import Evaluation, HookRun
from deployguard.notify import MAX_LINE, alert_for
from deployguard.observability import finish_record
from deployguard.outcome import TEXT_MAX, Action, ActionKind, OutcomeRecord, Role
from deployguard.redaction import RedactedError, redacting
from deployguard.secrets import Redactor
from deployguard_cli.main import main
from deployguard_cli.render import print_record, record_lines, terminal_safe
from deployguard_cli.report import build_report, render_report
from tests.support.outcomes import FakeCodeDeploy, RecordingPublisher, captured_output, guard_event
from tests.support.secrets import (
    SEPARATORS,
    Planted,
    assert_no_piece,
    messages,
    place,
    planted,
)

EXAMPLES = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
ENVIRONMENT = {"STAGE": "prod", "REGION": "us-east-1", "TABLE_NAME": "orders-OrdersTable-1A2B3C4D5E6F7"}


def clear_of(secret: str, *outputs: object) -> bool:
    """No piece of the secret is ordinary text of ``outputs`` (it would 'leak' with no secret around)."""
    try:
        assert_no_piece(secret, *outputs)
    except AssertionError:
        return False
    return True


def redactor_of(secret: Planted) -> Redactor:
    return Redactor.for_environment({**ENVIRONMENT, **secret.environment})


def client_error(message: str) -> ClientError:
    return ClientError({"Error": {"Code": "ValidationException", "Message": message}}, "DescribeParameters")


def raise_aws_error(message: str) -> None:
    with aws_call("DescribeParameters"):
        raise client_error(message)


# A placeholder in place of the secret: what the same run writes anyway (timestamps, source lines
# of a traceback, words of the message), so a 'leak' of ordinary text is told from a real one.
PLACEHOLDER = "<the secret>"


def hook_outputs(fail: Callable[[str], None], text: str, redactor: Redactor) -> tuple[str, list[object]]:
    """The hook protocol on a check that calls ``fail(text)``: everything it wrote (log lines, the
    crash log, EMF), and its return value and alerts."""
    publisher = RecordingPublisher()

    def evaluate(_run: HookRun) -> Evaluation:
        fail(text)
        raise AssertionError("fail() returned")

    with captured_output() as out:
        record = guard_event(evaluate, FakeCodeDeploy(), alerts=publisher)
    assert record.decision is Decision.FAILED
    alerts = [(a.subject, a.message, a.attributes) for a in publisher.alerts]
    return out.getvalue(), [summary(record), alerts]


# --- the hook's error paths ------------------------------------------------------------------------


@EXAMPLES
@given(
    secret=planted(),
    message=messages,
    at=st.integers(0, 3000),
    separators=st.tuples(SEPARATORS, SEPARATORS),
    error=st.sampled_from(["bug", "AWS error"]),
)
def test_an_error_after_the_redactor_was_built_leaves_no_piece_in_any_output(
    secret: Planted, message: str, at: int, separators: tuple[str, str], error: str
) -> None:
    # GIVEN a check that fails, after the invocation's redactor was built, with the secret in its text
    redactor = redactor_of(secret)

    def fail(text: str) -> None:
        with redacting(redactor):
            if error == "bug":
                raise ValueError(text)  # e.g. urlsplit quoting a netloc
            raise_aws_error(text)  # e.g. a ValidationException echoing a value

    assume(
        clear_of(secret.secret, *hook_outputs(fail, place(message, PLACEHOLDER, at, *separators), redactor))
    )

    # WHEN the hook runs it
    written, returned = hook_outputs(fail, place(message, secret.value, at, *separators), redactor)

    # THEN no output holds a piece of the secret: not the log line, not the crash log and its
    # traceback, not EMF, not the return value, not the alert
    assert ("hook check crashed" in written) == (error == "bug")
    assert_no_piece(secret.secret, written, returned)


@EXAMPLES
@given(secret=planted(known=False), message=messages, at=st.integers(0, 3000))
def test_a_crash_before_any_environment_was_read_is_redacted_with_the_formats(
    secret: Planted, message: str, at: int
) -> None:
    # GIVEN a bug before the use case could build its redactor (the formats-only fallback)
    def fail(text: str) -> None:
        raise RuntimeError(text)

    assume(
        clear_of(secret.secret, *hook_outputs(fail, place(message, PLACEHOLDER, at, " ", " "), Redactor()))
    )

    written, returned = hook_outputs(fail, place(message, secret.value, at, " ", " "), Redactor())

    # THEN the crash log carries the type and a redacted traceback, never the raw one
    (crash,) = [json.loads(line) for line in written.splitlines() if "hook check crashed" in line]
    assert crash["error_type"] == "RuntimeError" and "Traceback" in crash["traceback"]
    assert "exception" not in crash  # no raw exc_info formatted by the logger
    assert_no_piece(secret.secret, written, returned)


def test_a_redacted_error_keeps_the_name_and_the_code_of_the_error_it_replaces() -> None:
    redactor = Redactor.for_environment({"DB_PASSWORD": "vQ7#pL2x!Zr9"})

    try:
        with redacting(redactor):
            raise_aws_error("value 'vQ7#pL2x!Zr9' at 'name' failed to satisfy constraint")
    except RedactedError as exc:
        error = exc

    assert (error.error_type, error.code, error.crashed) == ("AwsCallError", "AWS", False)
    assert (
        str(error)
        == "DescribeParameters failed with ValidationException: value '***' at 'name' failed to satisfy constraint"
    )
    assert error.__cause__ is None and error.__suppress_context__  # no traceback shows the original


# --- redact first, then clip ----------------------------------------------------------------------


@EXAMPLES
@given(secret=planted(known=False), message=messages, at=st.integers(0, 600))
def test_an_aws_error_message_is_redacted_before_it_is_bounded(
    secret: Planted, message: str, at: int
) -> None:
    # GIVEN an AWS error message quoting a secret anywhere, across the old 300-character cut too
    def error_of(value: str) -> str:
        try:
            raise_aws_error(place(message, value, at, " ", " "))
        except DeployGuardError as exc:
            return str(exc)
        raise AssertionError("no error")

    assume(clear_of(secret.secret, error_of(PLACEHOLDER)))

    assert_no_piece(secret.secret, error_of(secret.value))


def test_an_aws_error_message_is_kept_whole_up_to_its_bound() -> None:
    long = "x " * 5000

    try:
        raise_aws_error(long)
    except DeployGuardError as exc:
        error = str(exc)

    assert len(error) < AWS_MESSAGE_MAX + 100 and error.endswith("...")
    assert "x " * 1000 in error  # not clipped at 300 any more: the record clips, after redacting


def record_with(text: str) -> OutcomeRecord:
    check = CheckResult(
        name="smoke:quote",
        result=Result.FAILED,
        message=text,
        findings=[Finding(code="SMK001", severity=Severity.ERROR, subject="quote", message=text)],
    )
    return OutcomeRecord(
        role=Role.PRE_TRAFFIC,
        hook="BeforeAllowTraffic",
        stage="prod",
        deployment_id="d-ABCDEF123",
        function_name="orders",
        decision=Decision.FAILED,
        reason=f"smoke:quote: {text}",
        checks=[check],
        actions=[Action(kind=ActionKind.STATUS_REPORTED, detail="Failed")],
    )


@EXAMPLES
@given(secret=planted(), cut=st.sampled_from([MAX_LINE, TEXT_MAX, 600]), shift=st.integers(-60, 10))
def test_a_secret_across_any_clip_of_the_record_or_the_alert_leaves_no_piece(
    secret: Planted, cut: int, shift: int
) -> None:
    # GIVEN a message whose secret straddles one of the record's or the alert's clips
    # (NOTE: after a space: JWTs and AWS key ids match where a word starts)
    padding = "the order failed " * 200
    at = max(cut + shift, 0)
    redactor = redactor_of(secret)

    def outputs(value: str) -> tuple[OutcomeRecord, list[str]]:
        # WHEN the record is redacted and clipped, and the alert made from a record as it is
        record = record_with(padding[:at] + " " + value + " " + padding)
        redacted, alert = record.redacted(redactor), alert_for(record, redactor=redactor)
        assert alert is not None
        return redacted, [json.dumps(redacted.document()), alert.subject, alert.message]

    assume(clear_of(secret.secret, outputs(PLACEHOLDER)[1]))
    redacted, written = outputs(secret.value)

    # THEN every field is within its bound and holds no piece of the secret
    assert all(len(c.message) <= TEXT_MAX for c in redacted.checks) and len(redacted.reason) <= TEXT_MAX
    assert_no_piece(secret.secret, written)


@EXAMPLES
@given(secret=planted(), message=messages, at=st.integers(0, 600))
def test_an_alert_that_cannot_be_published_is_logged_without_the_secret_its_error_quotes(
    secret: Planted, message: str, at: int
) -> None:
    redactor = redactor_of(secret)

    def logged(value: str) -> str:
        publisher = RecordingPublisher(error=RuntimeError(place(message, value, at, " ", " ")))
        with captured_output() as out:
            finish_record(record_with("smoke failed"), redactor, alerts=publisher)
        assert "outcome alert not published" in out.getvalue()
        return out.getvalue()

    assume(clear_of(secret.secret, logged(PLACEHOLDER)))

    assert_no_piece(secret.secret, logged(secret.value))


# --- the terminal ------------------------------------------------------------------------------------

FORGED = "boom \x1b]0;pwned\x07\x1b[2J\x1b[1;1H[PASS] all good\r\n\x9b31m\u202eevil"


def forged_record() -> OutcomeRecord:
    record = record_with(FORGED)
    return replace(
        record, checks=[*record.checks, CheckResult(name="smoke:esc", result=Result.ERROR, message=FORGED)]
    )


def assert_inert(text: str) -> None:
    """No control character survives; each is shown escaped, visibly."""
    assert not any((ord(c) < 0x20 and c != "\n") or 0x7F <= ord(c) <= 0x9F or c == "\u202e" for c in text), (
        repr(text)
    )
    assert "\\x1b]0;pwned\\x07" in text and "\\x1b[2J" in text


def test_terminal_safe_escapes_every_control_sequence_visibly() -> None:
    assert terminal_safe(FORGED) == (
        "boom \\x1b]0;pwned\\x07\\x1b[2J\\x1b[1;1H[PASS] all good\\r\\n\\x9b31m\\u202eevil"
    )
    assert terminal_safe("plain text, unicode é ✔ and tabs stay readable") == (
        "plain text, unicode é ✔ and tabs stay readable"
    )


def test_a_record_printed_by_check_or_rollback_cannot_drive_the_terminal() -> None:
    out = io.StringIO()
    with redirect_stdout(out):
        print_record(forged_record())

    assert_inert(out.getvalue())
    assert all("\n" not in line for line in record_lines(forged_record()))


def test_a_report_printed_by_report_or_the_rehearsal_cannot_drive_the_terminal() -> None:
    text = render_report(build_report([forged_record()]))

    assert_inert(text)
    assert not any(line.lstrip().startswith("[PASS] all good") for line in text.splitlines())


def test_an_error_printed_by_the_cli_cannot_drive_the_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    # a client is made, never called
    for name, value in {
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "x",
        "AWS_SECRET_ACCESS_KEY": "x",
    }.items():
        monkeypatch.setenv(name, value)
    err = io.StringIO()
    # a deployment id the report refuses: its error quotes what it was given, escapes and all
    with redirect_stderr(err), redirect_stdout(io.StringIO()):
        code = main(["report", FORGED, "--log-group", "/aws/lambda/CodeDeployHook_deployguard-prod-pre"])

    assert code == 2
    assert_inert(err.getvalue())
