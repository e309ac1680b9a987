"""The bake window: how long the post-traffic hook watches, and what one poll decides.

Pure: every function takes ``now`` (the clock is injected by the caller), so the window's logic is
tested with a controllable clock. The state travels between polls as the Step Functions
execution's JSON (:class:`BakeState`); nothing holds a Lambda running while it waits.

A poll is final when the window has ended. Any blocking check ends the bake at once (Failed);
'inconclusive' keeps it going until the final poll, where the policy settles it.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from deployguard.appspec import DeploymentTarget
from deployguard.findings import CheckResult, Decision, decide
from deployguard.policy import Bake
from deployguard.records import datarecord

Clock = Callable[[], datetime]


class Verdict(StrEnum):
    CONTINUE = "continue"
    DONE = "done"


class BakeWindow(BaseModel):
    model_config = ConfigDict(frozen=True)

    started_at: AwareDatetime
    until: AwareDatetime
    poll_seconds: int = Field(ge=1, le=900)

    def is_final(self, now: datetime) -> bool:
        return now >= self.until

    def next_wait(self, now: datetime) -> int:
        """Seconds to the next poll: a poll interval, or less to land on the window's end."""
        remaining = math.ceil((self.until - now).total_seconds())
        return max(1, min(self.poll_seconds, remaining))


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


class BakeState(BaseModel):
    """What the bake workflow carries from poll to poll (the execution's input and each output).

    Extra keys (``verdict``, ``wait_seconds``, a Catch's ``error``) ride along and are ignored.
    """

    model_config = ConfigDict(frozen=True, extra="ignore")

    deployment_id: str = Field(min_length=1)
    lifecycle_event_hook_execution_id: str = Field(min_length=1)
    stage: str
    target: DeploymentTarget
    deployment_started_at: AwareDatetime
    window: BakeWindow
    alarm_names: list[str] = Field(default_factory=list)
    prior_checks: list[CheckResult] = Field(
        default_factory=list, description="The hook's smoke tests, so the final record shows every check."
    )
    polls: int = Field(0, ge=0)

    def output(self, outcome: PollOutcome, **extra: Any) -> dict[str, Any]:
        """The Task's result: the state for the next poll plus the verdict the Choice state reads."""
        return {
            **self.model_dump(mode="json"),
            "verdict": outcome.verdict.value,
            "wait_seconds": outcome.wait_seconds,
            "decision": outcome.decision.value if outcome.decision else None,
            **extra,
        }


def execution_name(deployment_id: str, lifecycle_event_hook_execution_id: str) -> str:
    """One execution per hook execution: a retried hook finds the one it started (≤80 characters)."""
    digest = hashlib.sha256(lifecycle_event_hook_execution_id.encode()).hexdigest()[:16]
    return f"{deployment_id}-{digest}"[:80]
