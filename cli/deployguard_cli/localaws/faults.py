"""Faults injected into one published version on the embedded AWS: the local Lambda runner
applies them around the real invocation, so the function's code and configuration stay as the
user wrote them (what the guard inspects is untouched; only what the version does changes).

* ``errors`` — a share of the invocations fail (``Unhandled``, ``errorType`` ``RehearsalFault``),
  spread evenly by a running share (with 0.5, every second invocation), so every run is the same;
* ``slow`` — each invocation takes ``delay_ms`` longer (really: the caller waits), and its
  ``REPORT`` line says so; past the function's timeout it is ``Sandbox.Timedout``, as on Lambda;
* ``wrong-type`` — the answer's numbers come back as strings (``12`` → ``"12"``), inside an API
  Gateway proxy answer's JSON ``body`` too; an answer without numbers comes back as a JSON string.

The fourth fault of ``deployguard rehearse --faults``, a lost environment variable, is a change
of the version's configuration, not of its behaviour: the rehearsal publishes it as such.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from typing import Any, Literal

__all__ = ["FAULTS", "SLOW_DEFAULT_MS", "Fault", "active", "clear", "inject", "wrong_typed"]

Behaviour = Literal["errors", "slow", "wrong-type"]
FAULTS = ("errors", "slow", "missing-env", "wrong-type")
"""What ``deployguard rehearse --faults`` injects into the new version, one deployment each."""
SLOW_DEFAULT_MS = 1500


@dataclass(frozen=True)
class Fault:
    kind: Behaviour
    share: float = 0.5  # errors: the share of invocations that fail
    delay_ms: int = 0  # slow: added to every invocation

    def fails(self, count: int) -> bool:
        """Whether invocation number ``count`` (from 1) fails: a running share, ``share`` of all."""
        return int(count * self.share) > int((count - 1) * self.share)


_lock = threading.Lock()
_faults: dict[tuple[str, str], Fault] = {}
_counts: dict[tuple[str, str], int] = {}


def inject(function_name: str, version: str, fault: Fault) -> None:
    """From now on, invocations of ``function_name`` version ``version`` suffer ``fault``."""
    with _lock:
        _faults[(function_name, version)] = fault
        _counts[(function_name, version)] = 0


def clear() -> None:
    with _lock:
        _faults.clear()
        _counts.clear()


def active(function_name: str, version: str) -> tuple[Fault, int] | None:
    """The fault on this version and this invocation's number (counted), or None."""
    key = (function_name, version)
    with _lock:
        fault = _faults.get(key)
        if fault is None:
            return None
        _counts[key] += 1
        return fault, _counts[key]


def wrong_typed(payload: str) -> str:
    """The answer with the wrong types: numbers as strings (a proxy answer's JSON body too)."""
    try:
        answer = json.loads(payload)
    except ValueError:
        return json.dumps([payload])
    changed = _stringify(answer)
    if isinstance(answer, dict) and isinstance(answer.get("body"), str):
        try:
            body = json.loads(answer["body"])
        except ValueError:
            body = None
        if isinstance(body, dict | list):
            changed = {**changed, "body": json.dumps(_stringify(body))}
    if changed == answer:
        return json.dumps(payload)  # nothing to turn: the whole answer becomes a string
    return json.dumps(changed)


def _stringify(value: Any) -> Any:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, dict):
        return {k: _stringify(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_stringify(v) for v in value]
    return value
