"""Generated secrets of every kind, the long messages they hide in, and the property every output of
DeployGuard must have: no 8-character piece of a secret in it (:func:`assert_no_piece`).

Shared by the redactor's own property tests (tests/unit/test_redaction.py) and the tests that put
secrets through the real hooks and the CLI (tests/*/test_no_leaks.py). No AWS: the unit tier uses it.
"""

from __future__ import annotations

import json
import string
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from hypothesis import assume
from hypothesis import strategies as st

from deployguard.secrets import has_random_token

PIECE = 8
B62 = string.ascii_letters + string.digits
B64URL = B62 + "-_"
HEX = "0123456789abcdef"


def pieces(secret: str) -> set[str]:
    return {secret[i : i + PIECE] for i in range(len(secret) - PIECE + 1)}


def leaked(output: str, secret: str) -> list[str]:
    return sorted(p for p in pieces(secret) if p in output)


def _texts(output: Any) -> Iterator[str]:
    """Every text of an output: a string or bytes as they are; a mapping's keys and values and a
    sequence's items, recursively (a handler's return value, an SNS message's attributes)."""
    if isinstance(output, bytes):
        yield output.decode("utf-8", errors="replace")
    elif isinstance(output, str):
        yield output
    elif isinstance(output, Mapping):
        for key, value in output.items():
            yield from _texts(key)
            yield from _texts(value)
    elif isinstance(output, list | tuple | set | frozenset):
        for item in output:
            yield from _texts(item)
    elif output is not None:
        yield str(output)


def written_forms(secret: str) -> set[str]:
    """The secret as written and as JSON writes it (a log line, EMF, a JSON document on stdout)."""
    return {secret, json.dumps(secret)[1:-1], json.dumps(secret, ensure_ascii=False)[1:-1]}


def assert_no_piece(secret: str, *outputs: Any) -> None:
    """No ``PIECE``-character piece of ``secret`` — as written or JSON-escaped — appears in any of
    ``outputs`` (strings, bytes, or structures of them: captured log lines, EMF, a handler's return
    value, SNS messages, CLI stdout and stderr).

    To extend the property to another path, capture everything it writes and pass it here:
    ``assert_no_piece(secret, log_text, answer, *sns_messages, cli_out, cli_err)``.
    """
    found = {
        form: sorted({p for text in _texts(outputs) for p in pieces(form) if p in text})
        for form in written_forms(secret)
    }
    assert not any(found.values()), f"pieces of the secret leaked: {found}"


# --- long messages --------------------------------------------------------------------------------

WORDS = [
    "order",
    "failed",
    "connection",
    "refused",
    "timeout",
    "after",
    "retrying",
    "the",
    "request",
    "INFO",
    "ERROR",
    "2026-11-28T10:00:00.123Z",
    "arn:aws:lambda:us-east-1:123456789012:function:orders-api:live",
    "6513270e-269e-4d37-a2a7-4de452e6b438",
    "1-5759e988-bd862e3fe1be46a994272793",
    "d-ABCDEF123",
    "orders-OrdersTable-1A2B3C4D5E6F7",
    "https://sqs.us-east-1.amazonaws.com/123456789012/orders-queue",
    "/var/task/app.py,",
    "line",
    "42:",
    "12.5",
    "ms",
    "status=503",
    "region=us-east-1",
    "KeyError:",
    "'customer_id'",
    '{"status":',
    '"ok"}',
    "password",
    "rotation",
    "token",
    "expired",
    "Traceback",
    "(most",
    "recent",
    "call",
    "last):",
    "\n",
]
messages = st.lists(st.sampled_from(WORDS), max_size=250).map(" ".join)
SEPARATORS = st.sampled_from([" ", "\n", "'", '"', ": ", "(", ", "])


def place(message: str, value: str, at: int, before: str, after: str) -> str:
    at = min(at, len(message))
    return message[:at] + before + value + after + message[at:]


# --- secrets --------------------------------------------------------------------------------------

