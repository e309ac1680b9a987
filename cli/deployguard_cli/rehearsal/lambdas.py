"""The guard functions' real handlers, run in this process the way Lambda runs them.

Each function of template.yaml is its handler file (``functions/<name>/app.py``), loaded by path
(``importlib.util.spec_from_file_location``; no ``sys.path`` edits) the first time it is invoked.
An invocation runs with the function's environment variables from the template plus Lambda's own
(``AWS_LAMBDA_FUNCTION_NAME`` …), the Python runtime's context object (the one
:mod:`deployguard_cli.localaws.bootstrap` builds) with the function's timeout, and its standard
output captured the way Lambda ships it to CloudWatch Logs: the Powertools JSON log lines (outcome
records among them) and the EMF metric documents. :class:`FunctionHost` hands each finished
:class:`Invocation` to a callback; the world writes its lines to the function's log group and its
EMF metrics to CloudWatch, as Lambda and CloudWatch would.

In-process (not a subprocess per invocation) because the handlers call AWS: here the calls reach
the in-process moto directly. The example application, which must run with each version's own
environment and code, runs through :mod:`deployguard_cli.localaws.lambda_runner` instead.

Invocations run one at a time (a lock): the environment and the captured output are per process.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import logging
import os
import sys
import threading
import time
import traceback
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from types import ModuleType
from typing import Any, TextIO

from deployguard_cli.localaws.bootstrap import LambdaContext
from deployguard_cli.rehearsal.clock import VirtualClock, virtual_datetime
from deployguard_cli.rehearsal.wiring import ACCOUNT_ID, REGION, FunctionSpec

__all__ = ["AsyncCall", "FunctionHost", "Invocation"]

_MODULE_PREFIX = "deployguard_rehearsal_handler_"


@dataclass(frozen=True)
class Invocation:
    """One finished invocation of a guard function."""

    function_name: str
    request_id: str
    started_at: datetime  # virtual time
    result: Any
    error_type: str | None
    error_message: str | None
    log_lines: tuple[str, ...]  # START … REPORT (the REPORT line carries its Duration)


class _Router(io.TextIOBase):
    """Standard output that goes to the running invocation's buffer, else where it went before."""

    def __init__(self, passthrough: TextIO) -> None:
        super().__init__()
        self.passthrough = passthrough
        self.sink: io.StringIO | None = None

    def write(self, text: str) -> int:
        sink = self.sink
        return (sink or self.passthrough).write(text)

    def flush(self) -> None:
        if self.sink is None:
            self.passthrough.flush()

    def writable(self) -> bool:
        return True


@dataclass
class AsyncCall:
    """An ``InvocationType=Event`` invocation running on a thread."""

    invocation: Invocation | None = None
    done: threading.Event = field(default_factory=threading.Event)

    def wait(self, timeout: float | None = None) -> bool:
        return self.done.wait(timeout)

    @property
    def error(self) -> str | None:
        """The function error's type once done (``Lambda.Unknown`` if it never ran); else None."""
        if not self.done.is_set():
            return None
        return self.invocation.error_type if self.invocation is not None else "Lambda.Unknown"


