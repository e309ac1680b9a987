"""A bounded, expiring, thread-safe memory of answers kept while the execution environment is warm.

NOTE: hand-written (25 lines) rather than a library: the layer ships no cache library (cachetools
would be a new runtime dependency for this), and Powertools' ``LRUDict`` is untyped and never expires.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class WarmCache(Generic[K, V]):
    """At most ``max_items`` entries (the least recently used go first), each for ``max_age`` seconds
    (None: until evicted)."""

    def __init__(
        self, max_items: int, max_age: float | None = None, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._entries: OrderedDict[K, tuple[float, V]] = OrderedDict()
        self._max_items, self._max_age, self._clock = max_items, max_age, clock
        self._lock = threading.Lock()

    def get(self, key: K) -> V | None:
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return None
            if self._max_age is not None and self._clock() - entry[0] >= self._max_age:
                del self._entries[key]
                return None
            self._entries.move_to_end(key)
            return entry[1]

    def put(self, key: K, value: V) -> None:
        with self._lock:
            self._entries[key] = (self._clock(), value)
            self._entries.move_to_end(key)
            while len(self._entries) > self._max_items:
                self._entries.popitem(last=False)

    def forget(self, key: K) -> None:
        with self._lock:
            self._entries.pop(key, None)
