"""Step Functions on moto for the rehearsal: moto's own interpreter, on the virtual clock.

moto 5.2 runs executions when ``mock_aws(config={"stepfunctions": {"execute_state_machine": True}})``:
each one is a thread evaluating the definition with the Amazon States Language interpreter in
``moto.stepfunctions.parser`` (ported from LocalStack): paths, ``Parameters``, ``ResultSelector``,
``ResultPath``, Choice rules, ``Retry`` and ``Catch``, intrinsic functions and error names as AWS
documents them. Left alone, it waits in real time and its Lambda tasks call moto's Lambda ``Invoke``.

:func:`routed` (a context manager) reroutes these, and nothing else, while it is active:

1. **waiting** — a ``Wait`` state (``Seconds``, ``SecondsPath``, ``Timestamp``, ``TimestampPath``) and a
   retrier's interval (after moto applied ``BackoffRate``, ``MaxDelaySeconds`` and jitter): the
   execution's thread parks and its wake-up goes on the rehearsal's scheduler at the virtual time
   it is due;
2. **"now"** — for a ``Timestamp`` wait, and the execution's start and stop dates: the virtual clock;
3. **the execution's** ``TimeoutSeconds`` — a scheduler entry, in virtual time;
4. **Lambda tasks** (``arn:aws:states:::lambda:invoke``, or a function ARN as ``Resource``) — the given
   in-process handlers, answered as Lambda's ``Invoke`` answers: a function error is
   ``FunctionError: Unhandled`` with an ``errorType``/``errorMessage`` payload, which moto's
   interpreter turns into the error ``Catch`` and ``Retry`` match, as the service does.

One correction, on whenever the patches are installed: :func:`_choice_timestamp` reads the timestamps
of Choice rules (``Timestamp*`` and ``IsTimestamp``) as the Choice state documents them, RFC 3339 with
fractional seconds or a numeric offset; moto reads only ``YYYY-MM-DDThh:mm:ssZ`` (so
``…T12:00:00.000Z`` never equalled ``…T12:00:00Z``, and a literal with a fraction failed the execution).
And :func:`_start_execution` names an execution started without a ``name`` with a UUID, as AWS does
(API_StartExecution.html); moto's interpreter backend named it ``None``, so a second unnamed
execution of a state machine failed with ``ExecutionAlreadyExists``.

Lock-step: an execution is *active* from ``StartExecution`` until it parks in a wait or ends. The
scheduler calls :meth:`Router.settle` before it looks at what is due: it waits (in real time) until
no execution is active, then schedules the parked executions' wake-ups. Virtual time never moves
while a workflow runs a step.

:func:`validate_definition` parses a definition with moto's parser (as ``CreateStateMachine`` does)
and rejects what the routing does not follow, so a definition fails when it is read, not when an
execution reaches the state: ``Map`` and ``Parallel`` (more than one thread per execution), JSONata
(moto evaluates it through a Java bridge that is not installed) and Task resources other than Lambda.
"""

from __future__ import annotations

import contextlib
import datetime as _datetime
import json
import re
import threading
import time
import types
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Final, Protocol

from botocore.exceptions import ClientError
from moto.stepfunctions.parser.asl.component.common.retry import retrier_decl
from moto.stepfunctions.parser.asl.component.state.choice.comparison.operator.implementations.is_operator import (
    IsTimestamp,
)
from moto.stepfunctions.parser.asl.component.state.exec.state_task import lambda_eval_utils
from moto.stepfunctions.parser.asl.component.state.wait.wait_function import timestamp as wait_timestamp
from moto.stepfunctions.parser.asl.component.state.wait.wait_function.wait_function import WaitFunction
from moto.stepfunctions.parser.asl.parse.asl_parser import AmazonStateLanguageParser, ASLParserException
from moto.stepfunctions.parser.backend.execution import Execution
from moto.stepfunctions.parser.backend.execution_worker import ExecutionWorker
from moto.stepfunctions.parser.models import StepFunctionsParserBackend

from deployguard.appspec import plain_function_name

__all__ = ["DefinitionError", "Router", "Started", "install", "routed", "validate_definition"]