# Realistic values of every well-known format, each with the part that is the secret.
text_of = st.text
formats = st.one_of(
    text_of(string.ascii_uppercase + "234567", min_size=16, max_size=16).map(lambda s: ("AKIA" + s,) * 2),
    text_of(B62, min_size=36, max_size=40).map(lambda s: ("ghp_" + s,) * 2),
    text_of(B62 + "_", min_size=22, max_size=60).map(lambda s: ("github_pat_" + s,) * 2),
    text_of(B62 + "-", min_size=10, max_size=40).map(lambda s: ("xoxb-" + s,) * 2),
    st.tuples(text_of(B62, min_size=24, max_size=24), st.integers(10**8, 10**9 - 1)).map(
        lambda t: (f"https://hooks.slack.com/services/T{t[1]}/B{t[1]}/{t[0]}", f"T{t[1]}/B{t[1]}/{t[0]}")
    ),
    text_of(B62, min_size=24, max_size=32).map(lambda s: ("sk_live_" + s, s)),
    text_of(B62 + "_-", min_size=35, max_size=35).map(lambda s: ("AIza" + s,) * 2),
    st.tuples(text_of(B64URL, min_size=22, max_size=22), text_of(B64URL, min_size=43, max_size=43)).map(
        lambda t: (f"SG.{t[0]}.{t[1]}",) * 2
    ),
    st.tuples(*(text_of(B64URL, min_size=8, max_size=40) for _ in range(3))).map(
        lambda t: (f"eyJ{t[0]}.eyJ{t[1]}.{t[2]}",) * 2
    ),
    text_of(HEX, min_size=32, max_size=32).map(lambda k: (f"https://{k}@o123456.ingest.sentry.io/4504", k)),
    st.tuples(
        st.sampled_from(["postgres", "redis", "amqps", "mongodb+srv"]),
        st.sampled_from(["app", "", "admin.user"]),
        text_of(B62 + "/:!$&()*+,;=._~%-", min_size=8, max_size=32).filter(
            lambda p: "://" not in p and not p.startswith("//")
        ),
    ).map(lambda t: (f"{t[0]}://{t[1]}:{t[2]}@db.internal.example.com:5432/orders", t[2])),
    text_of(B62 + "!$%()*+,-./:=?@[]^_|~", min_size=8, max_size=32).map(
        lambda p: (f"Server=db;Database=orders;User ID=app;Password={p};Encrypt=True", p)
    ),
    text_of(B62 + "-._~%", min_size=16, max_size=40).map(
        lambda t: (f"https://api.example.com/v1/orders?access_token={t}&page=2", t)
    ),
    text_of(B62 + " !#$%&'()+,-./:;<=>?@[]^_`{|}~", min_size=8, max_size=32).map(
        lambda p: (json.dumps({"user": "app", "password": p}), json.dumps(p)[1:-1])
    ),
    st.lists(text_of(B62 + "+/", min_size=64, max_size=64), min_size=2, max_size=5).map(
        lambda lines: (
            "-----BEGIN RSA PRIVATE KEY-----\n" + "\n".join(lines) + "\n-----END RSA PRIVATE KEY-----",
            "\n".join(lines),
        )
    ),
)


@st.composite
def random_tokens(draw: st.DrawFn) -> str:
    """A key as a generator makes one: random characters of base62, base64 or base64url."""
    rnd = draw(st.randoms(use_true_random=False))
    alphabet = rnd.choice([B62, B62 + "+/", B64URL])
    token = "".join(rnd.choice(alphabet) for _ in range(rnd.randint(24, 64)))
    assume(has_random_token(token))  # the heuristic's catch rate is measured in test_redaction.py
    return token


# Any character but the mask's own ('*') and lone surrogates: unicode, '/', '@', '%', quotes,
# backslashes, control characters.
secret_characters = st.characters(exclude_categories=["Cs"], exclude_characters="*")
SECRET_NAMES = [
    "DB_PASSWORD",
    "SECRET_KEY",
    "S3_SECRET_ACCESS_KEY",
    "ENCRYPTION_KEY",
    "DB_PWD",
    "GITHUB_TOKEN",
]


@dataclass(frozen=True)
class Planted:
    """A generated secret as a test plants it: ``value`` (what is written into a message or the
    environment) holds ``secret`` (what must not leak); ``variable`` is the environment variable
    that holds ``value``, or None when the environment does not (only the formats and the
    heuristics can find it)."""

    kind: str
    secret: str
    value: str
    variable: str | None

    @property
    def environment(self) -> dict[str, str]:
        return {self.variable: self.value} if self.variable else {}


# What timestamps, durations and counts are written with: a secret with a piece made only of these
# could be part of any record ("00000000"), so the property could not tell a leak from a clock.
_CLOCK_CHARACTERS = frozenset("0123456789.:-+TZe ")


def _distinguishable(secret: str) -> bool:
    return all(not set(piece) <= _CLOCK_CHARACTERS for piece in pieces(secret))


def _plain_secret(text: str) -> bool:
    # NOTE: a pointer is not a value; NUL cannot be passed to a process's environment
    return (
        bool(text.strip()) and not text.startswith("arn:") and "{{resolve:" not in text and "\x00" not in text
    )


def planted(*, known: bool | None = None) -> st.SearchStrategy[Planted]:
    """Secrets of every kind: a secret-named variable's value of any characters (known only), a
    well-known format and a random-looking token (in a variable's value, or unknown to the
    environment). ``known`` picks the environment's secrets (True), the others (False) or both."""
    by_name = st.tuples(
        st.sampled_from(SECRET_NAMES),
        st.text(secret_characters, min_size=PIECE, max_size=48).filter(_plain_secret),
    ).map(lambda t: Planted(kind="secret-named value", secret=t[1], value=t[1], variable=t[0]))
    in_environment = st.sampled_from(["PARTNER_SETTING", None] if known is None else ["PARTNER_SETTING"])
    if known is False:
        in_environment = st.just(None)
    shaped = st.one_of(
        st.tuples(formats, in_environment).map(
            lambda t: Planted(kind="well-known format", secret=t[0][1], value=t[0][0], variable=t[1])
        ),
        st.tuples(random_tokens(), in_environment).map(
            lambda t: Planted(kind="random-looking token", secret=t[0], value=t[0], variable=t[1])
        ),
    )
    chosen = shaped if known is False else st.one_of(by_name, shaped)
    return chosen.filter(lambda p: _distinguishable(p.secret))
