"""Run a Lambda version's real code, in a subprocess, behind moto's Lambda API (no Docker).

moto without Docker (``mock_aws(config={"lambda": {"use_docker": False}})``) answers ``Invoke``
by echoing the payload or popping a queued result. :func:`install` patches
``LambdaSimpleBackend.invoke`` so that invoking a function by name, ARN, version or alias runs
the code of exactly the version that moto resolves (an alias resolves to its
``FunctionVersion``; routing weights are ignored: the caller picks the version). It also wraps
``LambdaResponse.invoke``, because moto 5.2 drops the ``Qualifier`` query parameter there. The
function's side of an invocation (the runtime's part) is :mod:`deployguard_cli.localaws.bootstrap`.

What is real:
  * the code: the version's deployment zip as moto stores it (``create_function`` /
    ``update_function_code``; a published version keeps its own zip), extracted once per code
    sha256, its layers' zips under ``python/`` and ``python/lib/pythonX.Y/site-packages`` on
    the path, the ``Handler`` (``module.function``; the module may contain dots or slashes);
  * the version's ``Environment.Variables``, ``Timeout``, ``MemorySize`` (reported only) and
    the Lambda variables (``AWS_LAMBDA_FUNCTION_NAME`` / ``_VERSION`` / ``_MEMORY_SIZE``,
    ``AWS_REGION``, ``_HANDLER``, ``LAMBDA_TASK_ROOT``, ``TZ=:UTC`` ...);
  * the event on stdin, a context object shaped like the Python runtime's (``aws_request_id``,
    ``function_name``, ``function_version``, ``invoked_function_arn``, ``memory_limit_in_mb`` (a
    string, as in the runtime), ``get_remaining_time_in_millis()``, ``log()``, ``identity`` and
    ``client_context`` decoded from ``X-Amz-Client-Context`` with ``.custom``/``.env``/``.client``);
  * the answer: the handler's JSON return; an exception gives the runtime's payload
    ``{"errorMessage", "errorType", "requestId", "stackTrace"}`` with ``x-amz-function-error:
    Unhandled``; init failures give ``Runtime.ImportModuleError`` / ``Runtime.HandlerNotFound``
    / ...; a handler that outlives ``Timeout`` is killed and answers ``Sandbox.Timedout`` /
    ``RequestId: … Error: Task timed out after N.NN seconds`` (today's shape; older Lambda
    answered only ``{"errorMessage": "<time> <id> Task timed out after …"}``);
    ``x-amz-executed-version``;
    ``LogType=Tail`` returns the last 4 KB of the log (``START``/``END``/``REPORT`` lines around
    the subprocess's merged stdout and stderr) in ``x-amz-log-result``; the same log goes to
    moto's CloudWatch Logs group ``/aws/lambda/<name>``, one stream per execution environment.

What is simulated or left out:
  * execution environments, in pool mode (the default where ``os.fork`` exists), one pool for
    both runtimes (:class:`_Pool`), keyed by function, version, code, layers, handler, runtime,
    environment, memory, region, log group and endpoint, so an environment never serves another
    version or configuration; every environment is a process in its own process group, started as
    a fresh invocation is, that runs init once; its first invocation logs init and ``Init
    Duration``, later ones are warm starts, all in its log stream; a failed init is not kept; a
    dead environment is replaced; at most :data:`POOL_SIZE` idle environments are kept (the least
    recently used stops first).
    Python: one fork server per key forks a worker per invocation (concurrent ones too), in a
    session of its own, killed with everything it started when the invocation ends or times out;
    each invocation starts from the state init left (no module or ``os.environ`` change carries
    over, unlike a warm Lambda environment); a crashed worker does not touch the server.
    Node.js: warm environments as on Lambda: a ``node`` process (:file:`bootstrap_node.js` in
    serve mode) serves one invocation at a time, module state and ``process.env`` carrying over;
    concurrent invocations get more environments, up to :data:`ENVIRONMENTS_PER_VERSION` per key
    (a further one waits for a free environment; the wait is not charged to its timeout); between
    invocations the process waits in a blocking read, so what an invocation left pending (a timer)
    runs only when the next one arrives, as in a frozen environment; a timeout or a crash
    (``process.exit``, an uncaught exception) kills that environment only, and the next
    invocation is a cold start.
    In fresh mode (:func:`set_mode`) every invocation of either runtime is a cold start in a new
    process and log stream of its own;
  * init time is not charged to the timeout, as on Lambda; ``Duration`` is the handler's own time;
    ``Runtime`` picks the interpreter: ``python3.X`` runs on Python 3.X found on this machine (this
    interpreter, ``python3.X`` on PATH or ``~/.pyenv/versions/3.X*``; another interpreter sees
    only its own packages and the layers), ``nodejs*`` on the ``node`` on PATH (whatever its
    version) through :file:`bootstrap_node.js`, with the AWS SDK its runtime ships
    (:mod:`.node_sdk`); any other runtime, or a Python not present, is refused with
    ``InvalidRuntimeException`` naming the runtime and what runs here; memory is not limited;
    there are no concurrency limits or throttles;
  * credentials are fake role credentials; ``AWS_ENDPOINT_URL`` points at the moto server
    when the invoke came through one (``ThreadedMotoServer``/``moto_server``) and otherwise at
    a closed local port, so code that calls AWS from an in-process ``mock_aws`` fails fast
    instead of reaching a real account; ``AWS_CONFIG_FILE``/``AWS_SHARED_CREDENTIALS_FILE``
    point at ``os.devnull`` so this machine's AWS profiles cannot leak in;
  * ``InvocationType=Event`` returns 202 at once and runs the function on a background thread
    (:func:`wait_for_events` joins them); failed asynchronous invocations are not retried;
    ``DryRun`` runs nothing;
  * the runtime's root logging handler is not installed (keeps the cold start cheap);
  * functions that cannot run here (image package type, no zip) keep
    moto's simple behaviour: a queued result (``/moto-api/static/lambda-simple/response``) or
    the echoed payload. Queued results are not consumed by functions that run.
"""

from __future__ import annotations

import atexit
import base64
import binascii
import contextlib
import contextvars
import functools
import hashlib
import io
import json
import math
import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
import zipfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Any, Final

from deployguard_cli.localaws import faults, node_sdk
from deployguard_cli.localaws.lambda_names import qualified_function_name

__all__ = [
    "Invocation",
    "find_python",
    "install",
    "invocations",
    "serve_functions_from",
    "set_mode",
    "shutdown",
    "wait_for_events",
    "zip_directory",
]

LOG_TAIL_BYTES: Final = 4096
INIT_TIMEOUT_SECONDS: Final = 10.0
"""Lambda's limit for the init phase; beyond it, init continues on the invocation's timeout."""
CLOSED_ENDPOINT: Final = "http://127.0.0.1:9"
"""Where AWS calls from a function go when the invoke did not come through a moto server."""
FAKE_CREDENTIALS: Final = {
    "AWS_ACCESS_KEY_ID": "ASIALOCALLAMBDAROLE0",
    "AWS_SECRET_ACCESS_KEY": "local-lambda-execution-role-secret",
    "AWS_SESSION_TOKEN": "local-lambda-execution-role-session",
}
_SKIPPED_PARTS: Final = frozenset({"__pycache__", ".pytest_cache", ".mypy_cache", ".ruff_cache"})
_ZIP_EPOCH: Final = (1980, 1, 1, 0, 0, 0)
_PATCH_MARK: Final = "_deployguard_lambda_runner"