LAMBDA_INVOKE: Final = "arn:aws:states:::lambda:invoke"
_LAMBDA_FUNCTION_ARN: Final = re.compile(r"^arn:[a-z-]+:lambda:[a-z0-9-]+:\d{12}:function:[^:]+(:[^:]+)?$")
_RFC3339: Final = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$")
_PATCH_MARK: Final = "_deployguard_moto_stepfunctions"
_POLL_SECONDS: Final = 0.05
_router: Router | None = None
_local = threading.local()  # the environment of the retrier running on this thread
_install_lock = threading.Lock()


class DefinitionError(ValueError):
    """A state machine definition the rehearsal cannot run; the message names the state and why."""


class Clock(Protocol):
    def now(self) -> datetime: ...


class Scheduler(Protocol):
    @property
    def clock(self) -> Clock: ...

    def at(self, when: datetime, label: str, action: Callable[[datetime], object]) -> None: ...


class Answer(Protocol):
    """A finished invocation of a handler."""

    @property
    def result(self) -> Any: ...

    @property
    def error_type(self) -> str | None: ...

    @property
    def error_message(self) -> str | None: ...


class Handlers(Protocol):
    """The in-process functions (:class:`deployguard_cli.rehearsal.lambdas.FunctionHost`)."""

    def knows(self, function_name: str) -> bool: ...

    def invoke(self, function_name: str, event: Mapping[str, Any]) -> Answer: ...


@dataclass(frozen=True)
class Started:
    """An execution that started while routed (for the timeline)."""

    arn: str
    name: str


@dataclass(eq=False)
class _Run:
    execution: Execution
    parked: threading.Event | None = None
    ended: bool = False
    started: Started = field(init=False)

    def __post_init__(self) -> None:
        self.started = Started(str(self.execution.exec_arn), str(self.execution.name))


# --- validation ---------------------------------------------------------------------------------
def validate_definition(definition: Mapping[str, Any]) -> None:
    """Parse ``definition`` as moto does on CreateStateMachine, then check the routing follows it.

    Raises :class:`DefinitionError` naming the state and the reason.
    """
    try:
        AmazonStateLanguageParser.parse(json.dumps(definition))
    except ASLParserException as exc:
        raise DefinitionError(f"the definition does not parse: {exc}") from exc
    except Exception as exc:  # moto's parser raises ValueError and others for semantic errors
        raise DefinitionError(f"the definition is not valid: {type(exc).__name__}: {exc}") from exc
    _check_states(definition, language=str(definition.get("QueryLanguage", "JSONPath")))


def _check_states(definition: Mapping[str, Any], *, language: str) -> None:
    for name, state in dict(definition.get("States") or {}).items():
        kind = state.get("Type")
        if str(state.get("QueryLanguage", language)) == "JSONata":
            raise DefinitionError(
                f"state {name}: JSONata is not supported in the rehearsal (moto evaluates it through a "
                "Java bridge); use the JSONPath query language"
            )
        if kind in ("Map", "Parallel"):
            raise DefinitionError(
                f"state {name}: {kind} states are not supported in the rehearsal (its virtual clock "
                "follows one thread per execution)"
            )
        if kind == "Task":
            resource = str(state.get("Resource", ""))
            if resource != LAMBDA_INVOKE and not _LAMBDA_FUNCTION_ARN.match(resource):
                raise DefinitionError(
                    f"state {name}: Task resource {resource} is not supported in the rehearsal; use "
                    f"{LAMBDA_INVOKE} (request-response) or a Lambda function ARN"
                )


