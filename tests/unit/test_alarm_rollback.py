"""The alarm rollback's distrust of its event, without AWS: a malformed event of any shape is an
EventError (never an AttributeError), and an event is taken only for what CloudWatch confirms."""

from __future__ import annotations

import copy
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, NoReturn

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from deployguard.alarm_rollback import (
    CLOCK_SKEW,
    RollbackPorts,
    VerifiedAlarm,
    handle_alarm_event,
    parse_alarm_event,
    verify_alarm,
)
from deployguard.alarms import AlarmState
from deployguard.errors import EventError
from deployguard.policy import Policy, load_policy
from deployguard.stages import Stage
from tests.support.handlers import load_event
from tests.support.outcomes import captured_output

SAMPLE = load_event("alarm_state_change.json")
NAME = "orders-new-version-errors"
ARN = f"arn:aws:cloudwatch:us-east-1:123456789012:alarm:{NAME}"
NOW = datetime(2026, 3, 2, 17, 5, tzinfo=UTC)

JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=12),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3)
    ),
    max_leaves=8,
)


def paths(node: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """Every place in the event a value sits (dictionary keys and list indexes)."""
    children = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else []
    for key, child in children:
        yield (*prefix, key)
        yield from paths(child, (*prefix, key))


def mutate(event: dict[str, Any], path: tuple[Any, ...], value: Any, delete: bool) -> None:
    parent: Any = event
    for key in path[:-1]:
        parent = parent[key]
    if delete and isinstance(parent, dict):
        del parent[path[-1]]
    else:
        parent[path[-1]] = value


@st.composite
def mutated_events(draw: st.DrawFn) -> Any:
    """events/alarm_state_change.json with one to four values replaced by any JSON, or removed;
    sometimes not an object at all."""
    if draw(st.integers(0, 19)) == 0:
        return draw(JSON_VALUES)
    event = copy.deepcopy(SAMPLE)
    for _ in range(draw(st.integers(1, 4))):
        path = draw(st.sampled_from(list(paths(event))))
        mutate(event, path, draw(JSON_VALUES), draw(st.booleans()))
    return event


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated_events())
def test_a_mutated_event_parses_or_is_an_event_error(event: Any) -> None:
    try:
        claim = parse_alarm_event(event)
    except EventError as exc:
        assert "alarm" in str(exc) or "event" in str(exc)
        return
    assert isinstance(claim.alarm_name, str) and claim.changed_at.tzinfo is not None
    assert all(isinstance(k, str) and isinstance(v, str) for k, v in claim.dimensions.items())


@pytest.mark.parametrize(
    ("where", "value", "field_named"),
    [
        ("configuration", [], "detail.configuration"),
        ("metrics", {"a": 1}, "detail.configuration.metrics"),
        ("previousState", "OK", "detail.previousState"),
        ("state", ["ALARM"], "detail.state"),
        ("alarmName", 42, "detail.alarmName"),
        ("dimensions", {"FunctionName": ["orders"]}, "dimensions.FunctionName"),
    ],
)
def test_each_wrongly_shaped_field_is_named(where: str, value: Any, field_named: str) -> None:
    event = copy.deepcopy(SAMPLE)
    detail = event["detail"]
    targets = {
        "configuration": (detail, "configuration"),
        "metrics": (detail["configuration"], "metrics"),
        "previousState": (detail, "previousState"),
        "state": (detail, "state"),
        "alarmName": (detail, "alarmName"),
        "dimensions": (detail["configuration"]["metrics"][0]["metricStat"]["metric"], "dimensions"),
    }
    parent, key = targets[where]
    parent[key] = value

    with pytest.raises(EventError, match=field_named.replace(".", r"\.")):
        parse_alarm_event(event)


# --- the event is taken only for what CloudWatch confirms ------------------------------------------


@dataclass
class FakeAlarms:
    """The AlarmLookup port: the alarms CloudWatch has."""

    alarms: dict[str, AlarmState] = field(default_factory=dict)
    looked_up: list[str] = field(default_factory=list)

    def alarm(self, name: str) -> AlarmState | None:
        self.looked_up.append(name)
        return self.alarms.get(name)

    def tags(self, alarm_arn: str) -> dict[str, str]:
        return {}