class FunctionHost:
    """Runs guard functions' handlers in-process; use as a context manager (it owns stdout)."""

    def __init__(
        self,
        functions: Mapping[str, FunctionSpec],
        *,
        clock: VirtualClock,
        on_invocation: Callable[[Invocation], None] | None = None,
    ) -> None:
        self._by_name = {spec.name: spec for spec in functions.values()}
        self._clock = clock
        self._on_invocation = on_invocation
        self._modules: dict[str, ModuleType] = {}
        self._lock = threading.Lock()
        self._router: _Router | None = None
        self._stack = contextlib.ExitStack()
        self._refresh: Callable[[], None] = lambda: None
        self._calls: list[AsyncCall] = []

    def __enter__(self) -> FunctionHost:
        self._router = _Router(sys.stdout)
        self._stack.enter_context(_redirected_stdout(self._router))
        self._refresh = self._stack.enter_context(virtual_datetime(self._clock, _owns_time))
        return self

    def __exit__(self, *exc: object) -> None:
        self._stack.close()
        self._router = None

    def knows(self, function_name: str) -> bool:
        spec = self._by_name.get(function_name)
        return spec is not None and spec.handler_file.is_file()

    def max_retry_attempts(self, function_name: str) -> int:
        """The function's EventInvokeConfig.MaximumRetryAttempts (Lambda's default: 2)."""
        spec = self._by_name.get(function_name)
        return spec.max_retry_attempts if spec is not None else 2

    def spec(self, function_name: str) -> FunctionSpec | None:
        return self._by_name.get(function_name)

    def invoke(self, function_name: str, event: Mapping[str, Any]) -> Invocation:
        """A synchronous (RequestResponse) invocation; a handler exception is a function error."""
        if not self.knows(function_name):
            raise LookupError(f"no handler file for function {function_name}")
        with self._lock:
            invocation = self._run(self._by_name[function_name], dict(event))
        if self._on_invocation is not None:
            self._on_invocation(invocation)
        return invocation

    def invoke_async(self, function_name: str, event: Mapping[str, Any]) -> AsyncCall:
        """An asynchronous (Event) invocation: returns at once, the handler runs on a thread."""
        call = AsyncCall()

        def run() -> None:
            try:
                call.invocation = self.invoke(function_name, event)
            finally:
                call.done.set()

        self._calls.append(call)
        threading.Thread(target=run, name=f"lambda-event-{function_name}", daemon=True).start()
        return call

    def drain(self, timeout: float) -> bool:
        """Wait for asynchronous invocations still running (a hook goes on after it reported:
        it logs its outcome record and publishes its alert); True when none is left."""
        return all(call.wait(timeout) for call in self._calls)

    def _handler(self, spec: FunctionSpec) -> Callable[..., Any]:
        module = self._modules.get(spec.logical_id)
        if module is None:
            name = _MODULE_PREFIX + spec.logical_id
            loader_spec = importlib.util.spec_from_file_location(name, spec.handler_file)
            if loader_spec is None or loader_spec.loader is None:
                raise ImportError(f"cannot load {spec.handler_file}")
            module = importlib.util.module_from_spec(loader_spec)
            loader_spec.loader.exec_module(module)
            self._modules[spec.logical_id] = module
        handler: Callable[..., Any] = getattr(module, spec.handler_function)
        return handler

    def _run(self, spec: FunctionSpec, event: dict[str, Any]) -> Invocation:
        request_id = str(uuid.uuid4())
        sink = io.StringIO()
        started_at = self._clock.now()
        result: Any = None
        error_type = error_message = None
        with environment(_lambda_environment(spec, request_id)), self._capturing(sink):
            started = time.perf_counter()
            try:
                handler = self._handler(spec)
                self._refresh()  # the handler's imports may have brought in more modules
                arn = f"arn:aws:lambda:{REGION}:{ACCOUNT_ID}:function:{spec.name}"
                deadline_ms = int(time.time() * 1000) + spec.timeout * 1000
                result = handler(event, LambdaContext(request_id, arn, None, deadline_ms))
            except Exception as exc:  # a function error, as Lambda reports it
                error_type, error_message = type(exc).__name__, str(exc)
                sink.write(f"[ERROR] {error_type}: {error_message}\n{traceback.format_exc()}")
            duration_ms = (time.perf_counter() - started) * 1000
        lines = [f"START RequestId: {request_id} Version: $LATEST"]
        lines += [line for line in sink.getvalue().splitlines() if line.strip()]
        lines += [
            f"END RequestId: {request_id}",
            f"REPORT RequestId: {request_id}\tDuration: {duration_ms:.2f} ms\t"
            f"Memory Size: {spec.memory_size} MB",
        ]
        return Invocation(
            function_name=spec.name,
            request_id=request_id,
            started_at=started_at,
            result=result,
            error_type=error_type,
            error_message=error_message,
            log_lines=tuple(lines),
        )

    @contextlib.contextmanager
    def _capturing(self, sink: io.StringIO) -> Iterator[None]:
        router = self._router
        if router is None:
            raise RuntimeError("FunctionHost is used outside its `with` block")
        router.sink = sink
        try:
            yield
        finally:
            router.sink = None


def _owns_time(module_name: str) -> bool:
    """Modules whose ``datetime`` follows the virtual clock: the layer and the handler files."""
    return module_name.startswith(("deployguard.", _MODULE_PREFIX)) or module_name == "deployguard"


def _lambda_environment(spec: FunctionSpec, request_id: str) -> dict[str, str]:
    """The function's variables and Lambda's own (the context object reads them, as the runtime's)."""
    return {
        **spec.environment,
        "AWS_LAMBDA_FUNCTION_NAME": spec.name,
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(spec.memory_size),
        "AWS_LAMBDA_LOG_GROUP_NAME": spec.log_group,
        "AWS_LAMBDA_LOG_STREAM_NAME": f"rehearsal/[$LATEST]{request_id.replace('-', '')}",
        "AWS_REGION": REGION,
        "AWS_DEFAULT_REGION": REGION,
        "_HANDLER": spec.handler,
    }


@contextlib.contextmanager
def environment(variables: Mapping[str, str], unset: tuple[str, ...] = ()) -> Iterator[None]:
    """os.environ with ``variables`` set and ``unset`` removed, restored afterwards."""
    saved = {key: os.environ.get(key) for key in (*variables, *unset)}
    os.environ.update(variables)
    for key in unset:
        os.environ.pop(key, None)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@contextlib.contextmanager
def _redirected_stdout(router: _Router) -> Iterator[None]:
    """sys.stdout, and the stream handlers of the named loggers (Powertools gives its Logger a plain
    ``StreamHandler`` bound to whatever ``sys.stdout`` was when the Logger was created), go through
    ``router`` until exit. The root logger and test-framework handlers (subclasses) are left alone."""
    redirected: list[tuple[logging.StreamHandler[Any], Any]] = []
    for candidate in list(logging.Logger.manager.loggerDict.values()):
        for handler in getattr(candidate, "handlers", []):
            if type(handler) is logging.StreamHandler and handler.stream is not sys.stderr:
                redirected.append((handler, handler.setStream(router)))
    try:
        with contextlib.redirect_stdout(router):
            yield
    finally:
        for handler, stream in redirected:
            if handler.stream is router:
                handler.setStream(stream)
