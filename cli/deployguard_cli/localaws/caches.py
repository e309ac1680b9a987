"""The user's cache folders the embedded AWS installs into, once per machine (the Node SDK a
runtime ships, a Python function's requirements), and the lock that lets processes share them."""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

__all__ = ["locked", "user_cache"]


def user_cache(variable: str, name: str) -> Path:
    """``$variable`` when set, else ``deployguard/<name>`` in the user's cache folder
    (``$XDG_CACHE_HOME``, else ``~/.cache``)."""
    configured = os.environ.get(variable)
    if configured:
        return Path(configured)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "deployguard" / name


@contextlib.contextmanager
def locked(path: Path) -> Iterator[None]:
    """An exclusive lock on ``path`` between processes and between threads (each opens its own)."""
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
