"""Virtual time: real time plus every wait the rehearsal skipped.

The rehearsal skips CodeDeploy's minutes between shifts, a hook's wait to report, a bake's sleeps:
:meth:`VirtualClock.advance_to` moves the clock forward at once; between skips it runs at real
speed, so code that runs for real (a hook handler, a smoke test) sees its own duration.
:func:`virtual_datetime` makes the guard functions' ``datetime.now(UTC)`` read the clock, so their
records, a bake's "how long have we baked" and the traffic's metrics share one timeline.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any

__all__ = ["Scheduler", "VirtualClock", "floor_to", "human_duration", "virtual_datetime"]


def human_duration(seconds: float) -> str:
    """A span of (virtual) time as the timeline and the summary print it: ``42.5 s``, ``5 min``,
    ``2 min 5 s``."""
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes} min {rest} s" if rest else f"{minutes} min"


def floor_to(when: datetime, seconds: int) -> datetime:
    """``when`` rounded down to a multiple of ``seconds`` since the epoch (a CloudWatch period start)."""
    epoch = int(when.timestamp())
    return datetime.fromtimestamp(epoch - epoch % seconds, UTC)


class VirtualClock:
    """Monotonic virtual time in UTC. Thread-safe.

    ``start`` defaults to the real now, so virtual time is never behind the timestamps moto writes
    itself (a deployment's ``createTime``) and stays close to them (CloudWatch Logs rejects events
    more than two hours ahead).
    """

    def __init__(self, start: datetime | None = None) -> None:
        self._start = start if start is not None else datetime.now(UTC)
        if self._start.tzinfo is None:
            raise ValueError("VirtualClock needs an aware start time (UTC)")
        self._real_origin = time.monotonic()
        self._skipped = 0.0
        self._lock = threading.RLock()  # advance_to reads now() while it holds the lock

    def now(self) -> datetime:
        with self._lock:
            return self._start + timedelta(seconds=time.monotonic() - self._real_origin + self._skipped)

    def elapsed(self) -> timedelta:
        """Virtual time since :attr:`start`."""
        return self.now() - self._start

    def advance(self, seconds: float) -> datetime:
        """Skip ``seconds`` of waiting; returns the new now."""
        if seconds < 0:
            raise ValueError("the clock only moves forward")
        with self._lock:
            self._skipped += seconds
        return self.now()

    def advance_to(self, when: datetime) -> datetime:
        """Skip ahead to ``when`` (nothing happens if it is already past)."""
        with self._lock:
            self._skipped += max((when - self.now()).total_seconds(), 0.0)
        return self.now()


class _AnyDatetime(type):
    # NOTE: code that checks ``isinstance(value, datetime)`` with the patched name must still
    # accept the real datetimes boto3 and pydantic hand it.
    def __instancecheck__(cls, instance: object) -> bool:
        return isinstance(instance, datetime)

    def __subclasscheck__(cls, subclass: type) -> bool:
        return issubclass(subclass, datetime)


class Scheduler:
    """Things due at virtual times (a minute's alarm evaluation, a workflow's Wait, a retry).

    :meth:`run_until` skips from one due time to the next, running what is due in time order;
    an action may schedule more (a recurring tick schedules its next run). ``settle`` runs before
    each look at what is due: it waits for work running beside the clock (a workflow's step).
    """

    def __init__(self, clock: VirtualClock) -> None:
        self.clock = clock
        self.settle: Callable[[], None] = lambda: None
        self._due: list[tuple[datetime, int, str, Callable[[datetime], object]]] = []
        self._order = itertools.count()

    def at(self, when: datetime, label: str, action: Callable[[datetime], object]) -> None:
        """Run ``action(when)`` once the clock reaches ``when`` (its result is ignored)."""
        heapq.heappush(self._due, (when, next(self._order), label, action))

    def next_time(self) -> datetime | None:
        self.settle()
        return self._due[0][0] if self._due else None

    def cancel(self, label: str) -> None:
        self._due = [entry for entry in self._due if entry[2] != label]
        heapq.heapify(self._due)

    def run_until(self, target: datetime, *, stop: Callable[[], bool] = lambda: False) -> None:
        """Run everything due up to ``target`` (unless ``stop()`` turns true), then skip to it."""
        while self.next_time() is not None and self._due[0][0] <= target and not stop():
            when, _, _, action = heapq.heappop(self._due)
            self.clock.advance_to(when)
            action(when)
        if not stop():
            self.clock.advance_to(target)


_patch_lock = threading.RLock()


@contextlib.contextmanager
def virtual_datetime(clock: VirtualClock, owns: Callable[[str], bool]) -> Iterator[Callable[[], None]]:
    """While inside, modules named by ``owns`` see a ``datetime`` that reads ``clock``.

    Yields ``refresh``: call it before running code that may have imported more modules since
    (a handler's first call). Only names bound to :class:`datetime.datetime` itself are replaced,
    and each is put back on exit; instances are real ``datetime`` objects throughout.
    """

    class VirtualDatetime(datetime, metaclass=_AnyDatetime):
        """``datetime`` whose ``now``/``utcnow``/``today`` read the rehearsal's virtual clock."""

        @classmethod
        def now(cls, tz: tzinfo | None = None) -> datetime:  # type: ignore[override]
            current = clock.now()
            return current.astimezone(tz) if tz is not None else current.astimezone().replace(tzinfo=None)

        @classmethod
        def utcnow(cls) -> datetime:  # type: ignore[override]
            return clock.now().replace(tzinfo=None)

        @classmethod
        def today(cls) -> datetime:  # type: ignore[override]
            return cls.now()

    patched: list[tuple[Any, str]] = []

    def refresh() -> None:
        with _patch_lock:
            for name, module in list(sys.modules.items()):
                if module is None or not owns(name):
                    continue
                for attribute, value in list(vars(module).items()):
                    if value is datetime:
                        setattr(module, attribute, VirtualDatetime)
                        patched.append((module, attribute))

    refresh()
    try:
        yield refresh
    finally:
        with _patch_lock:
            for module, attribute in reversed(patched):
                if getattr(module, attribute, None) is VirtualDatetime:
                    setattr(module, attribute, datetime)
