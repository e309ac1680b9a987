"""The Lambda runtime's part in one invocation, run as a script in the function's own process.

:mod:`deployguard_cli.localaws.lambda_runner` reads this file with :mod:`importlib.resources`,
copies it next to its code cache and starts ``python -u <that copy> <spec JSON>`` with the version's
code as the working directory and the version's environment (see the runner's ``_run``). Here: put
the code on ``sys.path``, load the ``Handler`` (``module.function``), tell the runner through the
ready pipe that init is over and how much it logged, call the handler with the event from stdin
and a context shaped like the Python runtime's, and write the answer (or the runtime's error
payload) to the result file. Shapes and error types follow awslambdaric, the Python runtime client.
In the runner's pool mode the spec says ``serve``: after init the process becomes the version's
fork server (:func:`serve`) and each invocation runs in a worker forked from it (:func:`worker`).

Standard library only, and nothing heavy at import: this runs on every cold start. DeployGuard
imports only its :class:`LambdaContext` (``deployguard rehearse`` hands the same context to the guard
functions it runs in-process); it is a module so that ruff and mypy check it.
"""

from __future__ import annotations

import json
import os
import sys
import time

# NOTE: not `from typing import TYPE_CHECKING`: importing typing costs a few milliseconds on every
# cold start, and mypy treats any name TYPE_CHECKING as true.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any, TypeVar

    _Slotted = TypeVar("_Slotted", "ClientContext", "Client", "CognitoIdentity")

HERE = __file__
"""This file: its frames are left out of the stack trace an exception answers with."""


class ClientContext:
    __slots__ = ("client", "custom", "env")
    custom: dict[str, Any] | None
    env: dict[str, Any] | None
    client: Client | dict[str, Any] | None


class Client:
    __slots__ = ("app_package_name", "app_title", "app_version_code", "app_version_name", "installation_id")
    installation_id: str | None
    app_title: str | None
    app_version_name: str | None
    app_version_code: str | None
    app_package_name: str | None


class CognitoIdentity:
    __slots__ = ("cognito_identity_id", "cognito_identity_pool_id")
    cognito_identity_id: str | None
    cognito_identity_pool_id: str | None


def from_dict(cls: type[_Slotted], data: dict[str, Any] | None) -> _Slotted | None:
    """An object of ``cls`` with each slot from ``data`` (missing keys give None); None for None."""
    if data is None:
        return None
    obj = cls()
    for name in cls.__slots__:
        setattr(obj, name, data.get(name))
    return obj


class LambdaContext:
    """The handler's ``context``, as the Python runtime builds it."""

    def __init__(
        self,
        request_id: str,
        invoked_function_arn: str,
        client_context: dict[str, Any] | None,
        deadline_ms: int,
    ) -> None:
        env = os.environ
        self.aws_request_id = request_id
        self.log_group_name = env.get("AWS_LAMBDA_LOG_GROUP_NAME")
        self.log_stream_name = env.get("AWS_LAMBDA_LOG_STREAM_NAME")
        self.function_name = env.get("AWS_LAMBDA_FUNCTION_NAME")
        self.memory_limit_in_mb = env.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE")
        self.function_version = env.get("AWS_LAMBDA_FUNCTION_VERSION")
        self.invoked_function_arn = invoked_function_arn
        self.tenant_id = None
        self.client_context = from_dict(ClientContext, client_context)
        if self.client_context is not None and isinstance(self.client_context.client, dict):
            self.client_context.client = from_dict(Client, self.client_context.client)
        self.identity = from_dict(CognitoIdentity, {})
        self._deadline_ms = deadline_ms

    def get_remaining_time_in_millis(self) -> int:
        return max(self._deadline_ms - int(time.time() * 1000), 0)

    def log(self, msg: object) -> None:
        sys.stdout.write(str(msg))


class Fault(Exception):
    """A failure the runtime names itself (``Runtime.ImportModuleError`` …), not the handler's."""

    def __init__(self, kind: str, message: str, trace: list[str] | None = None) -> None:
        super().__init__(message)
        self.kind, self.message, self.trace = kind, message, trace


def error(message: str, kind: str, trace: list[str] | None, request_id: str) -> dict[str, Any]:
    return {
        "errorMessage": message or "",
        "errorType": kind or "",
        "requestId": request_id,
        "stackTrace": trace or [],
    }


