"""Benchmark of the secret redactor (``deployguard.secrets.Redactor``), new against the redactor it
replaced, printed as CPU times and ratios (never asserted in tests: timing is the machine's).

(a) Hostile text, 32 KB and 1 MB: long runs of letters, 'a:', '://', '@', 'eyJ', 'password=', no
    spaces (the goal: 1 MB in 50 ms or less). The old URL-password and JWT patterns backtrack
    quadratically (seconds on 32 KB of letters), so the old side runs in a child process stopped
    after ``OLD_LIMIT_S`` and prints '> limit'.
(b) Text dense with secrets, 1 MB (a URL with a password every 8 characters, a random 24-character
    key every 25, a private key header every 27): here the work is per secret found.
(c) 1 MB of realistic log text with 1,000 known values (about 60 of them quoted in it): the old
    redactor replaces value by value (O(values x text)); the new one runs one RE2 program over
    them all. Building the new redactor (compiling its tries) is printed apart: it is paid once
    per environment, and a Lambda environment holds at most 4 KB (far fewer than 1,000 values).
(d) Hostile text against a known secret, 1 MB: text that repeats most of the secret, so one of its
    8-character pieces occurs at every position. No old figure: the baseline's key formats alone
    run past the limit on such text; the trie matcher this replaced took 270-560 ms here (one
    lookahead per position).

Run from the repository root: .venv/bin/python scripts/bench_redaction.py
"""

from __future__ import annotations

import json
import multiprocessing
import random
import re
import string
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial

from deployguard.secrets import Redactor

RUNS = 3
OLD_LIMIT_S = 20.0
KB32, MB = 32 * 1024, 1024 * 1024


# --- the redactor before this change, kept verbatim as the baseline ----------------------------

BASELINE_KEY_FORMATS: dict[str, re.Pattern[str]] = {
    "AWS access key id": re.compile(r"\b(?:A3T[A-Z0-9]|AKIA|ASIA|ABIA|ACCA)[A-Z2-7]{16}\b"),
    "private key block": re.compile(r"-----BEGIN (?:[A-Z]+ )*PRIVATE KEY(?: BLOCK)?-----"),
    "GitHub token": re.compile(r"\b(?:gh[pousr]_[A-Za-z0-9]{36,}|github_pat_[A-Za-z0-9_]{22,})"),
    "Slack token": re.compile(r"\bxox[abposr]-[A-Za-z0-9-]{10,}"),
    "Stripe key": re.compile(r"\b(?:sk|rk)_(?:live|test)_[A-Za-z0-9]{16,}"),
    "Google API key": re.compile(r"\bAIza[0-9A-Za-z_\-]{35}"),
    "JSON Web Token": re.compile(r"\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}"),
    "password in a URL": re.compile(r"[a-z][a-z0-9+.-]*://[^/\s:@]+:[^/\s@]+@", re.IGNORECASE),
}


@dataclass
class BaselineRedactor:
    """``deployguard.secrets.Redactor`` as it was: every value replaced in turn, then each format."""

    values: set[str] = field(default_factory=set)
    MASK = "***"

    def __call__(self, text: str) -> str:
        for value in sorted(self.values, key=len, reverse=True):
            text = text.replace(value, self.MASK).replace(json.dumps(value)[1:-1], self.MASK)
        for pattern in BASELINE_KEY_FORMATS.values():
            text = pattern.sub(self.MASK, text)
        return text


# --- inputs --------------------------------------------------------------------------------------

HOSTILE: dict[str, str] = {
    "letters, no spaces": "a",
    "'a:' repeated": "a:",
    "'://' repeated": "://",
    "'@' repeated": "@",
    "'a://a:b' repeated": "a://a:b",
    "'eyJ' repeated": "eyJ",
    "'password=' repeated": "password=",
}


# (label, secret, unit of text): text that repeats most of the secret, so its pieces occur at
# every position (a matcher that tries each occurrence costs O(text x secret)).
HOSTILE_KNOWN: tuple[tuple[str, str, str], ...] = (
    ("'a' repeated, secret 'a' x 30 + 'b'", "a" * 30 + "b", "a"),
    ("'a' repeated, secret 'a' x 300 + 'b'", "a" * 300 + "b", "a"),
    ("'ab' repeated, secret 'ab' x 20 + 'c'", "ab" * 20 + "c", "ab"),
    ("the secret itself, space-separated", "s3cr3t-P4ssw0rd!", "s3cr3t-P4ssw0rd! "),
)


