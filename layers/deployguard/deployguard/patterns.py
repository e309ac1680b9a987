"""The policy's regular expressions (allow/deny rules, smoke ``regex`` expectations): one engine,
RE2, used both to check a pattern when a policy is loaded and to match it in the hooks.

RE2 matches in time linear in the text: no pattern, however written, can backtrack for seconds
while the hook holds the GIL and misses its deadline (Python's ``re`` takes 18 s on ``^(a|aa)+$``
against 39 characters). The price is RE2's syntax: no lookaround, no backreferences, ``\\z``
rather than ``\\Z``, and ``\\d \\w \\s \\b`` are ASCII. A pattern RE2 cannot run is a policy
error at ``deployguard policy check`` time, not a surprise in the hook.

The cost of one match is bounded twice: the compiled program may use at most
:data:`MAX_PROGRAM_BYTES` (a bigger pattern is a policy error), and only the first
:data:`MAX_MATCHED_CHARS` characters of a value are matched. Together: about 0.1 s at most for
one pattern and one value, for the slowest pattern measured (``scripts/bench_policy.py``); the
policy bounds the sum (``MAX_PATTERN_INSTRUCTIONS``).
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import cache
from typing import Any, Final

MAX_MATCHED_CHARS: Final = 4096
"""Characters of a value a pattern is matched against. Lambda caps all of a function's
environment variables together at 4 KB, so no variable is ever cut; a longer smoke answer is."""

MAX_PROGRAM_BYTES: Final = 64 * 1024
"""RE2's ``max_mem`` per pattern: its compiled program and match cache. Ample for patterns that
name hosts and stages; it bounds the time of a match and the memory of RE2's cache of 128."""


class PatternError(ValueError):
    """RE2 cannot compile the pattern (bad syntax, a construct RE2 lacks, or too big)."""


@cache
def _engine() -> tuple[Any, Any]:
    """The RE2 module and its options (imported on first use: not part of a hook's cold start)."""
    # NOTE: google-re2 ships no type information; what it returns is used through Any here only.
    import re2  # type: ignore[import-untyped, unused-ignore]  # noqa: PLC0415

    options = re2.Options()
    options.max_mem = MAX_PROGRAM_BYTES
    options.log_errors = False  # RE2 would print every rejected pattern to stderr
    return re2, options


def load_engine() -> None:
    """Import RE2 now (about 5 ms), so that the first pattern does not wait for it."""
    _engine()


def _compile(pattern: str) -> Any:
    re2, options = _engine()
    try:
        encoded = pattern.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise PatternError("it is not Unicode text (a lone surrogate)") from exc
    try:
        return re2.compile(encoded, options)  # RE2's module keeps the last 128 compiled
    except re2.error as exc:
        reason = exc.args[0] if exc.args else "invalid"
        if isinstance(reason, bytes):
            reason = reason.decode("utf-8", "replace")
        raise PatternError(str(reason)) from exc


def check_pattern(pattern: str) -> int:
    """The size of ``pattern`` compiled, in RE2 instructions; :class:`PatternError` if RE2 cannot
    compile it within :data:`MAX_PROGRAM_BYTES`. Compiling and matching take time in proportion."""
    return int(_compile(pattern).programsize)


def search(pattern: str, value: str) -> bool:
    """Whether ``pattern`` matches anywhere in the first :data:`MAX_MATCHED_CHARS` of ``value``.

    Like Python's ``re.search``, ``$`` also matches before a final newline.
    """
    regexp = _compile(pattern)
    text = value[:MAX_MATCHED_CHARS]
    if regexp.search(text.encode("utf-8", "surrogatepass")) is not None:
        return True
    # NOTE: RE2's '$' matches only at the very end; Python's also before a final '\n'. Matching
    # the text without that newline too keeps the meaning patterns had with 're' (a deny rule on
    # '\.prod\.example\.com$' still catches a value that ends in a newline).
    return text.endswith("\n") and regexp.search(text[:-1].encode("utf-8", "surrogatepass")) is not None


LITERALS_MAX_BYTES: Final = 64 * 1024 * 1024
"""RE2's ``max_mem`` for :func:`literal_runs`: room for the pieces of every secret a 4 KB
environment can hold, so RE2 keeps its DFA (linear, fast) rather than falling back to its NFA."""


def literal_runs(literals: Iterable[bytes]) -> Any:
    """An RE2 program matching, at the leftmost position, the longest run of ``literals`` back to
    back (``(?:l1|l2|…)+``, longest-match semantics), on UTF-8 bytes. Each ``search`` is one pass
    in C over the text, whatever the literals and however the text repeats them."""
    re2, _ = _engine()
    options = re2.Options()
    options.max_mem = LITERALS_MAX_BYTES
    options.log_errors = False
    options.longest_match = True
    # NOTE: Latin-1 matches byte by byte: the literals are UTF-8 (lone surrogates passed through),
    # which RE2's UTF-8 mode would refuse; a literal made of whole characters can only match at a
    # character boundary of UTF-8 text (a lead byte is never a continuation byte).
    options.encoding = re2.Options.Encoding.LATIN1
    body = b"|".join(b"".join(b"\\x%02x" % byte for byte in literal) for literal in literals)
    return re2.compile(b"(?:" + body + b")+", options)