def exception_error(exc: Exception, request_id: str) -> dict[str, Any]:
    # NOTE: imported here: traceback is needed only when something failed.
    import traceback  # noqa: PLC0415

    frames = traceback.extract_tb(exc.__traceback__)
    while frames and frames[0].filename == HERE:
        frames.pop(0)
    return error(str(exc), type(exc).__name__, traceback.format_list(frames), request_id)


def log_error(result: dict[str, Any]) -> None:
    """The runtime's one-record error log: lines joined by ``\\r``, indents as no-break spaces."""
    text = "[ERROR] " + result["errorType"]
    if result["errorMessage"]:
        text += ": " + result["errorMessage"]
    lines = [text, "Traceback (most recent call last):"]
    for element in result["stackTrace"]:
        for line in element.splitlines():
            stripped = line.lstrip(" ")
            lines.append("\u00a0" * (len(line) - len(stripped)) + stripped)
    sys.stdout.write("\r".join(lines) + "\n")


def load_handler(handler: str) -> Callable[[Any, LambdaContext], Any]:
    # NOTE: imported here, as the runtime does, once the code's folder is on sys.path.
    import importlib  # noqa: PLC0415

    try:
        module_name, function_name = handler.rsplit(".", 1)
    except ValueError as exc:
        raise Fault("Runtime.MalformedHandlerName", f"Bad handler '{handler}': {exc}") from exc
    if module_name.split(".")[0] in sys.builtin_module_names:
        raise Fault(
            "Runtime.BuiltInModuleConflict", f"Cannot use built-in module {module_name} as a handler module"
        )
    try:
        module = importlib.import_module(module_name.replace("/", "."))
    except ImportError as exc:
        raise Fault("Runtime.ImportModuleError", f"Unable to import module '{module_name}': {exc}") from exc
    except SyntaxError as exc:
        trace = [f'  File "{exc.filename}" Line {exc.lineno}\n    {exc.text}']
        raise Fault(
            "Runtime.UserCodeSyntaxError", f"Syntax error in module '{module_name}': {exc}", trace
        ) from exc
    try:
        found: Callable[[Any, LambdaContext], Any] = getattr(module, function_name)
    except AttributeError:
        raise Fault(
            "Runtime.HandlerNotFound", f"Handler '{function_name}' missing on module '{module_name}'"
        ) from None
    return found


def encode_default(obj: Any) -> float:
    """``json.dumps``'s fallback: a Decimal becomes a float (decimal is not imported to check)."""
    if type(obj).__name__ == "Decimal":
        return float(obj)
    raise TypeError(f"Object of type {type(obj).__name__} is not JSON serializable")


def write_result(path: str, result: dict[str, Any]) -> None:
    # NOTE: open(), not pathlib: pathlib is a heavy import for a cold start.
    with open(path, "w", encoding="utf-8") as out:  # noqa: PTH123
        json.dump(result, out)


def init(spec: dict[str, Any]) -> Callable[[Any, LambdaContext], Any] | None:
    """Load the handler (Lambda's init phase); on failure, log and write the runtime's error."""
    sys.path[0] = spec["task_root"]
    try:
        return load_handler(spec["handler"])
    except Fault as fault:
        result = error(fault.message, fault.kind, fault.trace, "")
    except Exception as exc:
        result = exception_error(exc, "")
    log_error(result)
    write_result(spec["result_path"], {"error": result})
    return None


def invoke(handler: Callable[[Any, LambdaContext], Any], spec: dict[str, Any], raw: bytes) -> None:
    """One invocation: the handler's answer (or the runtime's error) to ``spec["result_path"]``."""
    request_id = spec["request_id"]
    deadline_ms = int(time.time() * 1000) + spec["timeout_ms"]
    started = time.perf_counter()
    try:
        context = LambdaContext(request_id, spec["invoked_function_arn"], spec["client_context"], deadline_ms)
        response = handler(json.loads(raw) if raw.strip() else {}, context)
        try:
            payload = json.dumps(response, default=encode_default, ensure_ascii=False, allow_nan=True)
        except (TypeError, ValueError) as exc:
            raise Fault("Runtime.MarshalError", f"Unable to marshal response: {exc}") from exc
    except Fault as fault:
        result = error(fault.message, fault.kind, fault.trace, request_id)
    except Exception as exc:
        result = exception_error(exc, request_id)
    else:
        write_result(
            spec["result_path"], {"payload": payload, "duration_ms": (time.perf_counter() - started) * 1000}
        )
        return
    log_error(result)
    write_result(
        spec["result_path"], {"error": result, "duration_ms": (time.perf_counter() - started) * 1000}
    )