def in_alarm(**changes: Any) -> AlarmState:
    fields: dict[str, Any] = {
        "name": NAME,
        "arn": ARN,
        "state": "ALARM",
        "entered_at": NOW - timedelta(minutes=1),
        "updated_at": NOW - timedelta(minutes=1),
        "dimensions": {"FunctionName": "payments", "ExecutedVersion": "7"},
    }
    return AlarmState(**(fields | changes))


def claim(**detail: Any) -> Any:
    event = copy.deepcopy(SAMPLE)
    event["detail"].update(detail)
    return parse_alarm_event(event)


def test_the_alarm_as_cloudwatch_has_it_wins_over_the_event() -> None:
    verified = verify_alarm(claim(), FakeAlarms({NAME: in_alarm()}), NOW)

    assert isinstance(verified, VerifiedAlarm)
    # the event says orders, version 2; CloudWatch says payments, version 7 and its own time
    assert verified.dimensions == {"FunctionName": "payments", "ExecutedVersion": "7"}
    assert verified.entered_at == NOW - timedelta(minutes=1)


@pytest.mark.parametrize(
    ("alarm", "now", "why"),
    [
        (None, NOW, "no alarm orders-new-version-errors exists"),
        (in_alarm(state="OK"), NOW, "is OK now, not in ALARM"),
        (in_alarm(arn=ARN + "-other"), NOW, "not the event's"),
        (in_alarm(updated_at=NOW + CLOCK_SKEW + timedelta(seconds=1)), NOW, "changed state at"),
        (in_alarm(), NOW - timedelta(days=365), "after now"),  # the event is dated a year ahead
    ],
    ids=["missing", "not-in-alarm", "other-arn", "updated-in-the-future", "event-in-the-future"],
)
def test_an_event_cloudwatch_does_not_confirm_is_not_trusted(
    alarm: AlarmState | None, now: datetime, why: str
) -> None:
    verified = verify_alarm(claim(), FakeAlarms({NAME: alarm} if alarm else {}), now)

    assert isinstance(verified, str) and why in verified


def test_an_event_whose_resources_name_another_alarm_is_not_trusted_without_asking() -> None:
    event = copy.deepcopy(SAMPLE)
    event["detail"]["alarmName"] = "unrelated"
    alarms = FakeAlarms({"unrelated": in_alarm(name="unrelated")})

    verified = verify_alarm(parse_alarm_event(event), alarms, NOW)

    assert isinstance(verified, str) and "is not the alarm it names (unrelated)" in verified
    assert alarms.looked_up == []


# --- through the use case: any event ends in an EventError or a normal answer ----------------------


@dataclass
class StaticPolicy:
    policy: Policy

    def prepare(self) -> None: ...

    def load(self, stage: Stage, application: str | None, function_name: str | None = None) -> Policy:
        return self.policy

    def load_all(self, stage: Stage) -> Policy:
        return self.policy


POLICY = load_policy(
    json.dumps(
        {
            "version": 1,
            "stage": "staging",
            "functions": {
                "orders": {"alarms": {"select": {"prefixes": ["orders-"], "tags": {"team": "orders"}}}}
            },
        }
    ),
    stage=Stage.STAGING,
)


class Untouchable:
    """CodeDeploy and Lambda ports that must not be reached: no alarm is confirmed."""

    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"{name} called for an unconfirmed alarm")


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated_events())
def test_the_use_case_answers_any_event_or_raises_an_event_error(event: Any) -> None:
    ports = RollbackPorts(
        codedeploy=Untouchable(),
        functions=Untouchable(),
        alarms=FakeAlarms(),
        policy=StaticPolicy(POLICY),
    )
    with captured_output():
        try:
            records = handle_alarm_event(event, ports, stage=Stage.STAGING, clock=lambda: NOW)
        except EventError:
            return
    assert all(r.rolled_back is False and r.deployment_id is None for r in records)


# --- alerts: every failed or partial rollback, every bypass ----------------------------------------