@dataclass(frozen=True)
class Invocation:
    """One invocation that ran real code (for tests and the rehearsal's record)."""

    function: str
    version: str
    duration_ms: float
    """The handler's run time, as Lambda's REPORT ``Duration`` (init excluded)."""
    error: str | None
    """The ``errorType`` of a failed invocation (``Sandbox.Timedout`` on a timeout), else None."""
    invocation_type: str
    request_id: str
    init_duration_ms: float


@dataclass(frozen=True)
class _Target:
    """Everything needed to run one function version, read from moto's model at invoke time."""

    function_name: str
    version: str
    invoked_function_arn: str
    handler: str
    runtime: str
    command: tuple[str, ...]
    """The interpreter and its flags that run the bootstrap (``python3.X -u`` or ``node``)."""
    code: bytes
    code_sha256: str
    layers: tuple[tuple[bytes, str], ...]
    environment: Mapping[str, str]
    timeout_seconds: float
    memory_size: int
    region: str
    log_group: str
    logs_backend: Any


@dataclass(frozen=True)
class _Outcome:
    payload: bytes
    error: str | None
    log: bytes
    duration_ms: float
    init_duration_ms: float


class _InvalidRequest(Exception):
    """A malformed Invoke request; ``_client_error`` turns it into moto's HTTP 400 answer."""


_records: list[Invocation] = []
_records_lock = threading.Lock()
_pending: set[threading.Thread] = set()
_pending_lock = threading.Lock()
_extract_lock = threading.Lock()
_install_lock = threading.Lock()
_asked_qualifier: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "_asked_qualifier", default=None
)


def install() -> None:
    """Patch moto's Docker-less Lambda backend so Invoke runs real code. Idempotent.

    Works for an in-process ``mock_aws(config={"lambda": {"use_docker": False}})`` and for a
    ``moto.server.ThreadedMotoServer`` in this process (with ``use_docker`` False in moto's config).
    """
    # NOTE: moto is imported here, not at the top: it is heavy and zip_directory needs none of it.
    from moto.awslambda.responses import LambdaResponse  # noqa: PLC0415
    from moto.awslambda_simple.models import LambdaSimpleBackend  # noqa: PLC0415

    with _install_lock:
        if getattr(LambdaSimpleBackend.invoke, _PATCH_MARK, False):
            return
        original: Callable[..., bytes | str | None] = LambdaSimpleBackend.invoke
        original_response: Callable[[Any], Any] = LambdaResponse.invoke

        def invoke(  # noqa: PLR0917 - moto's signature
            self: Any,
            function_name: str,
            qualifier: str | None,
            body: Any,
            headers: Any,
            response_headers: Any,
        ) -> bytes | str | None:
            return _invoke(
                self,
                original,
                function_name=function_name,
                qualifier=qualifier or _asked_qualifier.get(),
                body=body,
                headers=headers,
                response_headers=response_headers,
            )

        def response_invoke(self: Any) -> Any:
            # NOTE: moto 5.2's LambdaResponse.invoke reads the query parameter as "qualifier", but
            # the API (and boto3) send "Qualifier": without this every invoke ran $LATEST.
            token = _asked_qualifier.set(self._get_param("Qualifier"))
            try:
                return original_response(self)
            finally:
                _asked_qualifier.reset(token)

        setattr(invoke, _PATCH_MARK, True)
        LambdaSimpleBackend.invoke = invoke  # type: ignore[method-assign]
        LambdaResponse.invoke = response_invoke  # type: ignore[method-assign]


def invocations() -> list[Invocation]:
    """Every invocation that ran real code in this process so far, oldest first (a copy)."""
    with _records_lock:
        return list(_records)


def wait_for_events(timeout: float | None = None) -> bool:
    """Wait for ``InvocationType=Event`` invocations still running; True when none is left."""
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        with _pending_lock:
            pending = list(_pending)
        if not pending:
            return True
        for thread in pending:
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                return False
            thread.join(remaining)


def zip_directory(path: Path, *, replacements: dict[str, tuple[str, str]] | None = None) -> bytes:
    """A deployment zip of a function folder (e.g. ``functions/orders``), byte-for-byte stable.

    ``replacements`` maps a file's path relative to ``path`` (``"app.py"``, ``"pkg/mod.py"``) to
    ``(old, new)``: ``old`` must occur exactly once in that file and is replaced by ``new``, so a
    rehearsal can build a release that differs from the real code by one edit. Caches
    (``__pycache__``, ``*.pyc`` ...) are left out; entries are sorted with a fixed timestamp so
    the same content always has the same CodeSha256.
    """
    root = Path(path)
    if not root.is_dir():
        raise NotADirectoryError(f"zip_directory: {root} is not a directory")
    pending = dict(replacements or {})
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for file in sorted(p for p in root.rglob("*") if p.is_file()):
            relative = file.relative_to(root)
            if _SKIPPED_PARTS.intersection(relative.parts) or file.suffix in {".pyc", ".pyo"}:
                continue
            name = relative.as_posix()
            data = file.read_bytes()
            if name in pending:
                data = _replace_once(name, data, *pending.pop(name))
            info = zipfile.ZipInfo(name, date_time=_ZIP_EPOCH)
            info.compress_type = zipfile.ZIP_DEFLATED
            executable = file.stat().st_mode & 0o111
            info.external_attr = (0o100755 if executable else 0o100644) << 16
            archive.writestr(info, data)
    if pending:
        raise FileNotFoundError(
            f"zip_directory: no file {sorted(pending)} under {root} to apply the replacement to"
        )
    return buffer.getvalue()


def _replace_once(name: str, data: bytes, old: str, new: str) -> bytes:
    text = data.decode("utf-8")
    count = text.count(old)
    if count != 1:
        found = "is not in" if count == 0 else f"occurs {count} times in"
        raise ValueError(f"zip_directory: the text to replace {found} {name} (needs exactly one): {old!r}")
    return text.replace(old, new).encode("utf-8")


# --- the patched Invoke -------------------------------------------------------------------------


def _invoke(
    backend: Any,
    original: Callable[..., bytes | str | None],
    *,
    function_name: str,
    qualifier: str | None,
    body: Any,
    headers: Any,
    response_headers: Any,
) -> bytes | str | None:
    fn = backend.get_function(function_name, qualifier)
    target = _target(backend, fn, function_name, qualifier)
    if target is None:
        return original(backend, function_name, qualifier, body, headers, response_headers)

    invocation_type = _header(headers, "X-Amz-Invocation-Type") or "RequestResponse"
    if invocation_type == "DryRun":
        return b""
    try:
        event = _event(body)
        client_context = _client_context(_header(headers, "X-Amz-Client-Context"))
    except _InvalidRequest as exc:
        raise _client_error(str(exc)) from exc
    endpoint = _endpoint(_header(headers, "Host"))

    if invocation_type == "Event":
        thread = threading.Thread(
            target=_run_in_background,
            args=(target, event, client_context, endpoint),
            name=f"lambda-event-{target.function_name}",
            daemon=True,
        )
        with _pending_lock:
            _pending.add(thread)
        thread.start()
        return b""

    outcome = _run_and_record(
        target, event, client_context=client_context, endpoint=endpoint, invocation_type=invocation_type
    )
    if outcome.error is not None:
        response_headers["x-amz-function-error"] = "Unhandled"
    response_headers["x-amz-executed-version"] = target.version
    if (_header(headers, "X-Amz-Log-Type") or "").lower() == "tail":
        response_headers["x-amz-log-result"] = base64.b64encode(outcome.log[-LOG_TAIL_BYTES:]).decode()
    response_headers["Content-Length"] = str(len(outcome.payload))
    return outcome.payload