def serve(handler: Callable[[Any, LambdaContext], Any], status_fd: int) -> None:
    """The worker pool's side: a fork server for one version, its handler loaded (init done).

    Reads one JSON request a line on stdin (``request_id``, ``invoked_function_arn``,
    ``client_context``, ``timeout_ms``, ``event_path``, ``output_path``, ``result_path``) and forks
    a worker for each: the worker runs that one invocation from this initialized state and exits,
    so nothing one invocation does reaches the next. Writes ``started <request id> <pid>`` and,
    once reaped, ``exit <request id> <exit code>`` to ``status_fd``. Once stdin closes it waits for
    the running workers and exits.
    """
    import select  # noqa: PLC0415 - only the pool's fork server needs these
    import signal  # noqa: PLC0415

    # NOTE: SIGCHLD through a wakeup pipe, not pidfds: the same code runs on macOS.
    wake_read, wake_write = os.pipe()
    os.set_blocking(wake_read, False)
    os.set_blocking(wake_write, False)
    signal.signal(signal.SIGCHLD, lambda _signal, _frame: None)
    signal.set_wakeup_fd(wake_write)
    running: dict[int, str] = {}
    pending = b""
    accepting = True
    while accepting or running:
        readable, _, _ = select.select([0, wake_read] if accepting else [wake_read], [], [])
        if wake_read in readable:
            drain(wake_read)
        reap(running, status_fd)
        if not accepting or 0 not in readable:
            continue
        chunk = os.read(0, 65536)
        if not chunk:
            accepting = False  # the runner stopped this server: finish the running workers
            continue
        pending += chunk
        while b"\n" in pending:
            line, pending = pending.split(b"\n", 1)
            request: dict[str, Any] = json.loads(line)
            pid = os.fork()
            if pid == 0:
                worker(handler, request, (status_fd, wake_read, wake_write))
            running[pid] = request["request_id"]
            os.write(status_fd, b"started %s %d\n" % (request["request_id"].encode(), pid))


def drain(fd: int) -> None:
    """Read a non-blocking pipe empty."""
    while True:
        try:
            if not os.read(fd, 512):
                return
        except BlockingIOError:
            return


def reap(running: dict[int, str], status_fd: int) -> None:
    """Report every worker that exited (``exit <request id> <exit code>``; -N: killed by signal N)."""
    while running:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        code = os.waitstatus_to_exitcode(status)
        os.write(status_fd, b"exit %s %d\n" % (running.pop(pid).encode(), code))


def worker(
    handler: Callable[[Any, LambdaContext], Any], request: dict[str, Any], fds: tuple[int, ...]
) -> None:
    """A forked worker: its own session (the runner kills the group), its own output, one invocation."""
    import contextlib  # noqa: PLC0415
    import signal  # noqa: PLC0415

    code = 1
    try:
        os.setsid()
        signal.set_wakeup_fd(-1)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        for fd in fds:
            os.close(fd)
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        out = os.open(request["output_path"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.dup2(out, 1)
        os.dup2(out, 2)
        os.close(null)
        os.close(out)
        with open(request["event_path"], "rb") as event:  # noqa: PTH123 - see write_result
            raw = event.read()
        invoke(handler, request, raw)
        code = 0
    except SystemExit as exc:  # the handler called sys.exit: the runtime exits with its code
        code = exc.code if isinstance(exc.code, int) else 1
    finally:
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):  # exiting anyway
                stream.flush()
        os._exit(code)


def main() -> None:
    """``sys.argv[1]`` is the runner's spec: ``handler``, ``task_root``, ``result_path`` and
    ``ready_fd`` (the pipe that gets init's logged byte count once the handler is loaded); then
    either ``serve`` (the worker pool: :func:`serve` with ``ready_fd`` as its status pipe) or one
    invocation: ``request_id``, ``invoked_function_arn``, ``client_context``, ``timeout_ms``, the
    event on stdin."""
    spec: dict[str, Any] = json.loads(sys.argv[1])
    handler = init(spec)
    if handler is None:
        return
    sys.stdout.flush()
    try:
        logged = os.lseek(1, 0, os.SEEK_CUR)  # what init wrote: stdout and stderr share this file
    except OSError:
        logged = -1
    os.write(spec["ready_fd"], b"%d\n" % logged)
    if spec.get("serve"):
        serve(handler, spec["ready_fd"])
        return
    os.close(spec["ready_fd"])
    invoke(handler, spec, sys.stdin.buffer.read())


if __name__ == "__main__":
    main()
