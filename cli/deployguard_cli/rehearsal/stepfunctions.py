"""Step Functions' part: play a STANDARD workflow's executions on the virtual clock.

moto records ``StartExecution`` but runs nothing (and its optional runner would really sleep
through every ``Wait``). :class:`Workflows` finds the executions the guard functions started
(``ListExecutions``) and plays them state by state from the definition in template.yaml
(``statemachine/bake.asl.json`` with its ``DefinitionSubstitutions``): a ``Wait`` is a wake-up on
the :class:`~deployguard_cli.rehearsal.clock.Scheduler`, a ``Task`` invokes its Lambda function
(the real handler, through the invoker it is given) as ``arn:aws:states:::lambda:invoke`` does.

Supported (the JSONPath dialect of the Amazon States Language): ``Task`` (``lambda:invoke``, or a
function ARN as ``Resource``), ``Wait`` (``Seconds``/``SecondsPath``/``Timestamp``/
``TimestampPath``), ``Choice`` (comparison operators, ``And``/``Or``/``Not``, ``Default``),
``Pass``, ``Succeed``, ``Fail``; ``InputPath``, ``Parameters`` (``key.$`` paths, ``$$`` context
object), ``ResultSelector``, ``ResultPath``, ``OutputPath``; ``Retry`` (``IntervalSeconds``,
``MaxAttempts``, ``BackoffRate``), ``Catch`` (``ResultPath``), ``States.ALL``; the execution's
``TimeoutSeconds``. Not supported: ``Map``, ``Parallel``, intrinsic functions, JSONata, a task's own
``TimeoutSeconds`` (a task here is an in-process handler run to its end).
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from deployguard.appspec import plain_function_name
from deployguard.jsonpath import MISSING, find
from deployguard_cli.rehearsal.clock import Scheduler

__all__ = ["Execution", "TaskError", "WorkflowError", "Workflows"]

LAMBDA_INVOKE = "arn:aws:states:::lambda:invoke"
_LAMBDA_ARN = re.compile(r"^arn:[a-z-]+:lambda:[a-z0-9-]+:\d{12}:function:[^:]+(:[^:]+)?$")


class WorkflowError(ValueError):
    """A definition the player cannot run (unsupported state type or construct)."""


class TaskError(Exception):
    """A Task failed: ``error`` is what ``ErrorEquals`` matches, ``cause`` the details."""

    def __init__(self, error: str, cause: str) -> None:
        super().__init__(f"{error}: {cause}")
        self.error, self.cause = error, cause


Invoke = Callable[[str, Any], Any]
"""Invokes a Lambda function (name or ARN) with a payload; returns its result or raises TaskError."""


@dataclass
class Execution:
    arn: str
    name: str
    state_machine_arn: str
    definition: dict[str, Any]
    input: Any
    started_at: datetime
    status: str = "RUNNING"
    output: Any = None
    error: str | None = None
    cause: str | None = None
    history: list[tuple[datetime, str, str]] = field(default_factory=list)  # (when, state, what)


Listener = Callable[[Execution, str, str], None]  # (execution, state name, what happened)


def _context(execution: Execution, state: str, entered: datetime, retry: int) -> dict[str, Any]:
    return {
        "Execution": {
            "Id": execution.arn,
            "Name": execution.name,
            "Input": execution.input,
            "StartTime": execution.started_at.isoformat().replace("+00:00", "Z"),
        },
        "State": {
            "Name": state,
            "EnteredTime": entered.isoformat().replace("+00:00", "Z"),
            "RetryCount": retry,
        },
        "StateMachine": {"Id": execution.state_machine_arn},
    }


def _path(document: Any, path: str | None, context: Mapping[str, Any]) -> Any:
    if path is None:
        return document
    value = find(context, "$" + path[2:]) if path.startswith("$$") else find(document, path)
    if value is MISSING:
        raise TaskError("States.Runtime", f"the JSONPath {path} could not be found in the input")
    return value


def _parameters(template: Any, document: Any, context: Mapping[str, Any]) -> Any:
    if isinstance(template, list):
        return [_parameters(item, document, context) for item in template]
    if not isinstance(template, dict):
        return template
    result: dict[str, Any] = {}
    for key, value in template.items():
        if key.endswith(".$"):
            if not isinstance(value, str) or not value.startswith("$"):
                raise WorkflowError(f"{key}: the rehearsal does not evaluate {value!r} (intrinsic functions)")
            result[key[:-2]] = _path(document, value, context)
        else:
            result[key] = _parameters(value, document, context)
    return result


def _with_result(document: Any, result_path: str | None, result: Any) -> Any:
    if result_path is None:  # "ResultPath": null keeps the input and drops the result
        return document
    if result_path == "$":
        return result
    if not result_path.startswith("$."):
        raise WorkflowError(f"ResultPath {result_path!r} is not supported")
    merged = copy.deepcopy(document) if isinstance(document, dict) else {}
    node = merged
    keys = result_path[2:].split(".")
    for key in keys[:-1]:
        node = node.setdefault(key, {})
    node[keys[-1]] = result
    return merged


def _choose(rule: Mapping[str, Any], document: Any, context: Mapping[str, Any]) -> bool:
    if "And" in rule:
        return all(_choose(r, document, context) for r in rule["And"])
    if "Or" in rule:
        return any(_choose(r, document, context) for r in rule["Or"])
    if "Not" in rule:
        return not _choose(rule["Not"], document, context)
    variable = str(rule["Variable"])
    value = find(context, "$" + variable[2:]) if variable.startswith("$$") else find(document, variable)
    tests = [(op, expected) for op, expected in rule.items() if op not in ("Variable", "Next")]
    if len(tests) != 1:
        raise WorkflowError(f"a Choice rule needs exactly one comparison: {rule}")
    ((operator, expected),) = tests
    if operator == "IsPresent":
        return (value is not MISSING) == bool(expected)
    if value is MISSING:
        return False
    if operator == "IsNull":
        return (value is None) == bool(expected)
    if operator.endswith("Path"):
        return _compare(operator.removesuffix("Path"), value, _path(document, str(expected), context))
    return _compare(operator, value, expected)


def _compare(operator: str, value: Any, expected: Any) -> bool:
    kind = next((k for k in ("String", "Numeric", "Boolean", "Timestamp") if operator.startswith(k)), None)
    test = operator[len(kind) :] if kind else ""
    if kind == "String" and test == "Matches":
        pattern = "^" + re.escape(str(expected)).replace(r"\*", ".*") + "$"
        return isinstance(value, str) and re.match(pattern, value) is not None
    if kind == "Boolean" and test == "Equals":
        return isinstance(value, bool) and value == expected
    if kind == "Numeric" and (isinstance(value, bool) or not isinstance(value, int | float)):
        return False
    if kind in ("String", "Timestamp") and not isinstance(value, str):
        return False
    comparisons: dict[str, Callable[[Any, Any], bool]] = {
        "Equals": lambda a, b: bool(a == b),
        "LessThan": lambda a, b: bool(a < b),
        "GreaterThan": lambda a, b: bool(a > b),
        "LessThanEquals": lambda a, b: bool(a <= b),
        "GreaterThanEquals": lambda a, b: bool(a >= b),
    }
    if kind is None or kind == "Boolean" or test not in comparisons:
        raise WorkflowError(f"Choice operator {operator} is not supported")
    return comparisons[test](value, expected)


def _matches(error: str, names: list[str]) -> bool:
    return "States.ALL" in names or error in names


def _parse_timestamp(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


class Workflows:
    """Plays the executions of known state machines on the scheduler's virtual clock."""

    def __init__(
        self,
        *,
        scheduler: Scheduler,
        definitions: Mapping[str, Mapping[str, Any]],  # state machine ARN → definition
        invoke: Invoke,
        list_running: Callable[
            [str], list[tuple[str, str, Any, datetime]]
        ],  # ARN → (arn, name, input, start)
        on_finish: Callable[[Execution], None] | None = None,
        listener: Listener | None = None,
    ) -> None:
        self._scheduler = scheduler
        self._definitions = {arn: dict(d) for arn, d in definitions.items()}
        self._invoke = invoke
        self._list_running = list_running
        self._on_finish = on_finish
        self._listener = listener
        self.executions: dict[str, Execution] = {}

    def discover(self) -> list[Execution]:
        """Start playing every RUNNING execution not seen before (e.g. one a hook just started)."""
        found = []
        for machine, definition in self._definitions.items():
            for arn, name, payload, started_at in self._list_running(machine):
                if arn in self.executions:
                    continue
                execution = Execution(
                    arn=arn,
                    name=name,
                    state_machine_arn=machine,
                    definition=definition,
                    input=payload,
                    started_at=started_at,
                )
                self.executions[arn] = execution
                found.append(execution)
                timeout = definition.get("TimeoutSeconds")
                if timeout:
                    deadline = started_at + timedelta(seconds=int(timeout))
                    self._scheduler.at(deadline, f"timeout {arn}", self._timer(execution))
                self._note(execution, "", "ExecutionStarted")
                self._enter(execution, str(definition["StartAt"]), payload)
        return found

    @property
    def running(self) -> list[Execution]:
        return [e for e in self.executions.values() if e.status == "RUNNING"]

    def _note(self, execution: Execution, state: str, what: str) -> None:
        execution.history.append((self._scheduler.clock.now(), state, what))
        if self._listener is not None:
            self._listener(execution, state, what)

    def _enter(self, execution: Execution, name: str, document: Any, retry: int = 0) -> None:
        """Run states from ``name`` until a Wait (resumed later), a Retry (later) or the end."""
        current: str | None = name
        while current is not None and execution.status == "RUNNING":
            states = execution.definition["States"]
            if current not in states:
                raise WorkflowError(f"the workflow has no state {current}")
            state = states[current]
            context = _context(execution, current, self._scheduler.clock.now(), retry)
            try:
                following, document = self._step(execution, current, state, document, context)
            except TaskError as failure:
                handled = self._handle(execution, current, state, failure, document=document, retry=retry)
                if handled is None:
                    return
                current, document, retry = handled
                continue
            current, retry = following, 0

    def _step(
        self,
        execution: Execution,
        name: str,
        state: Mapping[str, Any],
        document: Any,
        context: Mapping[str, Any],
    ) -> tuple[str | None, Any]:
        """One state: the next state's name (None: stop here) and the document it gets."""
        kind = state["Type"]
        effective = _path(document, state.get("InputPath", "$"), context)
        if kind == "Wait":
            self._wait(execution, name, state, effective, context)
            return None, document
        if kind == "Choice":
            chosen = next(
                (c["Next"] for c in state.get("Choices", []) if _choose(c, effective, context)),
                state.get("Default"),
            )
            if chosen is None:
                raise TaskError("States.NoChoiceMatched", f"no choice of {name} matched")
            self._note(execution, name, f"Choice → {chosen}")
            return str(chosen), _path(effective, state.get("OutputPath", "$"), context)
        if kind == "Succeed":
            self._finish(
                execution, "SUCCEEDED", output=_path(effective, state.get("OutputPath", "$"), context)
            )
            return None, document
        if kind == "Fail":
            self._finish(execution, "FAILED", error=state.get("Error"), cause=state.get("Cause"))
            return None, document
        if kind == "Task":
            result = self._task(execution, name, state, effective, context)
        elif kind == "Pass":
            result = state.get("Result", effective)
            if "Parameters" in state and "Result" not in state:
                result = _parameters(state["Parameters"], effective, context)
        else:
            raise WorkflowError(f"the rehearsal does not play {kind} states")
        document = self._output(state, document, result, context)
        if state.get("End"):
            self._finish(execution, "SUCCEEDED", output=document)
            return None, document
        return str(state["Next"]), document

    def _output(
        self, state: Mapping[str, Any], document: Any, result: Any, context: Mapping[str, Any]
    ) -> Any:
        if "ResultSelector" in state:
            result = _parameters(state["ResultSelector"], result, context)
        combined = _with_result(document, state.get("ResultPath", "$"), result)
        return _path(combined, state.get("OutputPath", "$"), context)

    def _wait(
        self,
        execution: Execution,
        name: str,
        state: Mapping[str, Any],
        effective: Any,
        context: Mapping[str, Any],
    ) -> None:
        now = self._scheduler.clock.now()
        if "Seconds" in state:
            until = now + timedelta(seconds=int(state["Seconds"]))
        elif "SecondsPath" in state:
            until = now + timedelta(seconds=int(_path(effective, state["SecondsPath"], context)))
        elif "Timestamp" in state:
            until = _parse_timestamp(str(state["Timestamp"]))
        elif "TimestampPath" in state:
            until = _parse_timestamp(str(_path(effective, state["TimestampPath"], context)))
        else:
            raise WorkflowError(f"Wait state {name} says neither how long nor until when")
        output = _path(effective, state.get("OutputPath", "$"), context)
        self._note(execution, name, f"Wait until {until.isoformat(timespec='seconds')}")
        following = state.get("Next")

        def resume(_: datetime) -> None:
            if execution.status != "RUNNING":
                return
            if state.get("End") or following is None:
                self._finish(execution, "SUCCEEDED", output=output)
            else:
                self._enter(execution, str(following), output)

        self._scheduler.at(until, f"wait {execution.arn}", resume)

    def _task(
        self,
        execution: Execution,
        name: str,
        state: Mapping[str, Any],
        effective: Any,
        context: Mapping[str, Any],
    ) -> Any:
        resource = str(state["Resource"])
        if resource in (LAMBDA_INVOKE, LAMBDA_INVOKE + ".waitForTaskToken"):
            if resource.endswith("waitForTaskToken"):
                raise WorkflowError("waitForTaskToken tasks are not supported")
            parameters = _parameters(state.get("Parameters", {}), effective, context)
            function = str(parameters["FunctionName"])
            payload = parameters.get("Payload", effective)
            self._note(execution, name, f"Invoke {plain_function_name(function)}")
            answer = self._invoke(function, payload)
            return {"ExecutedVersion": "$LATEST", "Payload": answer, "StatusCode": 200}
        if _LAMBDA_ARN.match(resource):
            payload = (
                _parameters(state["Parameters"], effective, context) if "Parameters" in state else effective
            )
            self._note(execution, name, f"Invoke {plain_function_name(resource)}")
            return self._invoke(resource, payload)
        raise WorkflowError(f"Task resource {resource} is not supported (only Lambda)")

    def _handle(
        self,
        execution: Execution,
        name: str,
        state: Mapping[str, Any],
        failure: TaskError,
        *,
        document: Any,
        retry: int,
    ) -> tuple[str, Any, int] | None:
        """Retry (later, on the clock) or Catch a failed state; None when the execution stops or waits."""
        self._note(execution, name, f"{failure.error}: {failure.cause[:200]}")
        for retrier in state.get("Retry", []):
            if not _matches(failure.error, list(retrier.get("ErrorEquals", []))):
                continue
            if retry < int(retrier.get("MaxAttempts", 3)):
                delay = (
                    float(retrier.get("IntervalSeconds", 1)) * float(retrier.get("BackoffRate", 2.0)) ** retry
                )
                at = self._scheduler.clock.now() + timedelta(seconds=delay)
                self._scheduler.at(
                    at,
                    f"retry {execution.arn}",
                    lambda _: (
                        self._enter(execution, name, document, retry + 1)
                        if execution.status == "RUNNING"
                        else None
                    ),
                )
                return None
            break
        for catcher in state.get("Catch", []):
            if _matches(failure.error, list(catcher.get("ErrorEquals", []))):
                caught = {"Error": failure.error, "Cause": failure.cause}
                return str(catcher["Next"]), _with_result(document, catcher.get("ResultPath", "$"), caught), 0
        self._finish(execution, "FAILED", error=failure.error, cause=failure.cause)
        return None

    def _timer(self, execution: Execution) -> Callable[[datetime], None]:
        return lambda _: self._time_out(execution)

    def _time_out(self, execution: Execution) -> None:
        if execution.status == "RUNNING":
            self._finish(
                execution, "TIMED_OUT", error="States.Timeout", cause="the execution's TimeoutSeconds passed"
            )

    def _finish(
        self, execution: Execution, status: str, *, output: Any = None, error: Any = None, cause: Any = None
    ) -> None:
        execution.status, execution.output = status, output
        execution.error = None if error is None else str(error)
        execution.cause = None if cause is None else str(cause)
        self._scheduler.cancel(f"wait {execution.arn}")
        self._scheduler.cancel(f"retry {execution.arn}")
        self._scheduler.cancel(f"timeout {execution.arn}")
        self._note(execution, "", f"Execution{status.title().replace('_', '')}")
        if self._on_finish is not None:
            self._on_finish(execution)


def task_error_from_lambda(error_type: str, message: str) -> TaskError:
    """How ``lambda:invoke`` surfaces a function error: the errorType is the error name."""
    return TaskError(error_type, json.dumps({"errorMessage": message, "errorType": error_type}))