def repeated(unit: str, size: int) -> str:
    return (unit * (size // len(unit) + 1))[:size]


def dense_secrets(size: int) -> dict[str, str]:
    rnd = random.Random(7)
    alphabet = string.ascii_letters + string.digits
    keys = " ".join("".join(rnd.choice(alphabet) for _ in range(24)) for _ in range(size // 25 + 1))
    return {
        "a URL password every 8 characters": repeated("a://a:b@", size),
        "a random key every 25": keys[:size],
        "a private key header every 27": repeated("-----BEGIN PRIVATE KEY-----", size),
    }


def realistic(size: int, values: list[str], rnd: random.Random) -> str:
    """Lambda-style log lines (timestamps, request ids, numbers, ARNs); 1 in 100 quotes a value."""
    lines: list[str] = []
    length = 0
    while length < size:
        line = (
            f"2026-11-28T10:{rnd.randint(0, 59):02d}:{rnd.randint(0, 59):02d}.{rnd.randint(0, 999):03d}Z\t"
            f"{uuid.UUID(int=rnd.getrandbits(128))}\tINFO\torder {rnd.randint(1, 99_999)} processed for "
            f"customer c-{rnd.randint(1, 9_999)} in {rnd.random() * 100:.1f} ms by "
            "arn:aws:lambda:us-east-1:123456789012:function:orders-api:live region=us-east-1"
        )
        if rnd.random() < 0.01:
            line += f" retrying with {rnd.choice(values)}"
        lines.append(line)
        length += len(line) + 1
    return "\n".join(lines)[:size]


def known_values(count: int, rnd: random.Random) -> list[str]:
    """Values of the shapes an environment holds: keys, passwords, ids, URLs with credentials."""
    alphanumeric = string.ascii_letters + string.digits

    def token(alphabet: str, length: int) -> str:
        return "".join(rnd.choice(alphabet) for _ in range(length))

    shapes: list[Callable[[int], str]] = [
        lambda _: token(alphanumeric, rnd.randint(20, 48)),
        lambda _: token(alphanumeric + "!#%&+-=?@^_", rnd.randint(10, 24)),
        lambda _: str(uuid.UUID(int=rnd.getrandbits(128))),
        lambda i: f"postgres://app{i}:{token(alphanumeric, 16)}@db{i}.internal.example.com:5432/orders",
        lambda _: token("0123456789abcdef", 40),
    ]
    return [shapes[i % len(shapes)](i) for i in range(count)]


# --- measuring -----------------------------------------------------------------------------------


def best_ms(run: Callable[[], object], runs: int = RUNS) -> float:
    """The best of ``runs``, in CPU time of this process: on a shared machine wall time measures
    the neighbours too."""
    best = float("inf")
    for _ in range(runs):
        started = time.process_time()
        run()
        best = min(best, time.process_time() - started)
    return best * 1000


def _old_in_child(text: str, answer: multiprocessing.Queue[float]) -> None:
    answer.put(best_ms(lambda: BaselineRedactor()(text), runs=1))


def old_ms(text: str) -> float | None:
    """The baseline's time on ``text``, or None when it ran past OLD_LIMIT_S (stopped)."""
    answer: multiprocessing.Queue[float] = multiprocessing.Queue()
    child = multiprocessing.Process(target=_old_in_child, args=(text, answer))
    child.start()
    child.join(OLD_LIMIT_S)
    if child.is_alive():
        child.terminate()
        child.join()
        return None
    return answer.get()


def row(label: str, old: float | None, new: float) -> str:
    if old is None:
        return f"  {label:46s} old > {OLD_LIMIT_S * 1000:9.0f} ms   new {new:7.1f} ms   ratio > {OLD_LIMIT_S * 1000 / new:,.0f}x"
    return f"  {label:46s} old {old:11.1f} ms   new {new:7.1f} ms   ratio {old / new:,.1f}x"


def main() -> None:
    redactor = Redactor()
    print("(a) hostile text, no known values (time to redact; ratio = old / new)")
    for size, size_label in ((KB32, "32 KB"), (MB, "1 MB")):
        for label, unit in HOSTILE.items():
            text = repeated(unit, size)
            print(row(f"{size_label}: {label}", old_ms(text), best_ms(partial(redactor, text))))

    print("(b) text dense with secrets, 1 MB (work per secret found)")
    for label, text in dense_secrets(MB).items():
        masked = redactor(text).count(Redactor.MASK)
        new = best_ms(partial(redactor, text))
        print(row(f"{label} ({masked:,} masked)", old_ms(text), new))

    print("(c) 1 MB of realistic log text, 1,000 known values")
    rnd = random.Random(5)
    values = known_values(1_000, rnd)
    log = realistic(MB, values, rnd)
    baseline = BaselineRedactor(set(values))
    old = best_ms(lambda: baseline(log), runs=1)
    for label, built in (
        ("as secrets (whole and any 8-character piece)", Redactor(values)),
        ("as other values (whole)", Redactor(whole_values=values)),
    ):
        build = best_ms(partial(built, "warm up"), runs=1)  # compiles the RE2 program once
        new = best_ms(partial(built, log))
        print(row(label, old, new) + f"   (build once: {build:.0f} ms)")
    environment = {
        f"SERVICE_{i}_API_KEY" if i % 4 == 0 else f"SETTING_{i}": v for i, v in enumerate(values[:40])
    }
    built = Redactor.for_environment(environment)
    build = best_ms(lambda: Redactor.for_environment(environment)("warm up"), runs=1)
    print(
        f"  a realistic environment (40 variables, {sum(map(len, environment.values())):,} characters): "
        f"build {build:.1f} ms, 1 MB of log {best_ms(lambda: built(log)):.1f} ms"
    )

    print("(d) hostile text against a known secret, 1 MB (goal: 50 ms or less)")
    for label, secret, unit in HOSTILE_KNOWN:
        text = repeated(unit, MB)
        known = Redactor([secret])
        known("warm up")
        print(f"  {label:46s} new {best_ms(partial(known, text)):7.1f} ms")


if __name__ == "__main__":
    main()