def _header(headers: Any, name: str) -> str | None:
    if headers is None:
        return None
    value = headers.get(name)
    if value is None and isinstance(headers, Mapping):
        lowered = name.lower()
        value = next((v for k, v in headers.items() if str(k).lower() == lowered), None)
    return None if value is None else str(value)


def _event(body: Any) -> bytes:
    raw = body.encode("utf-8") if isinstance(body, str) else bytes(body or b"")
    if raw.strip():
        try:
            json.loads(raw)
        except ValueError as exc:
            raise _InvalidRequest(f"Could not parse request body into json: {exc}") from exc
    return raw


def _client_context(header: str | None) -> dict[str, Any] | None:
    if not header:
        return None
    try:
        decoded = json.loads(base64.b64decode(header, validate=True))
    except (binascii.Error, ValueError) as exc:
        raise _InvalidRequest("Client context must be a valid Base64-encoded JSON object.") from exc
    if not isinstance(decoded, dict):
        raise _InvalidRequest("Client context must be a valid Base64-encoded JSON object.")
    return decoded


def _client_error(message: str) -> Exception:
    from moto.core.exceptions import JsonRESTError  # noqa: PLC0415 - see install()

    error: Exception = JsonRESTError("InvalidRequestContentException", message)
    return error


def _endpoint(host: str | None) -> str:
    """The moto server the invoke came through, so the function's AWS calls reach the same state
    (an in-process invoke: the server :func:`serve_functions_from` named, else a closed port)."""
    if not host or host.split(":", 1)[0].endswith("amazonaws.com"):
        return _functions_endpoint or CLOSED_ENDPOINT
    return f"http://{host}"


_functions_endpoint: str | None = None


def serve_functions_from(endpoint: str | None) -> None:
    """Functions invoked in-process (``mock_aws``) call AWS at ``endpoint``: a moto server in this
    process, so they see the same state as the caller (None: a closed port, they fail fast)."""
    global _functions_endpoint  # noqa: PLW0603 - the runner's one setting, like set_mode
    _functions_endpoint = endpoint


def _target(backend: Any, fn: Any, function_name: str, qualifier: str | None) -> _Target | None:
    runtime = str(getattr(fn, "run_time", None) or "")
    code: bytes = getattr(fn, "code_bytes", b"") or b""
    handler = getattr(fn, "handler", None)
    if getattr(fn, "package_type", "Zip") != "Zip" or not handler:
        return None
    if not code or not zipfile.is_zipfile(io.BytesIO(code)):
        return None
    command = _command(runtime)
    layers = []
    for layer in getattr(fn, "layers", None) or []:
        version = backend.layers_versions_by_arn(layer["Arn"])
        layer_code: bytes = getattr(version, "code_bytes", b"") or b""
        if layer_code and zipfile.is_zipfile(io.BytesIO(layer_code)):
            layers.append((layer_code, hashlib.sha256(layer_code).hexdigest()))
    return _Target(
        function_name=fn.function_name,
        version=str(fn.version),
        invoked_function_arn=_invoked_arn(fn, function_name, qualifier),
        handler=str(handler),
        runtime=runtime,
        command=command,
        code=code,
        code_sha256=getattr(fn, "code_digest", None) or hashlib.sha256(code).hexdigest(),
        layers=tuple(layers),
        environment={str(k): str(v) for k, v in (fn.environment_vars or {}).items()},
        timeout_seconds=float(fn.timeout or 3),
        memory_size=int(fn.memory_size or 128),
        region=fn.region,
        log_group=fn.logs_group_name,
        logs_backend=fn.logs_backend,
    )


def _command(runtime: str) -> tuple[str, ...]:
    """The interpreter for ``runtime`` on this machine; refuses (``InvalidRuntimeException``, as
    Invoke answers for a runtime it cannot run) any other runtime or a version not present."""
    if runtime.startswith("python"):
        python = _python(runtime.removeprefix("python"))
        if python is None:
            raise _invalid_runtime(
                f"The runtime {runtime} cannot run on the embedded AWS: no Python {runtime.removeprefix('python')} "
                f"on this machine (looked for python{runtime.removeprefix('python')} on PATH and in "
                f"~/.pyenv/versions). Install it, or set Runtime to a Python present here."
            )
        return (python, "-u")
    if runtime.startswith("nodejs"):
        node = shutil.which("node")
        if node is None:
            raise _invalid_runtime(
                f"The runtime {runtime} cannot run on the embedded AWS: no node on PATH. Install Node.js."
            )
        return (node,)
    raise _invalid_runtime(
        f"The runtime {runtime or '(none)'} cannot run on the embedded AWS: it runs python3.X "
        "(the versions present on this machine) and nodejs* runtimes only."
    )


@functools.cache
def find_python(version: str) -> str | None:
    """The interpreter that runs ``python<version>`` functions here (None: not on this machine)."""
    return _python(version)


