"""Plaintext-secret detection and redaction.

Nothing here ever returns or formats a secret value: detectors answer *which kind* of secret a
value looks like, and :class:`Redactor` masks secrets in any text before it leaves the process (log
line, metric, alert, exception message, report). ``docs/secrets.md`` is the detection table: which
names, formats and random-looking tokens count as secrets, what is masked, and what is not detected.

Every pattern runs in time linear in the text: each starts with a literal or a character set (so
the search skips ahead in C), its runs are possessive or bounded, and no run can cross the start of
another attempt. An environment's known values are matched by one RE2 program over them all,
never value by value. Patterns compile at first use, not at import: every hook imports this module
during its cold start.
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Iterable, Iterator, Mapping
from functools import lru_cache
from typing import ClassVar
from urllib.parse import quote, quote_plus

from deployguard.patterns import literal_runs
from deployguard.records import datarecord

MASK = "***"


class _Lazy:
    """A regular expression compiled at its first use."""

    __slots__ = ("_compiled", "_source")

    def __init__(self, source: str) -> None:
        self._source = source
        self._compiled: re.Pattern[str] | None = None

    @property
    def compiled(self) -> re.Pattern[str]:
        if self._compiled is None:
            self._compiled = re.compile(self._source)
        return self._compiled


# --- names ---------------------------------------------------------------------------------------

# A variable's name split into words: DB_PASSWORD, dbPassword and DbPassword all end in PASSWORD.
_NAME_WORDS = _Lazy(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|[0-9]+")
# Last words that make a name a secret's on their own, and compounds a name may end with.
_SECRET_WORDS = frozenset(
    {"PASSWORD", "PASSWORDS", "PASSWD", "PASSPHRASE", "PASSCODE", "SECRET", "SECRETS", "TOKEN"}
    | {"CREDENTIAL", "CREDENTIALS", "CREDS", "APIKEY"}
)
_SECRET_ENDINGS = ("PASSWORD", "PASSWD", "SECRET", "TOKEN", "APIKEY", "SECRETKEY", "PRIVATEKEY")
# Short forms that are secrets only after another word: DB_PASS, DB_PWD, but not PWD (a directory).
_SHORT_SECRET_WORDS = frozenset({"PASS", "PWD", "PW"})
# ..._KEY is a secret after these words: SECRET_KEY, AWS_SECRET_ACCESS_KEY, ENCRYPTION_KEY, …
_KEY_KINDS = frozenset(
    {"SECRET", "PRIVATE", "API", "ACCESS", "ENCRYPTION", "DECRYPTION", "SIGNING", "HMAC", "MASTER"}
    | {"CLIENT", "AUTH", "LICENSE", "SESSION", "SHARED", "CRYPTO", "CIPHER", "AES", "JWT"}
)
# Rotation suffixes that keep a secret's name a secret's: DB_PASSWORD_2, API_KEY_OLD, JWT_SECRET_V2.
_ROTATION = frozenset({"V", "OLD", "NEW", "PREV", "PREVIOUS", "NEXT", "CURRENT", "PRIMARY", "SECONDARY"})


def _name_words(variable: str) -> list[str]:
    return [word.upper() for word in _NAME_WORDS.compiled.findall(variable)]


def is_secret_name(variable: str) -> bool:
    """The variable's name says it holds a secret (``*_PASSWORD``, ``*_SECRET_KEY``, ``DB_PWD``, …).

    Names that *point at* or describe a secret (``*_ARN``, ``*_PARAM``, ``*_NAME``, ``*_TTL``) do
    not."""
    words = _name_words(variable)
    while len(words) > 1 and (words[-1] in _ROTATION or words[-1].isdigit()):
        words.pop()
    if not words:
        return False
    last, before = words[-1], words[:-1]
    if last in _SECRET_WORDS or last.endswith(_SECRET_ENDINGS):
        return True
    if last in _SHORT_SECRET_WORDS:
        return bool(before)
    if last == "KEY":
        return bool(before) and before[-1] in _KEY_KINDS
    return words[-3:] == ["SECRET", "KEY", "BASE"] or words[-2:] == ["BASIC", "AUTH"]


# --- references ----------------------------------------------------------------------------------

# Values that *point at* a secret instead of holding it.
_SSM_ARN = re.compile(r"^arn:aws[a-z-]*:ssm:[a-z0-9-]+:\d{12}:parameter/.+$")
_SECRET_ARN = re.compile(r"^arn:aws[a-z-]*:secretsmanager:[a-z0-9-]+:\d{12}:secret:.+$")
_SSM_NAME = re.compile(r"^/[A-Za-z0-9_.\-/]+$")
_DYNAMIC_REF = re.compile(r"^\{\{resolve:(?:ssm|ssm-secure|secretsmanager):.+\}\}$")


@datarecord
class Reference:
    """A pointer to a secret or parameter, named by a variable."""

    kind: str  # "ssm" or "secretsmanager"
    identifier: str  # parameter name or secret ARN: never a secret value


def parse_reference(value: str) -> Reference | None:
    """The SSM parameter or Secrets Manager secret that ``value`` points at, if it is a pointer."""
    value = value.strip()
    if _SECRET_ARN.match(value):
        return Reference(kind="secretsmanager", identifier=value)
    if _SSM_ARN.match(value):
        return Reference(kind="ssm", identifier=value.split(":parameter", 1)[1])
    if _SSM_NAME.match(value) and "//" not in value:
        return Reference(kind="ssm", identifier=value)
    return None


def is_reference(value: str) -> bool:
    return parse_reference(value) is not None or bool(_DYNAMIC_REF.match(value.strip()))


def is_unambiguous_reference(value: str) -> bool:
    """An ARN or a ``{{resolve:…}}`` reference: no literal secret has that shape. A bare ``/name``
    does not count: a password may start with ``/`` too (so a secret-named variable holding one is
    still redacted)."""
    value = value.strip()
    return bool(_SECRET_ARN.match(value) or _SSM_ARN.match(value) or _DYNAMIC_REF.match(value))


# --- well-known formats --------------------------------------------------------------------------


class _Format:
    """A well-known secret format. The ``secret`` group, when the pattern has one, is the secret
    inside the match (a URL's password); otherwise the whole match is. A ``lowered`` pattern is
    written in lower case and runs on the lower-cased text: case-insensitive, yet with a literal
    prefix the search can skip ahead on (``re.IGNORECASE`` would lose it)."""

    __slots__ = ("_pattern", "lowered", "name")

    def __init__(self, name: str, source: str, *, lowered: bool = False) -> None:
        self.name, self._pattern, self.lowered = name, _Lazy(source), lowered

    @property
    def pattern(self) -> re.Pattern[str]:
        return self._pattern.compiled

    @property
    def group(self) -> str | int:
        return "secret" if "secret" in self.pattern.groupindex else 0


# After a match's first ``width`` characters: they start a word (nothing of ``word`` before them),
# or follow a JSON escape such as the '\n' of a JSON-encoded line break.
_STARTS_A_WORD = r"(?:(?<![{word}].{{{width}}})|(?<=\\[nrtbf].{{{width}}}))"

_FORMATS = (
    _Format(
        "private key block",
        # NOTE: the body too (base64, PEM headers, JSON-escaped newlines) up to the END line or the
        # first character a key cannot hold: a key cut short is masked all the same.
        r"-----BEGIN[A-Z0-9 ]{0,40}PRIVATE KEY(?: BLOCK)?-----"
        r"[A-Za-z0-9+/=\s\\:,.]*+(?:-(?!----)[A-Za-z0-9+/=\s\\:,.]*+)*+"
        r"(?:-----END[A-Z0-9 ]{0,40}PRIVATE KEY(?: BLOCK)?-----)?",
    ),
    _Format(
        "AWS access key id",
        r"(?:A3T[A-Z0-9]|AKIA|ASIA|ABIA|ACCA)"
        + _STARTS_A_WORD.format(word="A-Za-z0-9", width=4)
        + r"[A-Z2-7]{16}(?![A-Za-z0-9])",
    ),
    _Format("GitHub token", r"gh[pousr]_[A-Za-z0-9]{36,255}|github_pat_[A-Za-z0-9_]{22,255}"),
    _Format("Slack token", r"xox[abposr]-[A-Za-z0-9-]{10,255}"),
    _Format(
        "Slack webhook URL",
        r"hooks\.slack\.com/(?:services|workflows|triggers)/(?P<secret>[A-Za-z0-9_/-]{8,255})",
    ),
    _Format("Stripe key", r"k_(?:live|test)_(?<=[rs]k_live_|[rs]k_test_)(?P<secret>[A-Za-z0-9]{16,255})"),
    _Format("Google API key", r"AIza[0-9A-Za-z_-]{35}"),
    _Format("SendGrid API key", r"SG\.[A-Za-z0-9_-]{16,255}+\.[A-Za-z0-9_-]{16,255}"),
    _Format(
        "JSON Web Token",
        # NOTE: only where a token starts (the lookbehind): otherwise every 'eyJ' inside a long run
        # would scan the run again, quadratic in its length.
        r"eyJ"
        + _STARTS_A_WORD.format(word="A-Za-z0-9_-", width=3)
        + r"[A-Za-z0-9_-]{8,2048}+\.eyJ[A-Za-z0-9_-]{8,2048}+\.[A-Za-z0-9_-]{8,2048}+",
    ),
    _Format("Sentry DSN", r"://(?P<secret>[0-9a-f]{32}(?::[0-9a-f]{32})?)@"),
    _Format(
        "password in a URL",
        # scheme://user:password@host, the user possibly empty (redis://:pw@host). The password
        # may hold '/' and ':'; it may hold '@' when another '@' follows before any '/'; it never
        # holds '://', so no attempt scans the text of another (the loop is unrolled: a run of
        # plain characters, then ':' or '@' only where they occur). NOTE: 'https://host:8080/a@b'
        # masks '8080/a': a password may start with digits and '/' too, and masking is the safe side.
        r"://[^\s/:@?#\"'<>]{0,128}+:(?!//)"
        r"(?P<secret>(?!@)[^\s:@\"'<>?#]*+(?:(?::(?!//)|@(?=[^\s@/\"'<>?#]*+@))[^\s:@\"'<>?#]*+)*+)@",
    ),
    _Format(
        "password or token in key=value text",
        # ADO.NET / ODBC / JDBC connection strings (Password=…; Pwd={…}), query strings (?token=…&,
        # X-Amz-Signature=…), environment dumps (DB_PASSWORD=…). NOTE: anchored on '=' and looking
        # back for the key, one character first: a key would anchor on a common letter.
        r"=(?<=[dtyeng]=)(?:(?<=password=)|(?<=passwd=)|(?<=pwd=)|(?<=secret=)|(?<=api_key=)"
        r"|(?<=apikey=)|(?<=api-key=)|(?<=signature=)|(?<=[?&;_-]token=)|(?<=[?&;]sig=))[ \t]*+"
        r"(?P<secret>\\\"[^\"\r\n]{1,1024}+\"|\"[^\"\r\n]{1,1024}+\"|'[^'\r\n]{1,1024}+'|\{[^}\r\n]{1,1024}+\}"
        r"|[^\s;&#\"'<>]{1,1024}+)",
        lowered=True,
    ),
    _Format(
        "password in JSON",
        r"\":(?<=[dtny]\":)(?:(?<=password\":)|(?<=passwd\":)|(?<=pwd\":)|(?<=secret\":)|(?<=token\":)"
        r"|(?<=api_key\":)|(?<=apikey\":)|(?<=private_key\":)|(?<=privatekey\":))"
        r"[ \t]*+\"(?P<secret>(?!\")[^\"\\\r\n]*+(?:\\.[^\"\\\r\n]*+)*+)\"",
        lowered=True,
    ),
)


class _KeyFormats(Mapping[str, re.Pattern[str]]):
    """The well-known formats by name, compiled at first read. A lowered pattern expects
    lower-cased text: :func:`detect_key_formats` is the way to apply them."""

    def __getitem__(self, name: str) -> re.Pattern[str]:
        for format_ in _FORMATS:
            if format_.name == name:
                return format_.pattern
        raise KeyError(name)

    def __iter__(self) -> Iterator[str]:
        return (format_.name for format_ in _FORMATS)

    def __len__(self) -> int:
        return len(_FORMATS)


# Well-known key formats by name. Each is anchored on a fixed prefix or shape so ordinary
# configuration does not match.
KEY_FORMATS: Mapping[str, re.Pattern[str]] = _KeyFormats()


def _lowered(text: str) -> str:
    """``text`` in lower case, character for character (İ is the one letter whose lower case is
    two characters long)."""
    lowered = text.lower()
    return lowered if len(lowered) == len(text) else text.replace("\u0130", "i").lower()


def _format_matches(text: str) -> Iterator[tuple[_Format, re.Match[str]]]:
    """Every match of every well-known format in ``text`` (a lowered format's on the lowered text:
    its spans are the same)."""
    lowered = None
    for format_ in _FORMATS:
        if format_.lowered and lowered is None:
            lowered = _lowered(text)
        subject = lowered if format_.lowered and lowered is not None else text
        yield from ((format_, match) for match in format_.pattern.finditer(subject))


def detect_key_formats(value: str) -> list[str]:
    """Names of the well-known secret formats found in ``value`` (never the matched text).

    A format found only inside another's match (a Sentry DSN's key is a URL user too) is left out."""
    found: dict[str, list[tuple[int, int]]] = {}
    for format_, match in _format_matches(value):
        found.setdefault(format_.name, []).append(match.span())
    kinds: list[str] = []
    covered: list[tuple[int, int]] = []
    for name, spans in found.items():
        if not all(any(start <= s and e <= end for start, end in covered) for s, e in spans):
            kinds.append(name)
        covered += spans
    return kinds


# --- random-looking tokens -----------------------------------------------------------------------

# Runs of separators, JSON escapes among them (unrolled: one class run when there is no escape).
_SEPARATORS = r"[^A-Za-z0-9+_\\-]*+(?:\\[nrtbf]?[^A-Za-z0-9+_\\-]*+)*+"
# A token: a run of the base64 / base64url alphabet (plus padding), 20 characters or more.
# NOTE: the search loop is inside the pattern (skip separators and short runs, stop at a token or
# the end): one attempt per token instead of one per position, and a run is never rescanned. A
# JSON escape ('\n') separates too, so a key at the start of a JSON-encoded line is one token.
_TOKENS = _Lazy(
    rf"(?:{_SEPARATORS}[A-Za-z0-9+/_-]{{1,19}}+(?![A-Za-z0-9+/_-]))*+{_SEPARATORS}"
    r"(?:(?P<token>[A-Za-z0-9+/_-]{20,}+={0,2})|\Z)"
)
_RANDOM_MIN_LENGTH = 20
_RANDOM_MAX_EXAMINED = 1024  # a longer token is judged by its first 1024 characters
_LONG_HEX = _Lazy(r"(?<![A-Za-z0-9])(?![0-9]+(?![A-Za-z0-9]))(?:[0-9a-f]{32,}|[0-9A-F]{32,})(?![A-Za-z0-9])")
_LOWER, _UPPER, _DIGIT = _Lazy(r"[a-z]"), _Lazy(r"[A-Z]"), _Lazy(r"[0-9]")
_SEGMENTS = _Lazy(r"[-_/+]+")
_WORDY = _Lazy(r"(?:[a-z]{2,}|[A-Z]{2,}|[a-z]*(?:[A-Z][a-z]{2,})+)[0-9]*")
_CAMEL_WORDS = _Lazy(r"[A-Z]?[a-z]+|[A-Z]+(?![a-z])|[0-9]+")
_RANDOM_WORD_DENSITY = 0.3  # words per character: identifiers ≤ 0.29, random base62 ≈ 0.55
_CFN_SUFFIX_MAX = 13  # CloudFormation's random suffix: orders-OrdersTable-1A2B3C4D5E6F
# CodeDeploy's lifecycle hook execution id is base64 of {"encryptedData":…}: an id every record
# carries (ciphertext, not a secret), random-looking by construction.
_CODEDEPLOY_EXECUTION_ID = "eyJlbmNyeXB0ZWREYXRhIjoi"


def _looks_random(token: str) -> bool:
    """A 32+ hex string, or 20+ characters mixing upper and lower case and digits as a random key
    does (docs/secrets.md: the rule and its measured rates)."""
    return _judge(token[:_RANDOM_MAX_EXAMINED].rstrip("="))


@lru_cache(maxsize=4096)
def _judge(core: str) -> bool:
    if len(core) < _RANDOM_MIN_LENGTH:
        return False
    if _LONG_HEX.compiled.search(core):
        return True
    if core.startswith(_CODEDEPLOY_EXECUTION_ID) or not (
        _LOWER.compiled.search(core) and _UPPER.compiled.search(core) and _DIGIT.compiled.search(core)
    ):
        return False
    separators = core.count("-") + core.count("_") + core.count("/") + core.count("+")
    if separators:
        segments = [s for s in _SEGMENTS.compiled.split(core) if s]
        named = [s for s in segments if _WORDY.compiled.fullmatch(s)]
        # NOTE: words joined by '-', '_' or '/' with short random parts are generated names
        # (CloudFormation's stack-LogicalId-1A2B3C4D5E6F), not keys.
        if any(len(s) >= 4 for s in named) and all(len(s) <= _CFN_SUFFIX_MAX or s in named for s in segments):
            return False
    words = len(_CAMEL_WORDS.compiled.findall(core))
    return words >= _RANDOM_WORD_DENSITY * (len(core) - separators)


def _random_tokens(text: str) -> Iterator[re.Match[str]]:
    return (m for m in _TOKENS.compiled.finditer(text) if m["token"] and _looks_random(m["token"]))


def has_random_token(value: str) -> bool:
    """``value`` holds a long hex string or a random-looking token."""
    return any(_random_tokens(value))


# Names whose hex values are identifiers, not keys: GIT_SHA, BUILD_COMMIT, CONFIG_CHECKSUM, …
_IDENTIFIER_WORDS = frozenset(
    {"SHA", "COMMIT", "REVISION", "REV", "HASH", "DIGEST", "CHECKSUM", "ETAG", "VERSION", "BUILD", "ID"}
)


def plaintext_secret_kinds(variable: str, value: str) -> list[str]:
    """What kinds of plaintext secret the variable holds: the well-known formats, else a long hex
    string or a random-looking token — unless the name says it is an identifier (``GIT_SHA``)."""
    kinds = detect_key_formats(value)
    if kinds or not has_random_token(value):
        return kinds
    words = _name_words(variable)
    if words and words[-1] in _IDENTIFIER_WORDS:
        return []
    return ["long hex string" if _LONG_HEX.compiled.search(value) else "random-looking token"]


# --- ordinary configuration ----------------------------------------------------------------------

# A value made only of words, numbers and separators reads as configuration, not as a secret:
# orders-prod, us-east-1, INFO, arn:aws:lambda:…:function:orders, https://api.example.com/v1.
_PLAIN_PIECES = _Lazy(r"[^A-Za-z0-9]+")
_PLAIN_PIECE = _Lazy(r"[0-9]+[A-Za-z]{0,3}|[A-Za-z][a-z]*(?:[A-Z][a-z]+)*[0-9]*|[A-Z]+[0-9]*")
_GENERATED_SUFFIX = _Lazy(r"-[A-Za-z0-9]{8,13}$")


def _is_plain(value: str) -> bool:
    """Words, numbers and separators only, or a generated name (words and a random suffix)."""
    suffix = _GENERATED_SUFFIX.compiled.search(value)
    head = value[: suffix.start()] if suffix and suffix.start() > 0 else value
    return all(_PLAIN_PIECE.compiled.fullmatch(p) for p in _PLAIN_PIECES.compiled.split(head) if p)


def _embedded_secrets(value: str) -> set[str]:
    """The secrets inside a value: a URL's password, a connection string's, a key, a token."""
    found: set[str] = set()
    for format_, match in _format_matches(value):
        secret = value[slice(*match.span(format_.group))]  # from the value: the match may be lowered
        found.add(secret)
        if "\\" in secret:  # a JSON string's content: the secret is what it decodes to
            with contextlib.suppress(ValueError):
                found.add(json.loads(f'"{secret}"'))
    found.update(m["token"] for m in _random_tokens(value))
    return found


# --- redaction -----------------------------------------------------------------------------------


class Redactor:
    """Masks secrets in text: known values, well-known key formats and random-looking tokens.

    ``values`` are secrets: masked whole and by any ``PIECE``-character piece, as written and in
    JSON, so a secret that was cut short elsewhere (by a function's own message, a wrapped line) is
    still masked; and masked whole in ``repr()`` and URL encoding. ``whole_values`` are other
    configuration values: masked where they appear whole, in the same encodings.
    """

    MASK: ClassVar[str] = MASK
    MIN_LENGTH: ClassVar[int] = 4  # a shorter secret would mask ordinary words
    MIN_PLAIN_LENGTH: ClassVar[int] = 8  # an ordinary value shorter than this stays readable
    PIECE: ClassVar[int] = 8  # no piece this long of a secret survives

    __slots__ = ("_known", "values", "whole_values")

    def __init__(self, values: Iterable[str] = (), *, whole_values: Iterable[str] = ()) -> None:
        self.values = frozenset(v for v in values if len(v) >= self.MIN_LENGTH)
        self.whole_values = (
            frozenset(v for v in whole_values if len(v) >= self.MIN_PLAIN_LENGTH) - self.values
        )
        self._known: _KnownValues | None = None

    @classmethod
    def for_values(cls, values: Iterable[str]) -> Redactor:
        """A redactor for secrets known by value (resolved parameters, credentials)."""
        return cls(values)

    @classmethod
    def for_environment(cls, variables: Mapping[str, str]) -> Redactor:
        """A redactor for a version's whole environment.

        - A secret-named variable's value is a secret, even when it looks like an SSM parameter
          name (a literal password may start with '/'); only an ARN or a ``{{resolve:…}}``
          reference is taken for a pointer.
        - The secrets inside any value (a URL's password, a key, a random-looking token) are
          secrets too.
        - Any other value of ``MIN_PLAIN_LENGTH`` characters or more that is not a reference and
          not plain configuration (words, numbers, separators) is masked where it appears whole.
        """
        secrets: set[str] = set()
        whole: set[str] = set()
        for name, value in variables.items():
            forms = {value, value.strip()}
            embedded = _embedded_secrets(value)
            secrets.update(embedded)
            if is_secret_name(name):
                if not is_unambiguous_reference(value):
                    secrets.update(forms)
            elif not is_reference(value) and (embedded or not _is_plain(value.strip())):
                # NOTE: only the secret inside is masked piece by piece: pieces of a whole URL
                # ('postgres', '.example') would mask ordinary words everywhere.
                whole.update(forms)
        return cls(secrets, whole_values=whole)

    def merge(self, other: Redactor) -> Redactor:
        return Redactor(self.values | other.values, whole_values=self.whole_values | other.whole_values)

    def __call__(self, text: str) -> str:
        """``text`` with every secret masked as ``***``."""
        if len(text) < self.MIN_LENGTH:
            return text
        spans: list[tuple[int, int]] = []
        if self.values or self.whole_values:
            if self._known is None:
                self._known = _known_values(self.values, self.whole_values, self.PIECE)
            spans += self._known.spans(text)
        spans += (match.span(format_.group) for format_, match in _format_matches(text))
        spans += (match.span("token") for match in _random_tokens(text))
        return _mask_spans(text, spans)

    def clip(self, text: str, limit: int, *, ellipsis: str = "...") -> str:
        """Redact, then clip to ``limit`` characters (``ellipsis`` included): a clip can never leave
        part of a secret, and never cuts a mask in two.

        NOTE: the whole text is redacted, never a head of it: masks shrink the text, so no head of
        fixed length is provably enough. The cost stays linear in the text.
        """
        redacted = self(text)
        if len(redacted) <= limit:
            return redacted
        end = max(limit - len(ellipsis), 0)
        for back in range(1, len(MASK)):
            if end - back >= 0 and redacted.startswith(MASK, end - back):
                end -= back
                break
        return (redacted[:end] + ellipsis)[:limit]

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Redactor):
            return NotImplemented
        return (self.values, self.whole_values) == (other.values, other.whole_values)

    def __hash__(self) -> int:
        return hash((self.values, self.whole_values))

    def __repr__(self) -> str:
        # NOTE: counts only: a redactor that printed its values would leak them into any log.
        return f"Redactor({len(self.values)} secret values, {len(self.whole_values)} other values)"


def _mask_spans(text: str, spans: list[tuple[int, int]]) -> str:
    """``text`` with the union of ``spans``, each stretch replaced by one mask."""
    if not spans:
        return text
    spans.sort()
    parts: list[str] = []
    kept_from, (start, end) = 0, spans[0]
    for next_start, next_end in spans[1:]:
        if next_start <= end:
            end = max(end, next_end)
            continue
        parts += (text[kept_from:start], MASK)
        kept_from, start, end = end, next_start, next_end
    parts += (text[kept_from:start], MASK, text[end:])
    return "".join(parts)


class _KnownValues:
    """Where any of a set of strings occurs, in time linear in the text, however it repeats them.

    One RE2 program (:func:`deployguard.patterns.literal_runs`) finds each leftmost, longest run of
    strings back to back, and the search resumes where a run ends: no occurrence of a string can
    lie wholly outside the runs found (the search would have found it first), so no piece of a
    secret survives. Then a run is extended by any piece that starts inside it and ends past it
    (a set lookup per length), so a secret cut short is masked to its last character, not to the
    last whole piece.
    """

    __slots__ = ("_bytes", "_pieces", "_runs")

    def __init__(self, pieces: Iterable[str], wholes: Iterable[str]) -> None:
        # NOTE: 'surrogatepass': text may hold a lone surrogate (decoded JSON); encoded the same
        # way on both sides, it matches as itself.
        encoded_pieces = {piece.encode("utf-8", "surrogatepass") for piece in pieces}
        encoded = encoded_pieces | {whole.encode("utf-8", "surrogatepass") for whole in wholes}
        self._runs = literal_runs(sorted(encoded))
        by_length: dict[int, set[bytes]] = {}
        for piece in encoded_pieces:
            by_length.setdefault(len(piece), set()).add(piece)
        self._pieces = tuple((length, frozenset(group)) for length, group in sorted(by_length.items()))
        self._bytes = frozenset(byte for piece in encoded_pieces for byte in piece)

    def spans(self, text: str) -> list[tuple[int, int]]:
        data = text.encode("utf-8", "surrogatepass")
        found: list[tuple[int, int]] = []
        for run in self._runs.finditer(data):
            start, end = run.span()
            found.append((start, self._extend(data, start, end)))
        return found if len(data) == len(text) else _character_spans(data, found)

    def _extend(self, data: bytes, start: int, end: int) -> int:
        """``end`` moved past every piece that starts after ``start`` and before ``end``."""
        extended = True
        while extended and end < len(data) and data[end] in self._bytes:
            extended = False
            for length, pieces in self._pieces:
                for reach in range(min(length - 1, len(data) - end), 0, -1):
                    if end + reach - length > start and data[end + reach - length : end + reach] in pieces:
                        end, extended = end + reach, True
                        break
        return end


def _character_spans(data: bytes, spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """``spans`` (sorted byte offsets into UTF-8 ``data``) as offsets into the decoded text."""
    characters: list[tuple[int, int]] = []
    byte, char = 0, 0
    for start, end in spans:
        char += len(data[byte:start].decode("utf-8", "surrogatepass"))
        first = char
        char += len(data[start:end].decode("utf-8", "surrogatepass"))
        characters.append((first, char))
        byte = end
    return characters


# A secret longer than this (a key block, a JSON blob) is matched whole, not piece by piece.
_PIECES_UP_TO = 256


@lru_cache(maxsize=8)
def _known_values(values: frozenset[str], whole_values: frozenset[str], piece: int) -> _KnownValues:
    """Built once per environment (warm invocations reuse it). A secret is matched by its
    ``piece``-character pieces as written and as JSON writes it, and whole in every encoding;
    every other value is matched whole.

    NOTE: the pieces of a secret longer than ``_PIECES_UP_TO`` would cost a pattern eight times its
    length, and a fragment of such a value is base64 or a key block, which the random-token
    heuristic and the key formats catch."""
    pieces: set[str] = set()
    wholes: set[str] = set()
    for value in values:
        wholes.update(_encoded_forms(value))
        if piece <= len(value) <= _PIECES_UP_TO:
            pieced = {value, json.dumps(value)[1:-1], json.dumps(value, ensure_ascii=False)[1:-1]}
            pieces.update(form[i : i + piece] for form in pieced for i in range(len(form) - piece + 1))
    for value in whole_values:
        wholes.update(_encoded_forms(value))
    return _KnownValues(pieces, wholes)


def _encoded_forms(value: str) -> set[str]:
    """The value as written and as JSON, ``repr()`` and URL encoding write it."""
    escaped = json.dumps(value)[1:-1]
    return {
        value,
        escaped,
        json.dumps(value, ensure_ascii=False)[1:-1],
        json.dumps(escaped)[1:-1],  # JSON inside a JSON string
        repr(value)[1:-1],
        repr(value + '"')[1:-2],  # repr() in single quotes, whichever quotes the value holds
        quote(value, safe=""),
        quote(value),
        quote_plus(value),
    }
