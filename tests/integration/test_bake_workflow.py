"""The bake window: the post-traffic hook starts it, the bake step polls until the window ends or a
check blocks, and reports exactly one status.

Two tiers:
- the bake step's handler in process, on moto, with a controllable clock (every poll of a
  10-minute window without waiting 10 minutes);
- statemachine/bake.asl.json executed by moto's Step Functions interpreter behind a threaded moto
  server, its Task invoking the real functions/bake_step code in a subprocess that calls back into
  the same moto (NOTE: an in-process ``mock_aws`` cannot do this: the function's own AWS calls
  would have nowhere to go).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest

from deployguard import entrypoints
from deployguard.bake import execution_name
from deployguard_cli.localaws import lambda_runner, moto_cloudwatch, moto_codedeploy, moto_lambda_alias
from tests.support.aws import FAILURES, ROLE_POLICY, counted_calls, deployguard_clients, fail
from tests.support.handlers import ROOT, FakeLambdaContext, load_event, load_handler
from tests.support.outcomes import captured_output, json_lines, outcome_lines
from tests.support.release import (
    ERRORS_ALARM,
    GOOD_ENV,
    HOOK_ENV,
    GuardedRelease,
    post_traffic_policy,
    put_alarm,
    put_version_metrics,
    set_alarm,
)

Handler = Callable[[dict[str, Any], Any], dict[str, Any]]
BAKE = {"minutes": 10, "poll_seconds": 60}


@dataclass
class Clock:
    """The clock of the hook and the bake step, moved by the test."""

    at: datetime

    def __call__(self) -> datetime:
        return self.at

    def advance(self, seconds: float) -> None:
        self.at += timedelta(seconds=seconds)


# --- tier 1: the bake step in process, with a controllable clock ---------------------------------


@pytest.fixture
def clock(aws: None, monkeypatch: pytest.MonkeyPatch) -> Clock:
    moto_cloudwatch.install()
    moto_lambda_alias.install()
    for key, value in HOOK_ENV.items():
        monkeypatch.setenv(key, value)
    role = boto3.client("iam").create_role(RoleName="bake", AssumeRolePolicyDocument=ROLE_POLICY)["Role"][
        "Arn"
    ]
    machine = boto3.client("stepfunctions").create_state_machine(
        name="deployguard-staging-bake",
        definition=json.dumps({"StartAt": "Done", "States": {"Done": {"Type": "Succeed"}}}),
        roleArn=role,
    )["stateMachineArn"]
    monkeypatch.setenv("DEPLOYGUARD_BAKE_STATE_MACHINE_ARN", machine)
    fake = Clock(datetime.now(UTC))
    monkeypatch.setattr(entrypoints, "now", fake)
    put_alarm(ERRORS_ALARM)
    return fake


@pytest.fixture
def bake_step() -> Handler:
    return load_handler("bake_step").handler  # type: ignore[no-any-return]


@dataclass
class Bake:
    """One bake workflow as the state machine runs it: the execution's name (the context object's
    ``$$.Execution.Name``) and its current document (``state``, ``verdict``, ``wait_seconds``)."""

    execution_name: str
    document: dict[str, Any]

    @property
    def state(self) -> dict[str, Any]:
        state: dict[str, Any] = self.document["state"]
        return state

    def event(self, **extra: Any) -> dict[str, Any]:
        """What the Poll task hands the bake step (``action: fail`` for the Catch's ReportFailed)."""
        return {"input": self.document, "execution_name": self.execution_name, **extra}


def start_bake(release: GuardedRelease, context: FakeLambdaContext) -> Bake:
    """Run the post-traffic hook; the bake workflow it started, as the workflow's input shows it."""
    with captured_output() as output:
        answer = load_handler("post_traffic").handler(release.event, context)
    sfn = boto3.client("stepfunctions")
    (machine,) = sfn.list_state_machines()["stateMachines"]
    executions = sfn.list_executions(stateMachineArn=machine["stateMachineArn"])["executions"]
    assert len(executions) == 1, f"the hook started {len(executions)} bakes: {answer}\n{output.getvalue()}"
    (execution,) = executions
    document = json.loads(sfn.describe_execution(executionArn=execution["executionArn"])["input"])
    return Bake(execution_name=execution["name"], document=document)


def step(bake_step: Handler, event: Any, context: FakeLambdaContext) -> tuple[dict[str, Any], str]:
    with captured_output() as out:
        answer = bake_step(event, context)
    return answer, out.getvalue()


def bake_until_done(
    bake_step: Handler,
    bake: Bake,
    clock: Clock,
    context: FakeLambdaContext,
    *,
    each: Callable[[int], None] | None = None,
) -> tuple[dict[str, Any], str, int]:
    """What the workflow does: wait wait_seconds, poll, until the verdict is done."""
    polls, output = 0, ""
    while bake.document["verdict"] == "continue":
        clock.advance(bake.document["wait_seconds"])
        if each is not None:
            each(polls)
        bake.document, output = step(bake_step, bake.event(), context)
        polls += 1
        assert polls < 100, "the bake never ends"
    return bake.document, output, polls


@pytest.fixture
def baking(clock: Clock, lambda_context: FakeLambdaContext) -> tuple[GuardedRelease, Bake]:
    release = GuardedRelease(policy=post_traffic_policy(bake=BAKE)).create().at_after_allow_traffic()
    put_version_metrics("2", invocations=3)  # too few to judge yet
    return release, start_bake(release, lambda_context)


def test_a_healthy_bake_polls_until_the_window_ends_then_reports_succeeded(
    baking: tuple[GuardedRelease, Bake],
    bake_step: Handler,
    clock: Clock,
    lambda_context: FakeLambdaContext,
) -> None:
    # GIVEN a 10-minute bake polled every minute, traffic arriving as it goes
    release, bake = baking
    assert release.reports() == []

    # WHEN the workflow polls until the bake step says done
    final, output, polls = bake_until_done(
        bake_step, bake, clock, lambda_context, each=lambda n: put_version_metrics("2", invocations=5)
    )

    # THEN it took one poll a minute, reported Succeeded once, and recorded every check
    assert polls == 10
    assert release.reports() == ["Succeeded"]
    assert (final["verdict"], final["decision"], final["state"]["polls"]) == ("done", "Succeeded", 10)
    (record,) = outcome_lines(output)
    assert record["role"] == "bake" and record["hook"] == "AfterAllowTraffic"
    assert (record["function_name"], record["current_version"], record["target_version"]) == (
        "orders",
        "1",
        "2",
    )
    assert [c["name"] for c in record["checks"]] == ["smoke:quote", "policy", "alarms", "version-health"]
    assert record["checks"][-1]["result"] == "passed"


def test_a_bake_that_ends_succeeded_prunes_old_versions_after_the_report(
    clock: Clock, bake_step: Handler, lambda_context: FakeLambdaContext
) -> None:
    # GIVEN a baked release 1 -> 2 whose policy keeps 1 version (no rollback window)
    release = GuardedRelease(policy=post_traffic_policy(bake=BAKE, prune={"keep": 1}))
    release.create().at_after_allow_traffic()
    put_version_metrics("2", invocations=3)
    bake = start_bake(release, lambda_context)
    assert len(boto3.client("lambda").list_versions_by_function(FunctionName="orders")["Versions"]) == 3

    # WHEN the bake ends Succeeded
    _final, output, _polls = bake_until_done(
        bake_step, bake, clock, lambda_context, each=lambda n: put_version_metrics("2", invocations=5)
    )

    # THEN only after the report is version 1 deleted, and the record says so
    assert release.reports() == ["Succeeded"]
    (record,) = outcome_lines(output)
    assert record["checks"][-1] == {**record["checks"][-1], "name": "prune", "result": "passed"}
    assert record["checks"][-1]["message"] == "deleted version(s) 1"
    versions = boto3.client("lambda").list_versions_by_function(FunctionName="orders")["Versions"]
    assert [v["Version"] for v in versions] == ["$LATEST", "2"]


def test_inconclusive_polls_keep_baking_and_the_policy_settles_the_last(
    clock: Clock, bake_step: Handler, lambda_context: FakeLambdaContext
) -> None:
    policy = post_traffic_policy(bake=BAKE)
    policy["functions"]["orders"]["version_health"]["inconclusive"] = "fail"
    release = GuardedRelease(policy=policy).create().at_after_allow_traffic()
    bake = start_bake(release, lambda_context)

    _final, output, polls = bake_until_done(bake_step, bake, clock, lambda_context)

    assert polls == 10  # no traffic: inconclusive until the end, never an early failure
    assert release.reports() == ["Failed"]
    assert "VH003" in json.dumps(outcome_lines(output)[0]["checks"])


def test_an_alarm_mid_bake_fails_at_the_next_poll(
    baking: tuple[GuardedRelease, Bake],
    bake_step: Handler,
    clock: Clock,
    lambda_context: FakeLambdaContext,
) -> None:
    release, bake = baking

    def fire_at_the_fourth_poll(n: int) -> None:
        if n == 3:
            set_alarm(ERRORS_ALARM, "ALARM")

    final, output, polls = bake_until_done(
        bake_step, bake, clock, lambda_context, each=fire_at_the_fourth_poll
    )

    assert polls == 4
    assert release.reports() == ["Failed"]
    assert final["decision"] == "Failed"
    assert "ALM001" in json.dumps(outcome_lines(output)[0]["checks"])


def test_in_observe_mode_an_alarm_mid_bake_is_reported_succeeded_and_recorded_as_would_have_failed(
    clock: Clock, bake_step: Handler, lambda_context: FakeLambdaContext
) -> None:
    policy = post_traffic_policy(bake=BAKE, mode="observe")
    release = GuardedRelease(policy=policy).create().at_after_allow_traffic()
    put_version_metrics("2", invocations=3)
    bake = start_bake(release, lambda_context)

    def fire_at_the_second_poll(n: int) -> None:
        if n == 1:
            set_alarm(ERRORS_ALARM, "ALARM")

    final, output, polls = bake_until_done(
        bake_step, bake, clock, lambda_context, each=fire_at_the_second_poll
    )

    assert polls == 2
    assert release.reports() == ["Succeeded"]
    assert final["decision"] == "Succeeded"
    (record,) = outcome_lines(output)
    assert (record["role"], record["mode"], record["would_have"]) == ("bake", "observe", "Failed")
    assert "ALM001" in json.dumps(record["checks"])


def test_an_alarm_created_mid_bake_is_watched_from_the_next_poll(
    baking: tuple[GuardedRelease, Bake],
    bake_step: Handler,
    clock: Clock,
    lambda_context: FakeLambdaContext,
) -> None:
    # GIVEN a new alarm the policy's prefix selects, created and firing mid-bake
    release, bake = baking
    put_alarm("orders-new-version-latency", metric="Duration")
    set_alarm("orders-new-version-latency", "ALARM")

    bake_until_done(bake_step, bake, clock, lambda_context)

    # THEN the bake sees it: the alarms are selected by the policy at every poll, not from the state
    assert release.reports() == ["Failed"]


def test_each_poll_resolves_the_deployment_and_reads_environments_only_to_write_the_record(
    baking: tuple[GuardedRelease, Bake],
    bake_step: Handler,
    clock: Clock,
    lambda_context: FakeLambdaContext,
) -> None:
    _release, bake = baking
    clock.advance(bake.document["wait_seconds"])
    with counted_calls() as calls:
        bake.document, _ = step(bake_step, bake.event(), lambda_context)

    # a poll that continues: the deployment from CodeDeploy (its AppSpec from the warm environment's
    # memory, keyed by the revision's hash), the function's scope tag, the alarms, the metrics; no
    # environment read
    assert bake.document["verdict"] == "continue"
    assert sorted(calls) == [
        "DescribeAlarms",
        "GetDeployment",
        "GetMetricData",
        "ListTags",
    ]

    # the last poll writes the record: the versions' environments for its redactor, read once per
    # warm environment (a published version never changes): here the bake step's own, cold one
    clock.advance(600)
    entrypoints.reset()
    with counted_calls() as calls:
        step(bake_step, bake.event(), lambda_context)
    assert calls.count("GetFunctionConfiguration") == 2
    assert calls.count("GetDeployment") == 1


def test_a_deployment_stopped_mid_bake_ends_the_bake_without_a_status(
    baking: tuple[GuardedRelease, Bake],
    bake_step: Handler,
    clock: Clock,
    lambda_context: FakeLambdaContext,
) -> None:
    release, bake = baking
    moto_codedeploy.set_deployment_status(release.deployment_id, "Stopped")

    final, output, polls = bake_until_done(bake_step, bake, clock, lambda_context)

    assert (polls, final["verdict"], final["decision"]) == (1, "done", None)
    assert release.reports() == []
    (record,) = outcome_lines(output)
    assert record["actions"][0]["kind"] == "no_action"
    assert "the deployment is Stopped" in record["reason"]


def test_a_bypass_added_mid_bake_reports_succeeded_at_once_and_is_audited(
    baking: tuple[GuardedRelease, Bake],
    bake_step: Handler,
    clock: Clock,
    lambda_context: FakeLambdaContext,
) -> None:
    # GIVEN an alarm firing mid-bake, and the on-call adds a bypass for this deployment (a hot fix)
    release, bake = baking
    set_alarm(ERRORS_ALARM, "ALARM")
    bypass = {
        "deployment_id": release.deployment_id,
        "reason": "hot fix for INC-9 shipping now",
        "approved_by": "oncall",
    }
    release.publish_policy(post_traffic_policy(bake=BAKE, bypass=bypass))
    entrypoints.policy_store.cache_clear()

    final, output, polls = bake_until_done(bake_step, bake, clock, lambda_context)

    assert (polls, final["decision"]) == (1, "Succeeded")
    assert release.reports() == ["Succeeded"]
    (record,) = outcome_lines(output)
    assert record["bypass"] == {"reason": "hot fix for INC-9 shipping now", "approved_by": "oncall"}
    assert any(
        line.get("message") == "checks bypassed by policy" and line["level"] == "WARNING"
        for line in json_lines(output)
    )


def test_the_workflows_catch_reports_failed_once(
    baking: tuple[GuardedRelease, Bake], bake_step: Handler, lambda_context: FakeLambdaContext
) -> None:
    release, bake = baking
    bake.document["error"] = {"Error": "States.Timeout", "Cause": "…"}  # the Catch's ResultPath

    answer, output = step(bake_step, bake.event(action="fail"), lambda_context)
    again, _ = step(bake_step, bake.event(action="fail"), lambda_context)  # Step Functions retried it

    assert release.reports() == ["Failed"]
    assert answer["decision"] == again["decision"] == "Failed"
    (record,) = outcome_lines(output)
    assert "the bake workflow failed (States.Timeout)" in record["reason"]
    assert record["function_name"] == "orders"  # resolved for the record


def test_invalid_settings_still_report_failed(
    baking: tuple[GuardedRelease, Bake],
    bake_step: Handler,
    lambda_context: FakeLambdaContext,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    release, bake = baking
    monkeypatch.setenv("DEPLOYGUARD_STAGE", "qa")

    answer, output = step(bake_step, bake.event(), lambda_context)

    assert release.reports() == ["Failed"]
    assert answer["decision"] == "Failed"
    (record,) = outcome_lines(output)
    assert "DEPLOYGUARD_STAGE" in record["reason"]
    assert record["checks"][-1]["name"] == "SettingsError"


def test_a_malformed_state_with_its_ids_reports_failed_and_without_is_logged(
    baking: tuple[GuardedRelease, Bake], bake_step: Handler, lambda_context: FakeLambdaContext
) -> None:
    release, bake = baking

    answer, output = step(bake_step, {"input": {"state": {"polls": "many"}}}, lambda_context)
    assert answer["verdict"] == "done" and release.reports() == []
    assert any(line.get("message") == "malformed bake state" for line in json_lines(output))
    answer, _ = step(bake_step, ["not", "an", "object"], lambda_context)
    assert answer["verdict"] == "done" and release.reports() == []

    ids = {k: bake.state[k] for k in ("deployment_id", "lifecycle_event_hook_execution_id")}
    _, output = step(
        bake_step, {"input": {"state": ids}, "execution_name": bake.execution_name}, lambda_context
    )
    assert release.reports() == ["Failed"]
    assert (
        "the bake workflow's state is malformed (input.state.window: Field required"
        in (outcome_lines(output)[0]["reason"])
    )


# --- what the bake trusts: ids, checked against CodeDeploy and the execution ---------------------

FORGERIES: dict[str, dict[str, Any]] = {
    # the function named in the state is not guarded: under 'unguarded: pass' nothing was watched
    "another_function": {
        "target": {
            "function_name": "unguarded",
            "alias": "live",
            "current_version": "1",
            "target_version": "2",
        }
    },
    # the deployment "started" after the alarm fired: the alarm counted as pre-existing
    "a_later_start": {"deployment_started_at": "2099-01-01T00:00:00+00:00"},
}


@pytest.mark.parametrize("forgery", list(FORGERIES))
@pytest.mark.parametrize("handed_over", ["as_the_state_itself", "in_the_step_event"])
def test_a_forged_state_cannot_pass_a_bake_while_the_deployments_alarm_fires(
    clock: Clock, bake_step: Handler, lambda_context: FakeLambdaContext, forgery: str, handed_over: str
) -> None:
    # GIVEN a bake under 'unguarded: pass', the deployment's alarm in ALARM, and a state rewritten to
    # name another function or a later start, its window at its end (this poll decides)
    policy = post_traffic_policy(bake=BAKE)
    policy["unguarded"] = "pass"
    release = GuardedRelease(policy=policy).create().at_after_allow_traffic()
    set_alarm(ERRORS_ALARM, "ALARM")
    started = boto3.client("codedeploy").get_deployment(deploymentId=release.deployment_id)["deploymentInfo"][
        "createTime"
    ]
    now = clock.at.isoformat()
    forged = {
        "deployment_id": release.deployment_id,
        "lifecycle_event_hook_execution_id": release.execution_id,
        "stage": "staging",
        "target": {"function_name": "orders", "alias": "live", "current_version": "1", "target_version": "2"},
        "deployment_started_at": started.isoformat(),
        "window": {"started_at": now, "until": now, "poll_seconds": 60},
        "alarm_names": [ERRORS_ALARM],
        "prior_checks": [],
        "polls": 0,
        **FORGERIES[forgery],
    }
    event = (
        {**forged, "verdict": "continue", "wait_seconds": 1}
        if handed_over == "as_the_state_itself"
        else {
            "input": {"state": forged, "verdict": "continue", "wait_seconds": 1},
            "execution_name": execution_name(release.deployment_id, release.execution_id),
        }
    )

    # WHEN the bake step polls it
    answer, output = step(bake_step, event, lambda_context)

    # THEN the deployment is never passed: the state is refused and Failed reported (fail closed)
    assert release.reports() == ["Failed"]
    assert answer["decision"] == "Failed"
    assert outcome_lines(output)[0]["decision"] == "Failed"


def test_a_state_whose_deployment_does_not_exist_ends_in_a_failed_report_attempt(
    clock: Clock, bake_step: Handler, lambda_context: FakeLambdaContext
) -> None:
    deployment_id, execution_id = "d-NOSUCH123", "eyJub3N1Y2gifQ=="
    state: dict[str, Any] = {
        "deployment_id": deployment_id,
        "lifecycle_event_hook_execution_id": execution_id,
        "window": {"started_at": clock.at.isoformat(), "until": clock.at.isoformat(), "poll_seconds": 60},
    }
    bake = Bake(
        execution_name=execution_name(deployment_id, execution_id),
        document={"state": state, "verdict": "continue", "wait_seconds": 1},
    )

    with (
        captured_output() as out,
        pytest.raises(Exception, match="PutLifecycleEventHookExecutionStatus failed"),
    ):
        bake_step(bake.event(), lambda_context)

    (record,) = outcome_lines(out.getvalue())
    assert "GetDeployment failed with DeploymentDoesNotExistException" in record["reason"]
    action = record["actions"][-1]
    assert (action["kind"], action["ok"]) == ("status_reported", False)


def test_a_state_run_by_an_execution_started_for_other_ids_reports_nothing(
    baking: tuple[GuardedRelease, Bake], bake_step: Handler, clock: Clock, lambda_context: FakeLambdaContext
) -> None:
    # GIVEN this deployment's state, run by an execution whose name was derived from other ids
    release, bake = baking
    set_alarm(ERRORS_ALARM, "ALARM")
    foreign = Bake(execution_name=execution_name("d-OTHER1234", "eyJvdGhlciJ9"), document=bake.document)

    answer, output = step(bake_step, foreign.event(), lambda_context)

    assert (answer["verdict"], answer["decision"]) == ("done", None)
    assert release.reports() == []
    assert any(line.get("message") == "foreign bake state" for line in json_lines(output))
    assert "does not belong to the execution running it" in outcome_lines(output)[0]["reason"]


def test_an_older_deployguards_state_in_flight_across_an_upgrade_reports_failed_with_the_reason(
    baking: tuple[GuardedRelease, Bake], bake_step: Handler, lambda_context: FakeLambdaContext
) -> None:
    # GIVEN an execution started by the previous DeployGuard (its definition hands over the state
    # itself; its Catch wraps it in {"action": "fail", "state": …})
    release, bake = baking
    older = {
        **bake.state,
        "stage": "staging",
        "target": {"function_name": "orders", "alias": "live", "current_version": "1", "target_version": "2"},
        "deployment_started_at": bake.state["window"]["started_at"],
        "alarm_names": [ERRORS_ALARM],
        "verdict": "continue",
        "wait_seconds": 60,
    }

    answer, output = step(bake_step, older, lambda_context)
    again, _ = step(
        bake_step, {"action": "fail", "state": {**older, "error": {"Error": "x"}}}, lambda_context
    )

    # THEN no crash: Failed is reported once, saying why; the older definition's Choice reads 'verdict'
    assert release.reports() == ["Failed"]
    assert (answer["verdict"], answer["decision"]) == ("done", "Failed")
    assert again["verdict"] == "done"
    assert "the bake workflow's state is of an older DeployGuard" in outcome_lines(output)[0]["reason"]


def test_a_window_that_opens_before_the_deployment_was_created_fails(
    baking: tuple[GuardedRelease, Bake], bake_step: Handler, clock: Clock, lambda_context: FakeLambdaContext
) -> None:
    release, bake = baking
    early = clock.at - timedelta(days=1)
    bake.state["window"] = {"started_at": early.isoformat(), "until": early.isoformat(), "poll_seconds": 60}

    _answer, output = step(bake_step, bake.event(), lambda_context)

    assert release.reports() == ["Failed"]
    assert "the bake window opens before the deployment was created" in outcome_lines(output)[0]["reason"]


def test_the_hooks_smoke_results_in_the_state_can_fail_a_bake_but_not_pass_one(
    baking: tuple[GuardedRelease, Bake], bake_step: Handler, clock: Clock, lambda_context: FakeLambdaContext
) -> None:
    release, bake = baking
    set_alarm(ERRORS_ALARM, "ALARM")
    bake.state["prior_checks"] = [{"name": "smoke:quote", "result": "passed", "message": "all fine"}] * 3

    bake_until_done(bake_step, bake, clock, lambda_context)
    assert release.reports() == ["Failed"]  # passes in the state did not outweigh the alarm


def test_a_crash_mid_poll_is_reported_failed_and_its_text_redacted(
    clock: Clock, bake_step: Handler, lambda_context: FakeLambdaContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a bake of a version whose environment holds a password, and a bug that quotes it
    secret = "Zq8vN3rT6wXy1Kp4Lm7"
    release = GuardedRelease(
        policy=post_traffic_policy(bake=BAKE), target_env={**GOOD_ENV, "DB_PASSWORD": secret}
    )
    release.create().at_after_allow_traffic()
    put_version_metrics("2", invocations=3)
    bake = start_bake(release, lambda_context)
    from deployguard import bake_step as module

    def bug(*_args: Any, **_kwargs: Any) -> Any:
        raise RuntimeError(f"the poll tripped over {secret}")

    monkeypatch.setattr(module, "poll_checks", bug)
    clock.advance(60)

    answer, output = step(bake_step, bake.event(), lambda_context)

    assert release.reports() == ["Failed"]
    assert "internal error (RuntimeError)" in outcome_lines(output)[0]["reason"]
    assert any(line.get("message") == "bake poll crashed" for line in json_lines(output))
    for text in (output, json.dumps(answer)):
        assert not any(secret[i : i + 8] in text for i in range(len(secret) - 7))


@pytest.mark.parametrize("failure", list(FAILURES))
@pytest.mark.parametrize(
    ("service", "operation"),
    [
        ("codedeploy", "GetDeployment"),
        ("codedeploy", "GetApplicationRevision"),
        ("s3", "GetObject"),
        ("cloudwatch", "DescribeAlarms"),
        ("cloudwatch", "GetMetricData"),
        ("lambda", "GetFunctionConfiguration"),
    ],
)
def test_each_aws_call_of_a_poll_failing_ends_in_exactly_one_failed(
    baking: tuple[GuardedRelease, Bake],
    bake_step: Handler,
    clock: Clock,
    lambda_context: FakeLambdaContext,
    service: str,
    operation: str,
    failure: str,
) -> None:
    release, bake = baking
    # a cold start: nothing is remembered (the policy, the AppSpec, the versions' environments)
    entrypoints.reset()
    fail(service, operation, failure)

    _final, output, _ = bake_until_done(bake_step, bake, clock, lambda_context)

    assert release.reports() == ["Failed"]
    assert operation in outcome_lines(output)[0]["reason"]


def test_a_report_that_cannot_be_delivered_raises_for_the_workflows_retry_and_catch(
    baking: tuple[GuardedRelease, Bake],
    bake_step: Handler,
    clock: Clock,
    lambda_context: FakeLambdaContext,
) -> None:
    release, bake = baking
    set_alarm(ERRORS_ALARM, "ALARM")
    fail("codedeploy", "PutLifecycleEventHookExecutionStatus", "Timeout")
    clock.advance(60)

    with captured_output(), pytest.raises(Exception, match="PutLifecycleEventHookExecutionStatus failed"):
        bake_step(bake.event(), lambda_context)

    assert release.reports() == []


def test_the_sample_event_is_a_bake_step_event() -> None:
    from deployguard.bake import BakeStepEvent

    event = BakeStepEvent.model_validate(load_event("bake_step.json"))
    state = event.input.state
    assert state.window.poll_seconds == 60
    assert event.execution_name == execution_name(
        state.deployment_id, state.lifecycle_event_hook_execution_id
    )


# --- tier 2: the state machine itself, executed by moto, over the real bake step ------------------

DEFINITION = ROOT / "statemachine" / "bake.asl.json"
BAKE_STEP = "deployguard-staging-bake-step"


@dataclass
class Workflow:
    endpoint: str
    state_machine_arn: str

    def run(
        self, document: dict[str, Any], *, name: str | None = None, timeout: float = 90
    ) -> dict[str, Any]:
        """Start an execution as the post-traffic hook does (named for the state's ids, unless
        ``name`` says otherwise) and wait for its end."""
        sfn = boto3.client("stepfunctions")
        state = document["state"]
        name = name or execution_name(state["deployment_id"], state["lifecycle_event_hook_execution_id"])
        arn = sfn.start_execution(
            stateMachineArn=self.state_machine_arn, name=name, input=json.dumps(document)
        )["executionArn"]
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            execution: dict[str, Any] = dict(sfn.describe_execution(executionArn=arn))
            if execution["status"] != "RUNNING":
                return execution
            time.sleep(0.2)
        raise AssertionError("the bake workflow did not finish")


def deploy_workflow(bake_step_zip: bytes) -> str:
    iam, lam = boto3.client("iam"), boto3.client("lambda")
    role = iam.create_role(RoleName="bake-step", AssumeRolePolicyDocument=ROLE_POLICY)["Role"]["Arn"]
    function_arn = lam.create_function(
        FunctionName=BAKE_STEP,
        Runtime="python3.12",
        Role=role,
        Handler="app.handler",
        Code={"ZipFile": bake_step_zip},
        Timeout=60,
        Environment={"Variables": HOOK_ENV},
    )["FunctionArn"]
    definition = DEFINITION.read_text().replace("${BakeStepFunctionArn}", function_arn)
    return str(
        boto3.client("stepfunctions").create_state_machine(
            name="deployguard-staging-bake", definition=definition, roleArn=role, type="STANDARD"
        )["stateMachineArn"]
    )


@pytest.fixture
def moto_server(aws_env: None, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    from moto.core.config import default_user_config
    from moto.server import ThreadedMotoServer

    monkeypatch.setitem(default_user_config, "lambda", {"use_docker": False})
    monkeypatch.setitem(default_user_config, "stepfunctions", {"execute_state_machine": True})
    for extension in (moto_codedeploy, lambda_runner, moto_cloudwatch, moto_lambda_alias):
        extension.install()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    _, port = server.get_host_and_port()
    endpoint = f"http://127.0.0.1:{port}"
    monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint)  # every boto3 client of this process
    monkeypatch.setenv("MOTO_PORT", str(port))  # where moto's Step Functions sends its Lambda calls
    entrypoints.reset()
    try:
        yield endpoint
    finally:
        import urllib.request

        urllib.request.urlopen(urllib.request.Request(f"{endpoint}/moto-api/reset", method="POST"))
        server.stop()
        entrypoints.reset()


def short_bake(release: GuardedRelease, *, seconds: int) -> dict[str, Any]:
    """The input the hook would give the workflow, for a bake of ``seconds`` polled every second."""
    now = datetime.now(UTC)
    return {
        "state": {
            "deployment_id": release.deployment_id,
            "lifecycle_event_hook_execution_id": release.execution_id,
            "window": {
                "started_at": now.isoformat(),
                "until": (now + timedelta(seconds=seconds)).isoformat(),
                "poll_seconds": 1,
            },
        },
        "verdict": "continue",
        "wait_seconds": 1,
    }


@pytest.fixture
def workflow(moto_server: str) -> Workflow:
    return Workflow(
        moto_server, deploy_workflow(lambda_runner.zip_directory(ROOT / "functions" / "bake_step"))
    )


@pytest.fixture
def released(moto_server: str) -> GuardedRelease:
    put_alarm(ERRORS_ALARM)
    release = GuardedRelease(policy=post_traffic_policy(bake=BAKE)).create().at_after_allow_traffic()
    put_version_metrics("2", invocations=40)
    return release


def test_the_state_machine_waits_polls_and_the_step_reports_succeeded(
    workflow: Workflow, released: GuardedRelease
) -> None:
    execution = workflow.run(short_bake(released, seconds=3))

    assert execution["status"] == "SUCCEEDED"
    output = json.loads(execution["output"])
    assert (output["verdict"], output["decision"]) == ("done", "Succeeded")
    assert output["state"]["polls"] >= 2  # waited and polled more than once
    assert released.reports() == ["Succeeded"]


def test_the_state_machine_stops_at_the_first_poll_that_sees_an_alarm(
    workflow: Workflow, released: GuardedRelease
) -> None:
    set_alarm(ERRORS_ALARM, "ALARM")

    execution = workflow.run(short_bake(released, seconds=30))

    assert json.loads(execution["output"])["state"]["polls"] == 1
    assert released.reports() == ["Failed"]


def test_an_execution_not_started_for_the_states_ids_reports_nothing(
    workflow: Workflow, released: GuardedRelease
) -> None:
    # GIVEN someone starts the workflow under a name of their own with this deployment's state
    set_alarm(ERRORS_ALARM, "ALARM")

    execution = workflow.run(short_bake(released, seconds=30), name="not-derived-from-the-ids")

    # THEN the step (told the name by Step Functions' context object, not by the input) refuses it
    assert execution["status"] == "SUCCEEDED"
    assert json.loads(execution["output"])["decision"] is None
    assert released.reports() == []


def test_a_crashing_poll_is_caught_and_the_workflow_still_reports_failed(
    moto_server: str, released: GuardedRelease
) -> None:
    # GIVEN a bake step whose poll crashes (one edit of the real code); its 'fail' action works
    crashing = lambda_runner.zip_directory(
        ROOT / "functions" / "bake_step",
        replacements={
            "app.py": (
                "    return bake_step(event, context, os.environ)",
                "    if event.get('action') != 'fail':\n"
                "        raise RuntimeError('the poll crashed')\n"
                "    return bake_step(event, context, os.environ)",
            )
        },
    )
    workflow = Workflow(moto_server, deploy_workflow(crashing))

    execution = workflow.run(short_bake(released, seconds=30))

    assert execution["status"] == "SUCCEEDED"
    assert json.loads(execution["output"])["decision"] == "Failed"
    assert released.reports() == ["Failed"]


def test_the_definition_stays_within_the_hook_deadline() -> None:
    definition = json.loads(DEFINITION.read_text())
    assert definition["TimeoutSeconds"] < 3600
    assert definition["States"]["Poll"]["Catch"][0]["Next"] == "ReportFailed"
    assert definition["States"]["Wait"]["SecondsPath"] == "$.wait_seconds"
    assert Path(DEFINITION).read_text().count("${BakeStepFunctionArn}") == 2
    for task in ("Poll", "ReportFailed"):  # the execution's name comes from the context object
        assert definition["States"][task]["Parameters"]["Payload"]["execution_name.$"] == "$$.Execution.Name"
        assert definition["States"][task]["Parameters"]["Payload"]["input.$"] == "$"


def test_a_poll_throttled_to_its_end_is_inconclusive_and_the_bake_goes_on(
    baking: tuple[GuardedRelease, Bake],
    bake_step: Handler,
    clock: Clock,
    lambda_context: FakeLambdaContext,
) -> None:
    # GIVEN a bake whose second poll finds DescribeAlarms throttled on every attempt
    release, bake = baking
    throttled = [False]

    def throttle(**_kwargs: Any) -> None:
        if throttled[0]:
            raise FAILURES["Throttling"]("DescribeAlarms")

    for client in deployguard_clients():
        client.meta.events.register("before-call.cloudwatch.DescribeAlarms", throttle)

    # WHEN the workflow bakes to the end
    logged: list[str] = []
    while bake.document["verdict"] == "continue":
        clock.advance(bake.document["wait_seconds"])
        put_version_metrics("2", invocations=5)
        throttled[0] = len(logged) == 1
        bake.document, output = step(bake_step, bake.event(), lambda_context)
        logged.append(output)

    # THEN that poll was inconclusive, saying why (AWS001), the next checked again, and the bake passed
    polls = [line for line in json_lines(logged[1]) if line.get("message") == "bake poll"]
    assert polls and polls[0]["checks"]["AwsCallError"] == "inconclusive"
    assert len(logged) == 10
    assert release.reports() == ["Succeeded"]
    assert bake.document["decision"] == "Succeeded"