def _python(version: str) -> str | None:
    """An interpreter of Python ``version`` (``"3.12"``): this one, ``pythonX.Y`` on PATH, or the
    newest ``~/.pyenv/versions/X.Y*``; each candidate is asked its version (a pyenv shim on PATH
    may name a version that is not active)."""
    if version == f"{sys.version_info.major}.{sys.version_info.minor}":
        return sys.executable
    candidates = [found] if (found := shutil.which(f"python{version}")) else []
    pyenv = Path.home() / ".pyenv" / "versions"
    if pyenv.is_dir():
        candidates += [
            str(root / "bin" / f"python{version}")
            for root in sorted(pyenv.glob(f"{version}*"), reverse=True)
            if root.name == version or root.name.startswith(f"{version}.")
        ]
    for candidate in candidates:
        try:
            answer = subprocess.run(  # noqa: S603 - an interpreter found on this machine, no shell
                [candidate, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                capture_output=True,
                text=True,
                timeout=10,
                check=False,
            )
        except (OSError, subprocess.SubprocessError):
            continue
        if answer.returncode == 0 and answer.stdout.strip() == version:
            return candidate
    return None


def _invalid_runtime(message: str) -> Exception:
    from moto.core.exceptions import JsonRESTError  # noqa: PLC0415 - see install()

    error = JsonRESTError("InvalidRuntimeException", message)
    error.code = 502  # Invoke's InvalidRuntimeException is a 502, as in the Lambda API model
    return error


def _invoked_arn(fn: Any, function_name: str, qualifier: str | None) -> str:
    """The ARN as the caller invoked it: unqualified, or with the version or alias asked for."""
    _, _, in_name = qualified_function_name(function_name).partition(":")
    chosen = in_name or qualifier
    base = f"arn:{fn.partition}:lambda:{fn.region}:{fn.account_id}:function:{fn.function_name}"
    return f"{base}:{chosen}" if chosen else base


# --- running one invocation ---------------------------------------------------------------------


def _run_in_background(
    target: _Target, event: bytes, client_context: dict[str, Any] | None, endpoint: str
) -> None:
    try:
        _run_and_record(
            target, event, client_context=client_context, endpoint=endpoint, invocation_type="Event"
        )
    finally:
        with _pending_lock:
            _pending.discard(threading.current_thread())


def _run_and_record(
    target: _Target,
    event: bytes,
    *,
    client_context: dict[str, Any] | None,
    endpoint: str,
    invocation_type: str,
) -> _Outcome:
    request_id = str(uuid.uuid4())
    stream = f"{datetime.now(UTC):%Y/%m/%d}/[{target.version}]{uuid.uuid4().hex}"
    spec = {
        "request_id": request_id,
        "handler": target.handler,
        "invoked_function_arn": target.invoked_function_arn,
        "client_context": client_context,
        "timeout_ms": int(target.timeout_seconds * 1000),
    }
    fault = faults.active(target.function_name, target.version)
    run = _faulted(target, fault, event, spec=spec, endpoint=endpoint, stream=stream)
    stream = run.stream
    payload, error = _answer(run, request_id)
    log = _log(target, request_id, run)
    record = Invocation(
        function=target.function_name,
        version=target.version,
        duration_ms=run.duration_ms,
        error=error,
        invocation_type=invocation_type,
        request_id=request_id,
        init_duration_ms=run.init_ms,
    )
    with _records_lock:
        _records.append(record)
    _save_logs(target, stream, log)
    return _Outcome(
        payload=payload, error=error, log=log, duration_ms=run.duration_ms, init_duration_ms=run.init_ms
    )


@dataclass(frozen=True)
class _Run:
    """What one subprocess did: its output, its result file, and how long each phase took."""

    output: bytes
    init_output_size: int
    result: dict[str, Any]
    returncode: int | None
    timed_out: bool
    init_ms: float
    duration_ms: float
    stream: str
    """The log stream: one per execution environment (each invocation's own in fresh mode)."""
    cold: bool = True
    """Init ran for this invocation (its REPORT line carries ``Init Duration``)."""


def _faulted(
    target: _Target,
    fault: tuple[faults.Fault, int] | None,
    event: bytes,
    *,
    spec: dict[str, Any],
    endpoint: str,
    stream: str,
) -> _Run:
    """The invocation, with the fault injected into its version (:mod:`.faults`), if any."""
    if fault is None:
        return _run(target, event, spec=spec, endpoint=endpoint, stream=stream)
    injected, count = fault
    if injected.kind == "errors" and injected.fails(count):
        error = {"errorType": "RehearsalFault", "errorMessage": "injected fault: this invocation fails"}
        output = f"[ERROR] RehearsalFault: {error['errorMessage']}\n".encode()
        return _Run(
            output, 0, {"error": error}, 0, timed_out=False, init_ms=0.0, duration_ms=1.0, stream=stream
        )
    run = _run(target, event, spec=spec, endpoint=endpoint, stream=stream)
    if injected.kind == "slow" and not run.timed_out:
        budget_ms = target.timeout_seconds * 1000 - run.duration_ms
        time.sleep(min(injected.delay_ms, budget_ms) / 1000)
        timed_out = injected.delay_ms >= budget_ms
        duration = target.timeout_seconds * 1000 if timed_out else run.duration_ms + injected.delay_ms
        return replace(run, duration_ms=duration, timed_out=timed_out)
    if injected.kind == "wrong-type" and "payload" in run.result:
        result = {**run.result, "payload": faults.wrong_typed(str(run.result["payload"]))}
        return replace(run, result=result)
    return run


def _run(target: _Target, event: bytes, *, spec: dict[str, Any], endpoint: str, stream: str) -> _Run:
    if _mode == "pool":
        return _pool.run(target, event, spec=spec, endpoint=endpoint)
    return _run_fresh(target, event, spec=spec, endpoint=endpoint, stream=stream)


def _run_fresh(target: _Target, event: bytes, *, spec: dict[str, Any], endpoint: str, stream: str) -> _Run:
    """One invocation in a fresh interpreter: init, the handler, exit."""
    task_root = _extract(target.code, target.code_sha256)
    layer_roots = [_extract(code, sha) for code, sha in target.layers]
    env = _environment(target, task_root, layer_roots, endpoint=endpoint, stream=stream)
    if _is_node(target):
        spec = {**spec, "runtime_sdk": _node_sdk(target, task_root, layer_roots, env, endpoint)}
    with tempfile.TemporaryDirectory(prefix="invoke-", dir=_cache_root()) as scratch:
        work = Path(scratch)
        (work / "event.json").write_bytes(event)
        result_path = work / "result.json"
        ready_read, ready_write = os.pipe()
        spec = {**spec, "task_root": str(task_root), "result_path": str(result_path), "ready_fd": ready_write}
        started = time.monotonic()
        with (work / "event.json").open("rb") as stdin, (work / "output.log").open("w+b") as output:
            try:
                process = subprocess.Popen(  # noqa: S603 - our interpreter, our bootstrap, no shell
                    [*target.command, str(_bootstrap_path(target)), json.dumps(spec)],
                    stdin=stdin,
                    stdout=output,
                    stderr=subprocess.STDOUT,
                    cwd=task_root,
                    env=env,
                    pass_fds=(ready_write,),
                    start_new_session=True,
                )
            except BaseException:
                os.close(ready_read)
                raise
            finally:
                os.close(ready_write)
            try:
                handler_started, init_output_size = _await_ready(ready_read)
                timed_out = _await_exit(process, handler_started + target.timeout_seconds)
            finally:
                os.close(ready_read)
            ended = time.monotonic()
            output.seek(0)
            produced = output.read()
        result: dict[str, Any] = {}
        with contextlib.suppress(FileNotFoundError, ValueError):
            result = json.loads(result_path.read_text(encoding="utf-8"))
    return _Run(
        output=produced,
        init_output_size=len(produced) if init_output_size is None else init_output_size,
        result=result,
        returncode=process.returncode,
        timed_out=timed_out,
        init_ms=(handler_started - started) * 1000,
        # the handler's own time when it reported one (no process start-up or teardown in it)
        duration_ms=float(result.get("duration_ms", (ended - handler_started) * 1000)),
        stream=stream,
    )


def _await_ready(ready_read: int) -> tuple[float, int | None]:
    """When the handler was loaded, and how many bytes init logged (the bootstrap writes that
    number, so no handler output can be mistaken for init output); None when init failed.

    On an init failure the pipe closes without a number; on a slow init (beyond Lambda's 10 s)
    the rest of init is charged to the invocation's timeout, as on Lambda.
    """
    readable, _, _ = select.select([ready_read], [], [], INIT_TIMEOUT_SECONDS)
    message = os.read(ready_read, 32) if readable else b""
    started = time.monotonic()
    try:
        logged = int(message)
    except ValueError:
        return started, None
    return started, logged if logged >= 0 else None


def _await_exit(process: subprocess.Popen[bytes], deadline: float) -> bool:
    """Wait for the function's process; kill it at the deadline. True if it was killed.

    Whatever it started is killed with it (its own process group): each invocation is a whole
    execution environment here, and nothing of it may outlive the invocation.
    """
    timed_out = False
    try:
        process.wait(timeout=max(deadline - time.monotonic(), 0))
    except subprocess.TimeoutExpired:
        timed_out = True
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    return timed_out


def _answer(run: _Run, request_id: str) -> tuple[bytes, str | None]:
    """The invoke payload and the errorType (None on success), shaped as Lambda answers."""
    if run.timed_out:
        seconds = run.duration_ms / 1000
        error = {
            "errorType": "Sandbox.Timedout",
            "errorMessage": f"RequestId: {request_id} Error: Task timed out after {seconds:.2f} seconds",
        }
        return json.dumps(error).encode(), error["errorType"]
    if "payload" in run.result:
        return str(run.result["payload"]).encode("utf-8"), None
    if "error" in run.result:
        failure = run.result["error"]
        return json.dumps(failure, ensure_ascii=False).encode("utf-8"), str(failure["errorType"])
    error = {
        "errorType": "Runtime.ExitError",
        "errorMessage": f"RequestId: {request_id} Error: Runtime exited with error: exit status {run.returncode}",
    }
    return json.dumps(error).encode(), error["errorType"]


def _log(target: _Target, request_id: str, run: _Run) -> bytes:
    """The invocation's log as Lambda writes it: init output, START, handler output, END, REPORT."""
    init_part, handler_part = run.output[: run.init_output_size], run.output[run.init_output_size :]
    if init_part and not init_part.endswith(b"\n"):
        init_part += b"\n"
    if handler_part and not handler_part.endswith(b"\n"):
        handler_part += b"\n"
    report = (
        f"REPORT RequestId: {request_id}\tDuration: {run.duration_ms:.2f} ms\t"
        f"Billed Duration: {math.ceil(run.duration_ms + run.init_ms)} ms\tMemory Size: {target.memory_size} MB\t"
        + (f"Init Duration: {run.init_ms:.2f} ms\t" if run.cold else "")
        + "\n"
    )
    lines = [
        init_part,
        f"START RequestId: {request_id} Version: {target.version}\n".encode(),
        handler_part,
        f"END RequestId: {request_id}\n".encode(),
        report.encode(),
    ]
    if run.timed_out:
        stamp = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        lines.append(
            f"{stamp} {request_id} Task timed out after {run.duration_ms / 1000:.2f} seconds\n".encode()
        )
    return b"".join(lines)


def _save_logs(target: _Target, stream: str, log: bytes) -> None:
    """The invocation's log lines in its execution environment's stream (created on first use)."""
    from moto.core.utils import unix_time_millis  # noqa: PLC0415 - moto's clock, which its retention checks use

    logs = target.logs_backend
    now_ms = int(unix_time_millis())
    events = [
        {"timestamp": now_ms, "message": line} for line in log.decode("utf-8", "replace").split("\n") if line
    ]
    from moto.logs.exceptions import ResourceAlreadyExistsException  # noqa: PLC0415 - see install()

    logs.ensure_log_group(target.log_group)
    with contextlib.suppress(ResourceAlreadyExistsException):  # a warm environment's stream
        logs.create_log_stream(target.log_group, stream)
    logs.put_log_events(target.log_group, stream, events)


def _environment(
    target: _Target, task_root: Path, layer_roots: list[Path], *, endpoint: str, stream: str
) -> dict[str, str]:
    """What a Lambda process sees: the version's variables plus Lambda's own, nothing of ours
    but PATH and PYTHONPATH (so the packages installed here import)."""
    python = target.runtime.removeprefix("python")
    layer_paths = []
    for root in reversed(layer_roots):  # a later layer overrides an earlier one, as in /opt
        layer_paths += [
            str(root / "python" / "lib" / f"python{python}" / "site-packages"),
            str(root / "python"),
        ]
    inherited = os.environ.get("PYTHONPATH")
    env = dict(target.environment)
    env.update(
        {
            "PATH": os.environ.get("PATH", os.defpath),
            "LANG": "C.UTF-8",
            "TZ": ":UTC",
            "LAMBDA_TASK_ROOT": str(task_root),
            "_HANDLER": target.handler,
            "AWS_EXECUTION_ENV": f"AWS_Lambda_{target.runtime}",
            "AWS_LAMBDA_FUNCTION_NAME": target.function_name,
            "AWS_LAMBDA_FUNCTION_VERSION": target.version,
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(target.memory_size),
            "AWS_LAMBDA_LOG_GROUP_NAME": target.log_group,
            "AWS_LAMBDA_LOG_STREAM_NAME": stream,
            "AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand",
            "AWS_REGION": target.region,
            "AWS_DEFAULT_REGION": target.region,
            "AWS_ENDPOINT_URL": endpoint,
            "AWS_CONFIG_FILE": os.devnull,
            "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
            **FAKE_CREDENTIALS,
        }
    )
    python_path = os.pathsep.join([*layer_paths, *([inherited] if inherited else [])])
    if python_path:
        env["PYTHONPATH"] = python_path
    if _is_node(target):  # a layer's nodejs/node_modules, as /opt/nodejs/node_modules on Lambda
        env["NODE_PATH"] = os.pathsep.join(str(path) for path in node_layer_dirs(target.runtime, layer_roots))
    return env


def node_layer_dirs(runtime: str, layer_roots: list[Path]) -> list[Path]:
    """The layers' module folders in Lambda's order (``/opt/nodejs/nodeNN/node_modules``, then
    ``/opt/nodejs/node_modules``; a later layer over an earlier one)."""
    node_version = runtime.removeprefix("nodejs").split(".")[0]
    return [
        path
        for root in reversed(layer_roots)
        for path in (
            root / "nodejs" / f"node{node_version}" / "node_modules",
            root / "nodejs" / "node_modules",
        )
    ]


def _node_sdk(
    target: _Target, task_root: Path, layer_roots: list[Path], env: dict[str, str], endpoint: str
) -> dict[str, Any]:
    """The AWS SDK the Node.js runtime ships (:mod:`~deployguard_cli.localaws.node_sdk`), on
    ``NODE_PATH`` after the function's own modules and its layers; what the bootstrap needs of it."""
    layer_dirs = node_layer_dirs(target.runtime, layer_roots)
    sdk = node_sdk.provide(
        target.runtime,
        code_roots=[task_root, *layer_roots],
        module_dirs=[task_root / "node_modules", *layer_dirs],
    )
    env["NODE_PATH"] = os.pathsep.join([str(path) for path in layer_dirs] + list(sdk.module_paths))
    if endpoint.startswith("http://localhost:"):
        # NOTE: the SDK v3 addresses a bucket as <bucket>.localhost (virtual-hosted style), which
        # does not resolve; at an IP address it uses path style, as v2 is told to
        env["AWS_ENDPOINT_URL"] = endpoint.replace("localhost", "127.0.0.1", 1)
    return sdk.bootstrap_spec(endpoint=env["AWS_ENDPOINT_URL"], closed=endpoint == CLOSED_ENDPOINT)


# --- the code cache -----------------------------------------------------------------------------


def _cache_root() -> Path:
    root = Path(tempfile.gettempdir()) / f"deployguard-lambda-{os.getuid()}"
    root.mkdir(mode=0o700, exist_ok=True)
    return root


def _is_node(target: _Target) -> bool:
    return target.runtime.startswith("nodejs")


@functools.cache
def _bootstrap_source(name: str) -> str:
    """A bootstrap's text (:mod:`deployguard_cli.localaws.bootstrap` or ``bootstrap_node.js``), read once."""
    return resources.files("deployguard_cli.localaws").joinpath(name).read_text(encoding="utf-8")


def _bootstrap_path(target: _Target) -> Path:
    """A copy of the bootstrap in the code cache, named by its content; the function's process
    runs it as a script.

    NOTE: a copy, not ``python -m deployguard_cli.localaws.bootstrap`` nor the package's own file:
    the script's folder becomes ``sys.path[0]`` until the bootstrap puts the code there, and running
    it as a module would import DeployGuard's package into the function's process. Here the
    function's process starts exactly as it did when the bootstrap was a string in this module.
    """
    name = "bootstrap_node.js" if _is_node(target) else "bootstrap.py"
    source = _bootstrap_source(name)
    digest = hashlib.sha256(source.encode()).hexdigest()[:16]
    path = _cache_root() / f"bootstrap-{digest}{Path(name).suffix}"
    if not path.exists():
        staging = path.with_suffix(f".{uuid.uuid4().hex}.tmp")
        staging.write_text(source, encoding="utf-8")
        staging.replace(path)
    return path


def _extract(code: bytes, sha256: str) -> Path:
    """The zip's content in a folder named by its sha256 (extracted once, shared by versions)."""
    target = _cache_root() / "code" / sha256
    if target.is_dir():
        return target
    with _extract_lock:
        if target.is_dir():
            return target
        target.parent.mkdir(exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".extract-", dir=target.parent))
        with zipfile.ZipFile(io.BytesIO(code)) as archive:
            archive.extractall(staging)  # zipfile drops absolute and '..' member paths
        try:
            staging.rename(target)
        except OSError:  # another process extracted the same code first
            shutil.rmtree(staging, ignore_errors=True)
    return target