# --- routing ------------------------------------------------------------------------------------
class Router:
    """Executions' waits on the scheduler, their Lambda tasks on in-process handlers."""

    def __init__(self, scheduler: Scheduler, handlers: Handlers, *, settle_limit_seconds: float) -> None:
        self._scheduler = scheduler
        self._clock = scheduler.clock
        self._handlers = handlers
        self._limit = settle_limit_seconds
        self._cond = threading.Condition()
        self._runs: dict[str, _Run] = {}
        self._active = 0
        self._requests: list[tuple[datetime, str, Callable[[datetime], object]]] = []
        self._unseen: list[Started] = []

    # the scheduler's side (main thread)
    def settle(self) -> None:
        """Wait until every execution parked or ended; then put their wake-ups on the scheduler."""
        with self._cond:
            if not self._cond.wait_for(lambda: self._active == 0, timeout=self._limit):
                raise TimeoutError(f"a Step Functions execution ran a step for more than {self._limit:g} s")
            requests, self._requests = self._requests, []
        for when, label, action in requests:
            self._scheduler.at(when, label, action)

    def discover(self) -> list[Started]:
        """The executions started since the last call."""
        with self._cond:
            found, self._unseen = self._unseen, []
        return found

    @property
    def running(self) -> list[Started]:
        with self._cond:
            return [run.started for run in self._runs.values() if not run.ended]

    def _wake(self, run: _Run, event: threading.Event) -> None:
        with self._cond:
            if run.parked is not event:
                return
            run.parked, self._active = None, self._active + 1
        event.set()

    def _time_out(self, run: _Run) -> None:
        worker = run.execution.exec_worker
        with self._cond:
            if run.ended or worker is None or worker.env is None:
                return
        worker.env.set_timed_out()  # the execution's TimeoutSeconds passed (virtual)
        if (parked := run.parked) is not None:
            self._wake(run, parked)

    def _stop_all(self) -> None:
        for run in list(self._runs.values()):
            if not run.ended:
                run.execution.stop(self._clock.now(), "Rehearsal.Ended", "the rehearsal's world closed")

    # the executions' side (their threads)
    def _started(self, execution: Execution) -> None:
        run = _Run(execution)
        execution.start_date = self._clock.now()
        timeout = json.loads(execution.state_machine.definition).get("TimeoutSeconds")
        with self._cond:
            self._runs[run.started.arn] = run
            self._active += 1
            self._unseen.append(run.started)
            if timeout:
                due = execution.start_date + timedelta(seconds=int(timeout))
                self._requests.append((due, f"sfn timeout {run.started.name}", lambda _: self._time_out(run)))

    def _ended(self, arn: str) -> None:
        with self._cond:
            run = self._runs.get(arn)
            if run is None or run.ended:
                return
            run.ended, self._active = True, self._active - 1
            run.execution.stop_date = self._clock.now()
            self._cond.notify_all()

    def sleep(self, env: Any, seconds: float) -> bool:
        """Park the execution's thread until the scheduler reaches now + ``seconds``; False (and no
        wait) for an execution that started before the routing: it keeps moto's real time."""
        arn = env.states.context_object.context_object_data["Execution"]["Id"]
        event = threading.Event()
        with self._cond:
            run = self._runs.get(arn)
            if run is None:
                return False
            due = self._clock.now() + timedelta(seconds=max(seconds, 0))
            self._requests.append((due, f"sfn wait {run.started.name}", lambda _: self._wake(run, event)))
            run.parked, self._active = event, self._active - 1
            self._cond.notify_all()
        while not event.wait(_POLL_SECONDS):
            if not env.is_running():  # StopExecution, or the world closed
                with self._cond:
                    if run.parked is event:
                        run.parked, self._active = None, self._active + 1
                break
        return True

    def invoke(self, parameters: Mapping[str, Any]) -> dict[str, Any]:
        """Lambda's Invoke (RequestResponse) on an in-process handler."""
        function = str(parameters.get("FunctionName", ""))
        name = plain_function_name(function)
        if not self._handlers.knows(name):
            error: Any = {
                "Error": {"Code": "ResourceNotFoundException", "Message": f"Function not found: {function}"},
                "ResponseMetadata": {"HTTPStatusCode": 404, "RequestId": str(uuid.uuid4())},
            }
            raise ClientError(error, "Invoke")
        payload = parameters.get("Payload")
        answer = self._handlers.invoke(name, json.loads(payload) if payload else {})
        response: dict[str, Any] = {"StatusCode": 200, "ExecutedVersion": "$LATEST", "Payload": answer.result}
        if answer.error_type is not None:
            response["FunctionError"] = "Unhandled"
            response["Payload"] = {
                "errorMessage": answer.error_message or "",
                "errorType": answer.error_type,
                "stackTrace": [],
            }
        return response


@contextlib.contextmanager
def routed(
    scheduler: Scheduler, handlers: Handlers, *, settle_limit_seconds: float = 900.0
) -> Iterator[Router]:
    """Route moto's executions onto ``scheduler`` and ``handlers`` until exit (one at a time).

    The caller makes the scheduler call :meth:`Router.settle` before each look at what is due.
    """
    global _router  # noqa: PLW0603 - moto's interpreter is module-level: so is its routing
    install()
    if _router is not None:
        raise RuntimeError("Step Functions executions are already routed")
    router = _router = Router(scheduler, handlers, settle_limit_seconds=settle_limit_seconds)
    try:
        yield router
    finally:
        _router = None
        router._stop_all()


