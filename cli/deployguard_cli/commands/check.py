"""``deployguard check`` — the pre-traffic checks from a pipeline, without a deployment.

Runs config validation and smoke tests against whatever endpoint boto3 is configured for (real
AWS, or a moto server via AWS_ENDPOINT_URL). Exit 0 pass, 1 findings, 2 could not run.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from deployguard import entrypoints
from deployguard.checks import check_version
from deployguard.findings import Decision, decide
from deployguard.outcome import OutcomeRecord, Role
from deployguard.pre_traffic import policy_for
from deployguard.stages import Stage
from deployguard_cli.commands.policy import read_policy
from deployguard_cli.exit_codes import EXIT_FINDINGS, EXIT_OK
from deployguard_cli.render import print_record


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("check", help="run config validation and smoke tests on a version")
    parser.add_argument("--stage", required=True, choices=[s.value for s in Stage])
    parser.add_argument("--policy", required=True, type=Path, help="the stage's policy file")
    parser.add_argument("--function", required=True, help="function name or ARN")
    parser.add_argument("--version", required=True, help="the version to check (the release candidate)")
    parser.add_argument("--current", help="the live version, to report drift against")
    parser.add_argument("--json", action="store_true", help="print the outcome record as JSON")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    stage = Stage(args.stage)
    policy = read_policy(args.policy, stage=stage)
    record = OutcomeRecord(
        role=Role.CLI,
        stage=stage.value,
        function_name=args.function,
        current_version=args.current,
        target_version=args.version,
    )
    entry, policy_check = policy_for(policy, args.function)
    checks = [policy_check]
    redactor = None
    if entry is not None:
        result = check_version(
            lambda_=entrypoints.lambda_adapter(),
            references=entrypoints.references(),
            policy=entry,
            stage=stage,
            function_name=args.function,
            target_version=args.version,
            current_version=args.current,
            today=datetime.now(UTC).date(),
        )
        checks += result.checks
        redactor = result.redactor
    decision = decide(checks) if entry is not None or policy.unguarded == "fail" else Decision.SUCCEEDED
    record = replace(record, checks=checks, decision=decision).finish()
    if redactor is not None:
        record = record.redacted(redactor)
    if args.json:
        print(json.dumps(record.document(), indent=2))
    else:
        print_record(record)
    return EXIT_OK if decision is Decision.SUCCEEDED else EXIT_FINDINGS