# --- the worker pool ----------------------------------------------------------------------------

POOL_SIZE: Final = 8
"""Execution environments kept at once (fork servers and Node.js environments); beyond it the least
recently used idle one is stopped."""
ENVIRONMENTS_PER_VERSION: Final = 4
"""Node.js execution environments one version (one pool key) may have at once; a further concurrent
invocation waits for one to be free."""
NODE_LOG_KEPT_BYTES: Final = 1 << 20
"""A Node.js environment's log file is emptied between invocations once it has grown past this."""
STOP_TIMEOUT_SECONDS: Final = 2.0
"""How long a stopped fork server may take to finish its running workers before it is killed."""
STARTED_TIMEOUT_SECONDS: Final = 60.0
"""How long a fork server may take to report a worker started (or reaped) before it counts as dead."""

_mode = "pool" if hasattr(os, "fork") else "fresh"


def set_mode(mode: str) -> str:
    """How invocations run: ``"pool"`` (the default where ``os.fork`` exists: a Python version's
    initialized environment is forked per invocation, a Node.js version's warm environments serve
    one invocation at a time each) or ``"fresh"`` (a new process per invocation, init included, for
    both runtimes). Returns the previous mode; leaving pool mode stops its environments."""
    global _mode  # NOTE: one switch for the process, as Invoke is patched process-wide
    if mode not in ("pool", "fresh"):
        raise ValueError(f"lambda_runner.set_mode: mode must be 'pool' or 'fresh'; it is {mode!r}")
    if mode == "pool" and not hasattr(os, "fork"):
        raise ValueError("lambda_runner.set_mode: pool mode needs os.fork (POSIX); use 'fresh'")
    previous, _mode = _mode, mode
    if mode == "fresh":
        _pool.shutdown()
    return previous


