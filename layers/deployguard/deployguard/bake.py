"""The bake window: how long the post-traffic hook watches, and what one poll decides.

Pure: every function takes ``now`` (the clock is injected by the caller), so the window's logic is
tested with a controllable clock. The state travels between polls as the Step Functions
execution's JSON (:class:`BakeState`); nothing holds a Lambda running while it waits.

The state carries ids, the window and counters only: every poll resolves the function, its
versions and the deployment's create time from CodeDeploy again, so no field of the state can name
another function or move the deployment's start (``docs/guards.md``, "What the bake trusts").

A poll is final when the window has ended. Any blocking check ends the bake at once (Failed);
'inconclusive' keeps it going until the final poll, where the policy settles it.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator, model_validator

from deployguard.findings import CheckResult, Decision, decide
from deployguard.hook import hook_id_problem
from deployguard.policy import Bake
from deployguard.records import datarecord

Clock = Callable[[], datetime]

MAX_BAKE_MINUTES = 55  # the policy's limit (Bake.minutes): CodeDeploy's hook deadline is one hour
MAX_WAIT_SECONDS = 900  # the workflow document's wait_seconds (and the longest poll interval)
MAX_PRIOR_CHECKS = 64  # the policy's smoke cases are bounded by its size; the state's are too


class Verdict(StrEnum):
    CONTINUE = "continue"
    DONE = "done"


class _Strict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class BakeWindow(_Strict):
    started_at: AwareDatetime
    until: AwareDatetime
    poll_seconds: int = Field(ge=1, le=900)

    @model_validator(mode="after")
    def _bounded(self) -> BakeWindow:
        if not self.started_at <= self.until <= self.started_at + timedelta(minutes=MAX_BAKE_MINUTES):
            raise ValueError(
                f"a bake window ends after it starts and lasts at most {MAX_BAKE_MINUTES} minutes"
            )
        return self

    def is_final(self, now: datetime) -> bool:
        return now >= self.until

    def next_wait(self, now: datetime) -> int:
        """Seconds to the next poll: a poll interval, or less to land on the window's end."""
        remaining = math.ceil((self.until - now).total_seconds())
        return max(1, min(self.poll_seconds, remaining))


def first_wait(window: BakeWindow, now: datetime, deployment_id: str) -> int:
    """Seconds to a bake's first poll: one poll interval plus a phase of the deployment's own.

    Bakes started in the same second (a fleet deployed at once) would otherwise poll in the same
    second of every interval, and their DescribeAlarms calls (9 per second per account and Region)
    would throttle each other. The phase, in [0, interval), is spread evenly by a hash of the
    deployment id (stable: a retried hook starts the same schedule); later polls keep it. The phase
    delays the first poll rather than advancing it, so a bake polls no more often than before; the
    hook has already polled once, and the last poll still lands on the window's end."""
    digest = int(hashlib.sha256(deployment_id.encode()).hexdigest()[:8], 16)
    phase = digest % window.poll_seconds
    remaining = math.ceil((window.until - now).total_seconds())
    return max(1, min(window.poll_seconds + phase, MAX_WAIT_SECONDS, remaining))


def open_window(now: datetime, bake: Bake) -> BakeWindow:
    return BakeWindow(
        started_at=now, until=now + timedelta(minutes=bake.minutes), poll_seconds=bake.poll_seconds
    )


@datarecord
class PollOutcome:
    verdict: Verdict
    decision: Decision | None  # set when the verdict is DONE
    wait_seconds: int  # until the next poll when the verdict is CONTINUE


def decide_poll(window: BakeWindow, checks: list[CheckResult], now: datetime) -> PollOutcome:
    if any(check.blocking for check in checks):
        return PollOutcome(verdict=Verdict.DONE, decision=Decision.FAILED, wait_seconds=0)
    if window.is_final(now):
        return PollOutcome(verdict=Verdict.DONE, decision=decide(checks), wait_seconds=0)
    return PollOutcome(verdict=Verdict.CONTINUE, decision=None, wait_seconds=window.next_wait(now))


class BakeState(_Strict):
    """What the bake workflow carries from poll to poll: ids, the window and counters.

    Nothing in it names the function, its versions, its alarms or when the deployment started:
    each poll resolves those from CodeDeploy and the policy again (GetDeployment and the AppSpec).
    """

    deployment_id: str
    lifecycle_event_hook_execution_id: str
    window: BakeWindow
    polls: int = Field(0, ge=0, le=10_000)
    prior_checks: list[CheckResult] = Field(
        default_factory=list,
        max_length=MAX_PRIOR_CHECKS,
        description=(
            "The post-traffic hook's smoke tests of the alias, for the final record. They can only "
            "fail a bake, never pass one: every poll runs the policy, alarm and health checks itself."
        ),
    )

    @field_validator("deployment_id", "lifecycle_event_hook_execution_id", mode="before")
    @classmethod
    def _lifecycle_id(cls, value: Any, info: Any) -> Any:
        field_name = {
            "deployment_id": "DeploymentId",
            "lifecycle_event_hook_execution_id": "LifecycleEventHookExecutionId",
        }[info.field_name]
        problem = hook_id_problem(field_name, value)
        if problem is not None:
            raise ValueError(problem)
        return value


class WorkflowDocument(_Strict):
    """What the bake workflow passes from state to state: the state, and what the last poll said
    (the Choice reads ``verdict``, the Wait ``wait_seconds``; a Catch adds ``error``)."""

    state: BakeState
    verdict: Verdict
    wait_seconds: int = Field(ge=0, le=MAX_WAIT_SECONDS)
    decision: Decision | None = None
    reason: str | None = None
    error: dict[str, Any] | None = None


class BakeStepEvent(_Strict):
    """What the state machine hands the bake step: the workflow's document, and the execution's
    name from the context object (``$$.Execution.Name``), which the caller of StartExecution
    cannot put into the document. ``action: fail`` is the Catch reporting Failed."""

    input: WorkflowDocument
    execution_name: str = Field(min_length=1, max_length=80)
    action: Literal["poll", "fail"] = "poll"


def output(state: BakeState, outcome: PollOutcome, **extra: Any) -> dict[str, Any]:
    """The Task's result: the state for the next poll plus the verdict the Choice state reads."""
    return {
        "state": state.model_dump(mode="json"),
        "verdict": outcome.verdict.value,
        "wait_seconds": outcome.wait_seconds,
        "decision": outcome.decision.value if outcome.decision else None,
        **extra,
    }


def execution_name(deployment_id: str, lifecycle_event_hook_execution_id: str) -> str:
    """One execution per hook execution: a retried hook finds the one it started (≤80 characters).
    The bake step checks the state's ids against the name of the execution that runs it."""
    digest = hashlib.sha256(lifecycle_event_hook_execution_id.encode()).hexdigest()[:16]
    return f"{deployment_id}-{digest}"[:80]
