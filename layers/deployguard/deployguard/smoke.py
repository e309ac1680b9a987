"""Smoke tests: invoke the new version (or the live alias) and check its answers and latency.

Cases run concurrently on a bounded pool; each has its own timeout, and the whole run stops at
the hook's deadline. The run returns at once then: it never waits for a case still stuck in its
invocation (the caller's invoke client bounds how long that thread lives: its read timeout). An
invocation is always marked synthetic (see ``aws.lambda_functions``).

What the function answered is quoted into findings redacted first, then clipped (a clip must never
split a secret the redactor would have found whole); without the invocation's redactor the quote is
kept whole, for the record to redact and clip.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import TYPE_CHECKING, Any

from deployguard.deadlines import in_context
from deployguard.errors import DeployGuardError
from deployguard.findings import CheckResult, Finding, Result, Severity
from deployguard.jsonpath import MISSING, find
from deployguard.patterns import MAX_MATCHED_CHARS, search
from deployguard.records import datarecord
from deployguard.snapshot import InvocationResult

if TYPE_CHECKING:
    from deployguard.policy import Expectation, SmokeCase
    from deployguard.secrets import Redactor

Invoker = Callable[[bytes], InvocationResult]
"""Invokes one fixed function qualifier (a version or an alias) synchronously with a payload."""

_SHOWN = 80
ERROR_MESSAGE_SHOWN = 200
MAX_SMOKE_CONCURRENCY = 64
"""The most cases a policy may run at once (``smoke_concurrency``); the invoke client's pool holds as many."""
DEFAULT_SMOKE_CONCURRENCY = 32
"""Without ``smoke_concurrency``, every case at once, up to this many."""


def smoke_workers(cases: int, concurrency: int | None) -> int:
    """How many cases run at once: the policy's ``smoke_concurrency``, or all of them (at most
    DEFAULT_SMOKE_CONCURRENCY); never more than there are cases, never 0."""
    limit = concurrency if concurrency is not None else DEFAULT_SMOKE_CONCURRENCY
    return max(1, min(limit, cases))


def _quote(text: str, limit: int, redactor: Redactor | None) -> str:
    """Function output as a finding quotes it: redacted, then clipped to ``limit``."""
    return redactor.clip(text, limit) if redactor is not None else text


def _show(value: Any, redactor: Redactor | None = None) -> str:
    return _quote(json.dumps(value, sort_keys=True), _SHOWN, redactor)


def json_kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def json_equal(left: Any, right: Any) -> bool:
    """JSON equality: 12 equals 12.0, but never "12", true or "12.00"."""
    if json_kind(left) != json_kind(right):
        return False
    if isinstance(left, dict):
        return left.keys() == right.keys() and all(json_equal(left[k], right[k]) for k in left)
    if isinstance(left, list):
        return len(left) == len(right) and all(json_equal(a, b) for a, b in zip(left, right, strict=True))
    return bool(left == right)


def _matches_type(value: Any, expected: str) -> bool:
    if expected == "integer":
        return json_kind(value) == "number" and float(value).is_integer()
    return json_kind(value) == expected


def check_expectation(answer: Any, expectation: Expectation, redactor: Redactor | None = None) -> str | None:
    """None when the answer meets the expectation, else what is wrong and how it differs (the
    answer's values quoted through ``redactor``)."""

    def show(value: Any) -> str:
        return _show(value, redactor)

    path = expectation.path
    value = find(answer, path)
    fields = expectation.model_fields_set
    if value is MISSING:
        if "exists" in fields and expectation.exists is False:
            return None
        return f"{path} is missing from the answer"
    if "exists" in fields and expectation.exists is False:
        return f"{path} should not be in the answer but is {show(value)}"
    if "equals" in fields and not json_equal(value, expectation.equals):
        expected = expectation.equals
        if json_kind(value) != json_kind(expected):
            return (
                f"{path} is the {json_kind(value)} {show(value)} but the {json_kind(expected)} "
                f"{show(expected)} was expected: return a {json_kind(expected)}, not a {json_kind(value)}"
            )
        return f"{path} is {show(value)} but {show(expected)} was expected"
    if expectation.type is not None and not _matches_type(value, expectation.type):
        return f"{path} is the {json_kind(value)} {show(value)} but a(n) {expectation.type} was expected"
    if expectation.regex is not None:
        if not isinstance(value, str):
            return f"{path} is the {json_kind(value)} {show(value)}; the pattern needs a string"
        if len(value) > MAX_MATCHED_CHARS:
            # NOTE: fail rather than match a prefix: '$' would match at the cut, and a check
            # that read part of the answer must not pass it.
            return (
                f"{path} is a string of {len(value):,} characters; a regex expectation reads at most "
                f"{MAX_MATCHED_CHARS:,}: expect on a shorter field, or use 'equals' or 'type'"
            )
        if not search(expectation.regex, value):
            return f"{path} is {show(value)}, which does not match '{expectation.regex}'"
    return None