def shutdown() -> None:
    """Stop every execution environment of the pool (also run at exit)."""
    _pool.shutdown()


@dataclass
class _Waiter:
    """One request to a fork server, as its status lines report it."""

    started: threading.Event = field(default_factory=threading.Event)
    exited: threading.Event = field(default_factory=threading.Event)
    pid: int | None = None
    code: int | None = None


class _Server:
    """One version's execution environment, initialized once, forked for each invocation.

    A ``python -u <bootstrap> <spec>`` process with the version's environment, code folder and
    process group, exactly as a fresh-mode invocation starts; once the handler is loaded it runs
    the bootstrap's ``serve``: one forked worker per request, in a session of its own, killed with
    whatever it started at its end or its timeout (the server and the other workers live on).
    """

    def __init__(self, target: _Target, env: dict[str, str], task_root: Path, stream: str) -> None:
        self.stream = stream
        self.alive = False
        self._dir = Path(tempfile.mkdtemp(prefix="server-", dir=_cache_root()))
        self._target = target
        self._env = env
        self._task_root = task_root
        self._waiting: dict[str, _Waiter] = {}
        self._lock = threading.Lock()
        self._cold = True
        self._init_output = b""
        self._init_ms = 0.0
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> _Run | None:
        """Start the server and run init; None when ready, else the answer to the invocation that
        asked (init failed or outlived Lambda's init limit plus the invocation's timeout)."""
        status_read, status_write = os.pipe()
        log_path = self._dir / "init.log"
        spec = {
            "serve": True,
            "handler": self._target.handler,
            "task_root": str(self._task_root),
            "result_path": str(self._dir / "init-result.json"),
            "ready_fd": status_write,
        }
        started = time.monotonic()
        with log_path.open("wb") as log:
            try:
                self._process = subprocess.Popen(  # noqa: S603 - our interpreter, our bootstrap, no shell
                    [*self._target.command, str(_bootstrap_path(self._target)), json.dumps(spec)],
                    stdin=subprocess.PIPE,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    cwd=self._task_root,
                    env=self._env,
                    pass_fds=(status_write,),
                    start_new_session=True,
                )
            except BaseException:
                os.close(status_read)
                raise
            finally:
                os.close(status_write)
        status = os.fdopen(status_read, "rb")
        ready = select.select([status], [], [], INIT_TIMEOUT_SECONDS + self._target.timeout_seconds)[0]
        line = status.readline() if ready else b""
        self._init_ms = (time.monotonic() - started) * 1000
        produced = log_path.read_bytes()
        try:
            logged = int(line)
        except ValueError:
            status.close()
            return self._failed_init(produced, timed_out=not ready)
        self._init_output = produced[:logged] if logged >= 0 else produced
        self.alive = True
        threading.Thread(
            target=self._read_status, args=(status,), name="lambda-pool-status", daemon=True
        ).start()
        return None

    def _failed_init(self, produced: bytes, *, timed_out: bool) -> _Run:
        assert self._process is not None
        # a failed init is exiting (its status pipe closed); a slow one is killed now
        _await_exit(self._process, time.monotonic() + (0.0 if timed_out else STOP_TIMEOUT_SECONDS))
        result: dict[str, Any] = {}
        with contextlib.suppress(FileNotFoundError, ValueError):
            result = json.loads((self._dir / "init-result.json").read_text(encoding="utf-8"))
        shutil.rmtree(self._dir, ignore_errors=True)
        return _Run(
            output=produced,
            init_output_size=len(produced),
            result=result,
            returncode=self._process.returncode,
            timed_out=timed_out,
            init_ms=self._init_ms,
            duration_ms=0.0 if not timed_out else self._target.timeout_seconds * 1000,
            stream=self.stream,
        )

    def _read_status(self, status: io.BufferedReader) -> None:
        with status:
            for line in status:
                kind, request_id, number = line.decode().split()
                waiter = self._waiting.get(request_id)
                if waiter is None:
                    continue
                if kind == "started":
                    waiter.pid = int(number)
                    waiter.started.set()
                else:
                    waiter.code = int(number)
                    waiter.exited.set()
        self.alive = False  # the server exited: every request still waiting has lost its worker
        for waiter in list(self._waiting.values()):
            waiter.started.set()
            waiter.exited.set()

    def run(self, event: bytes, spec: dict[str, Any]) -> _Run | None:
        """One invocation on a forked worker; None if this server died before it forked one."""
        assert self._process is not None and self._process.stdin is not None
        request_id = str(spec["request_id"])
        waiter = self._waiting[request_id] = _Waiter()
        with tempfile.TemporaryDirectory(prefix="invoke-", dir=_cache_root()) as scratch:
            work = Path(scratch)
            (work / "event.json").write_bytes(event)
            request = {
                **spec,
                "event_path": str(work / "event.json"),
                "output_path": str(work / "output.log"),
                "result_path": str(work / "result.json"),
            }
            started = time.monotonic()
            with self._lock:
                cold, self._cold = self._cold, False
                try:
                    self._process.stdin.write(json.dumps(request).encode() + b"\n")
                    self._process.stdin.flush()
                except (BrokenPipeError, ValueError):
                    waiter.started.set()
                    waiter.exited.set()
            waiter.started.wait(STARTED_TIMEOUT_SECONDS)  # set early if the server dies
            if waiter.pid is None:
                self._waiting.pop(request_id, None)
                self.stop()
                return None
            timed_out = not waiter.exited.wait(spec["timeout_ms"] / 1000)  # this invocation's timeout
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(waiter.pid, signal.SIGKILL)  # the worker's session: all it started
            waiter.exited.wait(STARTED_TIMEOUT_SECONDS)
            ended = time.monotonic()
            self._waiting.pop(request_id, None)
            output = b""
            with contextlib.suppress(FileNotFoundError):
                output = (work / "output.log").read_bytes()
            result: dict[str, Any] = {}
            with contextlib.suppress(FileNotFoundError, ValueError):
                result = json.loads((work / "result.json").read_text(encoding="utf-8"))
        init_output = self._init_output if cold else b""
        return _Run(
            output=init_output + output,
            init_output_size=len(init_output),
            result=result,
            returncode=waiter.code if waiter.code is not None else self._process.poll(),
            timed_out=timed_out,
            init_ms=self._init_ms if cold else 0.0,
            duration_ms=float(result.get("duration_ms", (ended - started) * 1000)),
            stream=self.stream,
            cold=cold,
        )

    def stop(self) -> None:
        """Close its request pipe (it finishes the running workers and exits); kill it if it lingers."""
        self.alive = False
        process = self._process
        if process is not None:
            with contextlib.suppress(OSError):
                if process.stdin is not None:
                    process.stdin.close()
            try:
                process.wait(timeout=STOP_TIMEOUT_SECONDS)
            except subprocess.TimeoutExpired:
                _await_exit(process, time.monotonic())
        shutil.rmtree(self._dir, ignore_errors=True)


