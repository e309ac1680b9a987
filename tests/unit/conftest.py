"""The unit tier needs no AWS: a unit test that imports moto or opens a network socket fails.

A test that needs either belongs in tests/integration (moto) or tests/e2e (the rehearsal).

NOTE: the moto guard is an import hook, on while a unit module is collected and while a unit test
runs. An import finds a module already imported without asking any hook, so the guard holds where
no other tier has imported moto first: in a process that runs the unit tier alone (``make unit``,
and ``make test``, which runs each tier in a pytest process of its own). The socket guard holds in
any run.
"""

from __future__ import annotations

import importlib.abc
import socket
import sys
from collections.abc import Generator, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

UNIT = Path(__file__).resolve().parent
MOVE_IT = "a unit test needs no AWS: move it to tests/integration"
LOCAL_HOSTS = {None, "localhost", "127.0.0.1", "::1", b"localhost", b"127.0.0.1"}


class NoMoto(importlib.abc.MetaPathFinder):
    """Refuses to import moto (directly or through a module that uses it) while ``on``."""

    on = False

    def find_spec(self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None) -> None:
        if self.on and (fullname == "moto" or fullname.startswith("moto.")):
            raise ImportError(f"{fullname} imported in tests/unit: {MOVE_IT}")
        return None


NO_MOTO = NoMoto()
sys.meta_path.insert(0, NO_MOTO)


@contextmanager
def moto_refused_in_unit_tier(path: Path) -> Iterator[None]:
    """The moto guard, on while the collector or the test at ``path`` is in tests/unit."""
    NO_MOTO.on = path == UNIT or UNIT in path.parents
    try:
        yield
    finally:
        NO_MOTO.on = False


@pytest.hookimpl(wrapper=True)
def pytest_make_collect_report(collector: pytest.Collector) -> Generator[None, Any, Any]:
    with moto_refused_in_unit_tier(collector.path):
        return (yield)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Generator[None, Any, Any]:
    with moto_refused_in_unit_tier(item.path):
        return (yield)


@pytest.fixture(autouse=True)
def no_network(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Fails the test that looks a host up, or connects or binds an internet socket, even when the
    code under test swallows the error (botocore retries and wraps connection errors)."""
    attempts: list[str] = []

    def guarded(method: str) -> Any:
        real = getattr(socket.socket, method)

        def refuse(self: socket.socket, address: Any, *args: Any) -> Any:
            if self.family == socket.AF_UNIX:
                return real(self, address, *args)
            attempts.append(f"{method} {address!r}")
            raise OSError(f"{method} to {address!r} in tests/unit: {MOVE_IT}")

        return refuse

    real_getaddrinfo = socket.getaddrinfo

    def lookup(host: Any, *args: Any, **kwargs: Any) -> Any:
        if host not in LOCAL_HOSTS:
            attempts.append(f"getaddrinfo {host!r}")
            raise OSError(f"name lookup of {host!r} in tests/unit: {MOVE_IT}")
        return real_getaddrinfo(host, *args, **kwargs)

    for method in ("connect", "connect_ex", "bind"):
        monkeypatch.setattr(socket.socket, method, guarded(method))
    monkeypatch.setattr(socket, "getaddrinfo", lookup)
    yield
    if attempts:
        pytest.fail(f"network use in a unit test ({', '.join(attempts)}): {MOVE_IT}", pytrace=False)