def evaluate(case: SmokeCase, result: InvocationResult, redactor: Redactor | None = None) -> list[Finding]:
    """Everything wrong with one invocation's result (what it quotes redacted with ``redactor``)."""
    problems: list[str] = []
    answer: Any = MISSING
    try:
        answer = json.loads(result.payload) if result.payload else None
    except ValueError:
        problems.append("the answer is not JSON")
    if result.function_error and not case.allow_function_error:
        error = answer if isinstance(answer, dict) else {}
        kind = error.get("errorType", result.function_error)
        message = _quote(str(error.get("errorMessage", "")), ERROR_MESSAGE_SHOWN, redactor)
        problems.append(f"the function raised {kind}: {message}".rstrip(": "))
    elif answer is not MISSING:
        problems += [p for e in case.expect if (p := check_expectation(answer, e, redactor)) is not None]
    if case.max_latency_ms is not None and result.latency_ms > case.max_latency_ms:
        problems.append(f"took {result.latency_ms:.0f} ms; the budget is {case.max_latency_ms} ms")
    return [Finding(code="SMK001", severity=Severity.ERROR, subject=case.name, message=p) for p in problems]


def case_payload(case: SmokeCase) -> bytes:
    if case.payload_file is not None:
        raise DeployGuardError(
            f"smoke case {case.name}: payload_file {case.payload_file} was not inlined; publish the policy "
            "with `deployguard policy publish`, which inlines payload files"
        )
    return json.dumps(case.payload if case.payload is not None else {}).encode()


def run_smoke(
    cases: list[SmokeCase],
    invoker: Invoker,
    *,
    concurrency: int | None,
    deadline: float | None = None,
    redactor: Redactor | None = None,
) -> list[CheckResult]:
    """Run every case; one CheckResult per case, in the policy's order. Never raises for a case.

    ``concurrency``: how many cases run at once (None: all of them, up to
    DEFAULT_SMOKE_CONCURRENCY). ``deadline`` is a ``time.monotonic()`` instant after which
    unfinished cases fail. Returns as soon as every case has an answer or has timed out, without
    waiting for stuck invocations.
    """

    def job(case: SmokeCase) -> BoundedJob:
        def run() -> CheckResult:
            begin = time.perf_counter()
            try:
                result = invoker(case_payload(case))
            except DeployGuardError as exc:
                return CheckResult(
                    name=f"smoke:{case.name}", result=Result.ERROR, message=str(exc), duration_ms=_ms(begin)
                )
            findings = evaluate(case, result, redactor)
            return CheckResult(
                name=f"smoke:{case.name}",
                result=Result.FAILED if findings else Result.PASSED,
                duration_ms=_ms(begin),
                message="; ".join(f.message for f in findings) or f"answered in {result.latency_ms:.0f} ms",
                findings=findings,
            )

        return BoundedJob(
            check_name=f"smoke:{case.name}",
            subject=case.name,
            timeout_ms=case.timeout_ms,
            timeout_code="SMK002",
            timeout_owner="the case's",
            run=run,
        )

    return run_bounded([job(c) for c in cases], concurrency=concurrency, deadline=deadline)


@datarecord
class BoundedJob:
    """One invocation-backed check run by :func:`run_bounded`: ``run`` never raises for the check's
    own failures; a job without an answer within ``timeout_ms`` (or by the deadline) fails with
    ``timeout_code``."""

    check_name: str
    subject: str
    timeout_ms: int
    timeout_code: str
    timeout_owner: str  # whose timeout_ms it is, in the message: "the case's", "the check's"
    run: Callable[[], CheckResult]


def run_bounded(
    jobs: Sequence[BoundedJob], *, concurrency: int | None, deadline: float | None = None
) -> list[CheckResult]:
    """Run ``jobs`` on a bounded pool (smoke cases, custom checks); one CheckResult per job, in order.
    Returns as soon as every job has an answer or has timed out, without waiting for stuck ones."""
    if not jobs:
        return []
    started: dict[int, float] = {}
    lock = threading.Lock()

    def run(index: int, job: BoundedJob) -> CheckResult:
        with lock:
            started[index] = time.monotonic()
        return job.run()

    results: dict[int, CheckResult] = {}
    pool = ThreadPoolExecutor(max_workers=smoke_workers(len(jobs), concurrency), thread_name_prefix="smoke")
    futures: dict[Future[CheckResult], int] = {
        pool.submit(in_context(run), i, j): i for i, j in enumerate(jobs)
    }
    pending = set(futures)
    try:
        while pending:
            done, pending = wait(pending, timeout=0.02, return_when=FIRST_COMPLETED)
            for future in done:
                results[futures[future]] = future.result()
            now = time.monotonic()
            for future in list(pending):
                index = futures[future]
                job = jobs[index]
                with lock:
                    began = started.get(index)
                timed_out = began is not None and now - began > job.timeout_ms / 1000
                if timed_out or (deadline is not None and now >= deadline):
                    pending.discard(future)
                    future.cancel()
                    reason = (
                        f"no answer within {job.timeout_ms} ms ({job.timeout_owner} timeout_ms)"
                        if timed_out
                        else "not finished when the hook had to report (hook deadline)"
                    )
                    results[index] = CheckResult(
                        name=job.check_name,
                        result=Result.FAILED,
                        message=reason,
                        duration_ms=(now - began) * 1000 if began else 0.0,
                        findings=[
                            Finding(
                                code=job.timeout_code,
                                severity=Severity.ERROR,
                                subject=job.subject,
                                message=reason,
                            )
                        ],
                    )
    finally:
        # NOTE: no wait (and no `with`, which waits): a job stuck in its invocation is already
        # reported; its thread ends when the invoke client's read timeout does.
        pool.shutdown(wait=False, cancel_futures=True)
    return [results[i] for i in range(len(jobs))]


def _ms(begin: float) -> float:
    return (time.perf_counter() - begin) * 1000