class _NodeEnvironment:
    """One Node.js execution environment: a ``node <bootstrap_node.js> <spec>`` process that runs
    init once and then serves invocations one at a time, module state carrying over between them
    as on Lambda.

    Started as a fresh-mode invocation is (the version's environment, its code folder as working
    directory, a process group of its own); its stdout and stderr go to one log file, of which each
    invocation takes what was written since the last one took its part. Requests go through a pipe
    and answers come back through another (JSON after a 4-byte length, see the bootstrap). An
    invocation that outlives its timeout kills the environment (the next one is a cold start);
    so does a crash (``process.exit``, an uncaught exception): only this environment dies.
    """

    def __init__(
        self, target: _Target, env: dict[str, str], task_root: Path, stream: str, runtime_sdk: dict[str, Any]
    ) -> None:
        self.stream = stream
        self._target = target
        self._env = env
        self._task_root = task_root
        self._runtime_sdk = runtime_sdk
        self._dir = Path(tempfile.mkdtemp(prefix="node-", dir=_cache_root()))
        self._log_path = self._dir / "output.log"
        self._process: subprocess.Popen[bytes] | None = None
        self._requests = -1  # the pipe the environment reads requests from (our end)
        self._answers = -1  # the pipe it answers through (our end)
        self._received = bytearray()
        self._taken = 0  # bytes of the log file earlier invocations (and init) took
        self._cold = True
        self._init_ms = 0.0
        self._init_output = b""
        self._killed = False

    @property
    def alive(self) -> bool:
        return not self._killed and self._process is not None and self._process.poll() is None

    def start(self) -> _Run | None:
        """Start the process and run init; None when ready, else the answer to the invocation that
        asked (init failed or outlived Lambda's init limit plus the invocation's timeout)."""
        request_read, self._requests = os.pipe()
        self._answers, answer_write = os.pipe()
        spec = {
            "serve": True,
            "handler": self._target.handler,
            "task_root": str(self._task_root),
            "runtime_sdk": self._runtime_sdk,
            "request_fd": request_read,
            "status_fd": answer_write,
        }
        started = time.monotonic()
        try:
            # NOTE: appending: the log file may be emptied between invocations (NODE_LOG_KEPT_BYTES)
            with self._log_path.open("ab") as log:
                self._process = subprocess.Popen(  # noqa: S603 - our node, our bootstrap, no shell
                    [*self._target.command, str(_bootstrap_path(self._target)), json.dumps(spec)],
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    cwd=self._task_root,
                    env=self._env,
                    pass_fds=(request_read, answer_write),
                    start_new_session=True,
                )
        except BaseException:
            self.stop()
            raise
        finally:
            os.close(request_read)
            os.close(answer_write)
        os.set_blocking(self._requests, False)  # a write never blocks past an invocation's deadline
        try:
            message = self._receive(started + INIT_TIMEOUT_SECONDS + self._target.timeout_seconds)
        except EOFError:
            message = {}
        self._init_ms = (time.monotonic() - started) * 1000
        if message is None or "ready" not in message:
            return self._failed_init(message)
        produced = self._take_output()
        logged = int(message["ready"])
        self._init_output = produced[:logged] if 0 <= logged <= len(produced) else produced
        return None

    def _failed_init(self, message: dict[str, Any] | None) -> _Run:
        assert self._process is not None
        timed_out = message is None
        # a failed init is exiting (it answered init_error, or died); a slow one is killed now
        self._killed = True
        _await_exit(self._process, time.monotonic() + (0.0 if timed_out else STOP_TIMEOUT_SECONDS))
        produced = self._take_output()
        result = {"error": message["init_error"]} if message and "init_error" in message else {}
        returncode = self._process.returncode
        self.stop()
        return _Run(
            output=produced,
            init_output_size=len(produced),
            result=result,
            returncode=returncode,
            timed_out=timed_out,
            init_ms=self._init_ms,
            duration_ms=self._target.timeout_seconds * 1000 if timed_out else 0.0,
            stream=self.stream,
        )

    def run(self, event: bytes, spec: dict[str, Any]) -> _Run | None:
        """One invocation; None if the environment died before it took the invocation."""
        assert self._process is not None
        leftover = self._rotate_log()
        request = {
            "request_id": spec["request_id"],
            "invoked_function_arn": spec["invoked_function_arn"],
            "client_context": spec["client_context"],
            "timeout_ms": spec["timeout_ms"],
            "event": event.decode("utf-8", "replace"),
        }
        started = time.monotonic()
        deadline = started + spec["timeout_ms"] / 1000
        try:
            taken = self._send(request, deadline) and self._receive(deadline) is not None
        except (OSError, EOFError):  # it died while idle (or was killed): not this invocation's doing
            self._kill()
            return None
        # NOTE: not taken by the deadline: the environment is busy with what the last invocation
        # left running, which on Lambda also runs on this invocation's time
        answer: dict[str, Any] | None = None
        crashed = False
        if taken:
            try:
                answer = self._receive(deadline)
            except EOFError:  # the process ended mid-invocation (process.exit, a signal)
                crashed = True
        timed_out = answer is None and not crashed
        ended = time.monotonic()
        if timed_out:
            self._kill()
        elif crashed or (answer is not None and answer.get("exiting")):
            self._killed = True
            _await_exit(self._process, time.monotonic() + STOP_TIMEOUT_SECONDS)
        result: dict[str, Any] = answer.get("result", {}) if answer is not None else {}
        cold, self._cold = self._cold, False
        init_output = self._init_output if cold else b""
        return _Run(
            output=init_output + leftover + self._take_output(),
            init_output_size=len(init_output),
            result=result,
            returncode=self._process.poll(),
            timed_out=timed_out,
            init_ms=self._init_ms if cold else 0.0,
            duration_ms=float(spec["timeout_ms"])
            if timed_out
            else float(result.get("duration_ms", (ended - started) * 1000)),
            stream=self.stream,
            cold=cold,
        )

    def _send(self, message: dict[str, Any], deadline: float) -> bool:
        """Write one message; False if the environment did not take it all by ``deadline``."""
        body = json.dumps(message).encode()
        pending = memoryview(len(body).to_bytes(4, "big") + body)
        while pending:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not select.select([], [self._requests], [], remaining)[1]:
                return False
            with contextlib.suppress(BlockingIOError):
                pending = pending[os.write(self._requests, pending) :]
        return True

    def _receive(self, deadline: float) -> dict[str, Any] | None:
        """The next message; None if none came by ``deadline``; EOFError if the process ended."""
        while True:
            if len(self._received) >= 4:
                size = int.from_bytes(self._received[:4], "big")
                if len(self._received) >= 4 + size:
                    body = bytes(self._received[4 : 4 + size])
                    del self._received[: 4 + size]
                    message: dict[str, Any] = json.loads(body)
                    return message
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not select.select([self._answers], [], [], remaining)[0]:
                return None
            chunk = os.read(self._answers, 65536)
            if not chunk:
                raise EOFError
            self._received += chunk

    def _take_output(self) -> bytes:
        """What the process wrote since the last call."""
        with contextlib.suppress(FileNotFoundError), self._log_path.open("rb") as log:
            log.seek(self._taken)
            output = log.read()
            self._taken += len(output)
            return output
        return b""

    def _rotate_log(self) -> bytes:
        """Between invocations: once the log file is large, what is left of it, and empty it."""
        if self._taken <= NODE_LOG_KEPT_BYTES:
            return b""
        leftover = self._take_output()
        with contextlib.suppress(FileNotFoundError):
            os.truncate(self._log_path, 0)
        self._taken = 0
        return leftover

    def _kill(self) -> None:
        """End the process and whatever it started (its process group)."""
        self._killed = True
        if self._process is not None:
            _await_exit(self._process, time.monotonic())

    def stop(self) -> None:
        self._kill()
        for fd in (self._requests, self._answers):
            if fd >= 0:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self._requests = self._answers = -1
        shutil.rmtree(self._dir, ignore_errors=True)


