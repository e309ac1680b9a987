"""``deployguard check`` — the pre-traffic checks from a pipeline, without a deployment.

Runs config validation and smoke tests against whatever endpoint boto3 is configured for (real
AWS, or a moto server via AWS_ENDPOINT_URL). Exit 0 pass, 1 findings, 2 could not run.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import replace
from datetime import UTC, date, datetime
from pathlib import Path

from deployguard.checks import check_version
from deployguard.findings import Decision, decide
from deployguard.guard import Guarded, guard_function
from deployguard.outcome import OutcomeRecord, Role
from deployguard.policy import Policy
from deployguard.ports import LambdaPort, ReferencePort
from deployguard.secrets import Redactor
from deployguard.stages import Stage
from deployguard_cli import adapters
from deployguard_cli.commands.policy import read_policy
from deployguard_cli.exit_codes import EXIT_FINDINGS, EXIT_OK
from deployguard_cli.render import print_record


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("check", help="run config validation and smoke tests on a version")
    parser.add_argument("--stage", required=True, choices=[s.value for s in Stage])
    parser.add_argument("--policy", required=True, type=Path, help="the stage's policy file")
    parser.add_argument("--function", required=True, help="function name or ARN")
    parser.add_argument("--version", required=True, help="the version to check (the release candidate)")
    parser.add_argument("--current", help="the live version, to report drift against")
    parser.add_argument("--json", action="store_true", help="print the outcome record as JSON")
    parser.set_defaults(run=run)


# Past a case's timeout the smoke engine has already reported it (SMK002); the invocation's thread
# then lives at most this much longer, until the invoke client's read timeout ends it.
INVOKE_MARGIN_SECONDS = 1.0


def smoke_read_timeout(policy: Policy, function_name: str) -> float | None:
    """The invoke client's read timeout for the function's smoke cases: the longest case timeout
    plus a margin, so no invocation outlives its case by more (None: no smoke case to run)."""
    match = policy.for_function(function_name)
    if match is None or not match[1].smoke:
        return None
    return max(case.timeout_ms for case in match[1].smoke) / 1000 + INVOKE_MARGIN_SECONDS


def run(args: argparse.Namespace) -> int:
    stage = Stage(args.stage)
    policy = read_policy(args.policy, stage=stage)
    record = check(
        policy,
        # NOTE: bounded by the cases' timeouts: a pipeline step must not wait out Lambda's 900 s
        functions=adapters.functions(invoke_read_timeout=smoke_read_timeout(policy, args.function)),
        references=adapters.references(),
        stage=stage,
        function_name=args.function,
        target_version=args.version,
        current_version=args.current,
        today=datetime.now(UTC).date(),
    )
    if args.json:
        print(json.dumps(record.document(), indent=2))
    else:
        print_record(record)
    return EXIT_OK if record.decision is Decision.SUCCEEDED else EXIT_FINDINGS


def check(
    policy: Policy,
    *,
    functions: LambdaPort,
    references: ReferencePort,
    stage: Stage,
    function_name: str,
    target_version: str,
    current_version: str | None,
    today: date,
) -> OutcomeRecord:
    """The pre-traffic checks of ``target_version`` as the stage's policy guards the function: the
    outcome record (redacted with the versions' redactor), decided. An unguarded function is
    decided by ``unguarded``. An error once the versions were read is a ``RedactedError``: the CLI
    prints its message, redacted with the same redactor."""
    record = OutcomeRecord(
        role=Role.CLI,
        stage=stage.value,
        function_name=function_name,
        current_version=current_version,
        target_version=target_version,
    )
    found = guard_function(policy, function_name)
    if not isinstance(found, Guarded):
        checks = [found.policy_check]
        return replace(record, checks=checks, decision=decide(checks)).finish().redacted(Redactor())
    result = check_version(
        functions=functions,
        references=references,
        policy=found.entry,
        stage=stage,
        function_name=function_name,
        target_version=target_version,
        current_version=current_version,
        today=today,
    )
    checks = [found.policy_check, *result.checks]
    return replace(record, checks=checks, decision=decide(checks)).finish().redacted(result.redactor)