def test_every_bypass_alerts_the_hooks_included() -> None:
    from deployguard.findings import Decision
    from deployguard.notify import alert_kind
    from deployguard.outcome import Action, ActionKind, Bypassed, OutcomeRecord, Role

    bypass = Bypassed(reason="hot fix for INC-7", approved_by="oncall")
    hook = OutcomeRecord(
        role=Role.PRE_TRAFFIC,
        hook="BeforeAllowTraffic",
        deployment_id="d-1",
        decision=Decision.SUCCEEDED,
        bypass=bypass,
        actions=[Action(kind=ActionKind.STATUS_REPORTED, detail="Succeeded")],
    )
    rollback = OutcomeRecord(
        role=Role.ALARM_ROLLBACK,
        deployment_id="d-1",
        bypass=bypass,
        actions=[Action(kind=ActionKind.NO_ACTION, detail="rollback bypassed by policy")],
    )
    unreported = OutcomeRecord(
        role=Role.PRE_TRAFFIC,
        hook="BeforeAllowTraffic",
        deployment_id="d-1",
        decision=Decision.SUCCEEDED,
        bypass=bypass,
        actions=[Action(kind=ActionKind.STATUS_REPORTED, ok=False, detail="throttled")],
    )

    assert alert_kind(hook) == "bypassed"
    assert alert_kind(rollback) == "bypassed"
    assert alert_kind(unreported) is None  # Lambda retries the hook; the retry alerts


def test_a_failed_rollback_alerts_even_before_any_deployment_was_found() -> None:
    from deployguard.notify import alert_for
    from deployguard.outcome import Action, ActionKind, OutcomeRecord, Role

    record = OutcomeRecord(
        role=Role.ALARM_ROLLBACK,
        stage="prod",
        alarm_name="orders-errors",
        reason="orders-errors in ALARM, but the prod policy could not be read",
        actions=[
            Action(kind=ActionKind.NO_ACTION, ok=False, detail="GetParameter failed with ThrottlingException")
        ],
    )

    alert = alert_for(record)

    assert alert is not None and alert.kind == "rollback_failed"
    assert alert.subject == "DeployGuard: function (prod) alarm rollback FAILED (orders-errors)"
    assert "FAILED to act (no_action): GetParameter failed with ThrottlingException" in alert.message
    assert "nothing was rolled back" in alert.message and "deployguard report" not in alert.message


# --- the deadline reaches the rollback's threads -----------------------------------------------------


@dataclass
class DeadlineWitness:
    """Lambda and CodeDeploy ports that note the deadline each call sees (the AWS adapters' retries
    stop at it), then fail: nothing is rolled back."""

    seen: list[tuple[str, float | None]] = field(default_factory=list)

    def tags(self, function_name: str) -> dict[str, str]:
        return self._fail("ListTags")

    def deployments(self, **_filters: Any) -> list[str]:
        return self._fail("ListDeployments")

    def _fail(self, call: str) -> NoReturn:
        from deployguard import deadlines
        from deployguard.errors import DeployGuardError

        self.seen.append((call, deadlines.seconds_left()))
        raise DeployGuardError(f"{call} refused")


def test_every_call_the_rollback_makes_on_its_threads_sees_the_invocations_deadline() -> None:
    from deployguard.alarm_rollback import RollbackError
    from deployguard.deadlines import deadline_at

    witness = DeadlineWitness()
    ports = RollbackPorts(
        codedeploy=witness,  # type: ignore[arg-type]
        functions=witness,  # type: ignore[arg-type]
        alarms=FakeAlarms({NAME: in_alarm(dimensions={"FunctionName": "orders"})}),
        policy=StaticPolicy(POLICY),
    )

    with captured_output(), deadline_at(time.monotonic() + 30), pytest.raises(RollbackError):
        handle_alarm_event(SAMPLE, ports, stage=Stage.STAGING, clock=lambda: NOW)

    # the worker (ListDeployments) and the scope's reader (ListTags) both ran within the deadline
    assert sorted(call for call, _left in witness.seen) == ["ListDeployments", "ListTags"]
    assert all(left is not None and 0 < left <= 30 for _call, left in witness.seen), witness.seen