_Environment = _Server | _NodeEnvironment
_ServerKey = tuple[Any, ...]


def _new_environment(target: _Target, endpoint: str) -> _Environment:
    """A (not yet started) execution environment for ``target``, with a log stream of its own."""
    task_root = _extract(target.code, target.code_sha256)
    layer_roots = [_extract(code, sha) for code, sha in target.layers]
    stream = f"{datetime.now(UTC):%Y/%m/%d}/[{target.version}]{uuid.uuid4().hex}"
    env = _environment(target, task_root, layer_roots, endpoint=endpoint, stream=stream)
    if _is_node(target):
        runtime_sdk = _node_sdk(target, task_root, layer_roots, env, endpoint)
        return _NodeEnvironment(target, env, task_root, stream, runtime_sdk)
    return _Server(target, env, task_root, stream)


@dataclass(eq=False)
class _Slot:
    """An execution environment in the pool and the invocations it runs now."""

    key: _ServerKey
    environment: _Environment | None = None
    """None while the invocation that made the slot starts it."""
    running: int = 0

    @property
    def alive(self) -> bool:
        """Started, and its process has not ended."""
        return self.environment is not None and self.environment.alive


class _Pool:
    """The execution environments, per key: an environment never serves another version, another
    environment, other code or another endpoint (all are in its key).

    A Python version has one fork server that runs every invocation of it, concurrent ones too; a
    Node.js version has up to :data:`ENVIRONMENTS_PER_VERSION` environments, each running one
    invocation at a time: an invocation takes a free one, else starts one, else waits. Dead
    environments are dropped; beyond :data:`POOL_SIZE` the least recently used idle ones stop.
    """

    def __init__(self) -> None:
        self._slots: list[_Slot] = []  # least recently used first
        self._changed = threading.Condition()

    def run(self, target: _Target, event: bytes, *, spec: dict[str, Any], endpoint: str) -> _Run:
        key: _ServerKey = (
            target.function_name,
            target.version,
            target.code_sha256,
            tuple(sha for _, sha in target.layers),
            target.handler,
            target.runtime,
            tuple(sorted(target.environment.items())),
            target.memory_size,
            target.region,
            target.log_group,
            endpoint,
        )
        for _ in range(2):  # an environment that died before it took the invocation is replaced once
            slot = self._acquire(key, shared=not _is_node(target))
            try:
                if slot.environment is None:
                    failed = self._start(slot, target, endpoint)
                    if failed is not None:
                        return failed  # a failed init is not kept: the next invocation tries again
                assert slot.environment is not None
                run = slot.environment.run(event, spec)
            finally:
                self._release(slot)
            if run is not None:
                return run
        return _Run(b"", 0, {}, None, timed_out=False, init_ms=0.0, duration_ms=0.0, stream="")

    def _acquire(self, key: _ServerKey, *, shared: bool) -> _Slot:
        """A slot of ``key`` to run on, counted as running: a live environment that may take the
        invocation, or a new slot whose environment the caller starts. Waits while ``key`` has
        as many environments as it may, all busy or starting."""
        limit = 1 if shared else ENVIRONMENTS_PER_VERSION
        with self._changed:
            while True:
                mine = [slot for slot in self._slots if slot.key == key]
                for slot in mine:
                    if slot.alive and (shared or slot.running == 0):
                        slot.running += 1
                        self._slots.remove(slot)
                        self._slots.append(slot)  # most recently used last
                        return slot
                if sum(1 for slot in mine if slot.running or slot.alive) < limit:
                    slot = _Slot(key, running=1)
                    self._slots.append(slot)
                    return slot
                self._changed.wait()

    def _start(self, slot: _Slot, target: _Target, endpoint: str) -> _Run | None:
        """Start the slot's environment; None when ready, else the failed init's answer."""
        environment: _Environment | None = None
        failed: _Run | None = None
        ready = False
        try:
            environment = _new_environment(target, endpoint)
            failed = environment.start()
            ready = failed is None
        finally:
            with self._changed:
                if ready:
                    slot.environment = environment
                elif slot in self._slots:
                    self._slots.remove(slot)
                self._changed.notify_all()
            if environment is not None and not ready and failed is None:
                environment.stop()  # start() raised
        self._trim()
        return failed

    def _release(self, slot: _Slot) -> None:
        with self._changed:
            slot.running -= 1
            orphaned = slot.running == 0 and slot not in self._slots  # the pool was shut down meanwhile
            self._changed.notify_all()
        if orphaned and slot.environment is not None:
            slot.environment.stop()
        self._trim()

    def _trim(self) -> None:
        """Drop idle dead environments; stop the least recently used idle ones beyond POOL_SIZE."""
        with self._changed:
            idle = [slot for slot in self._slots if slot.running == 0 and slot.environment is not None]
            stopped = [slot for slot in idle if not slot.alive]
            excess = len(self._slots) - len(stopped) - POOL_SIZE
            stopped += [slot for slot in idle if slot not in stopped][: max(excess, 0)]
            for slot in stopped:
                self._slots.remove(slot)
            if stopped:
                self._changed.notify_all()
        for slot in stopped:
            if slot.environment is not None:
                slot.environment.stop()

    def shutdown(self) -> None:
        with self._changed:
            slots, self._slots = self._slots, []
            self._changed.notify_all()
        for slot in slots:
            if slot.environment is not None:
                slot.environment.stop()


_pool = _Pool()
atexit.register(shutdown)