# --- the patches: the routing ones defer to moto's own code when nothing is routed -----------------
_original_wait_interval = WaitFunction._wait_interval
_original_invoke = lambda_eval_utils._invoke_lambda_function
_original_start = Execution.start
_original_execution_logic = ExecutionWorker._execution_logic
_original_retrier_body = retrier_decl.RetrierDecl._eval_body
_original_start_execution = StepFunctionsParserBackend.start_execution


def _start_execution(
    self: StepFunctionsParserBackend,
    state_machine_arn: str,
    name: str | None = None,
    execution_input: str | None = None,
    trace_header: str | None = None,
) -> Execution:
    name = name or str(uuid.uuid4())
    return _original_start_execution(self, state_machine_arn, name, execution_input, trace_header)  # type: ignore[arg-type]


def _wait_interval(self: WaitFunction, env: Any, wait_seconds: int) -> None:
    if _router is None or not _router.sleep(env, wait_seconds):
        _original_wait_interval(self, env, wait_seconds)


def _retry_sleep(seconds: float) -> None:
    env = getattr(_local, "env", None)
    if _router is None or env is None or not _router.sleep(env, seconds):
        time.sleep(seconds)


def _retrier_body(self: Any, env: Any) -> None:
    _local.env = env
    try:
        _original_retrier_body(self, env)
    finally:
        _local.env = None


def _invoke_lambda_function(parameters: dict[str, Any], region: str, state_credentials: Any) -> Any:
    if _router is None:
        return _original_invoke(parameters, region, state_credentials)
    return _router.invoke(parameters)


def _start(self: Execution) -> None:
    if _router is not None:
        _router._started(self)
    _original_start(self)


def _execution_logic(self: ExecutionWorker) -> None:
    try:
        _original_execution_logic(self)  # type: ignore[no-untyped-call]
    finally:
        if _router is not None:
            _router._ended(str(self._evaluation_details.execution_details.arn))


def _choice_timestamp(value: Any) -> datetime | None:
    """A Choice rule's timestamp, or None if ``value`` is not one: RFC 3339 with an uppercase ``T`` and
    ``Z`` or a numeric offset (https://docs.aws.amazon.com/step-functions/latest/dg/state-choice.html);
    fractional seconds allowed (the context object's times carry milliseconds). Compared as instants."""
    if not isinstance(value, str) or not _RFC3339.match(value):
        return None
    try:
        return datetime.fromisoformat(value).astimezone(UTC)
    except ValueError:  # the right shape, not a date (month 13, second 61)
        return None


class _Now(_datetime.datetime):
    """``datetime`` for moto's Timestamp wait: its ``now()`` (naive, UTC) is the virtual clock's."""

    @classmethod
    def now(cls, tz: _datetime.tzinfo | None = None) -> Any:
        if _router is None:
            return _datetime.datetime.now(tz)
        current = _router._clock.now()
        return current.astimezone(tz) if tz is not None else current.astimezone(UTC).replace(tzinfo=None)


def install() -> None:
    """Patch moto's Step Functions interpreter (idempotent); inert until :func:`routed`."""
    with _install_lock:
        if getattr(WaitFunction, _PATCH_MARK, False):
            return
        WaitFunction._wait_interval = _wait_interval  # type: ignore[method-assign]
        lambda_eval_utils._invoke_lambda_function = _invoke_lambda_function
        Execution.start = _start  # type: ignore[method-assign]
        ExecutionWorker._execution_logic = _execution_logic  # type: ignore[method-assign]
        retrier_decl.RetrierDecl._eval_body = _retrier_body  # type: ignore[method-assign]
        retrier_decl.time = types.SimpleNamespace(sleep=_retry_sleep)  # type: ignore[attr-defined,assignment]
        wait_timestamp.datetime = types.SimpleNamespace(datetime=_Now)  # type: ignore[attr-defined,assignment]
        IsTimestamp.string_to_timestamp = staticmethod(_choice_timestamp)  # type: ignore[method-assign,assignment]
        StepFunctionsParserBackend.start_execution = _start_execution  # type: ignore[method-assign]
        setattr(WaitFunction, _PATCH_MARK, True)
