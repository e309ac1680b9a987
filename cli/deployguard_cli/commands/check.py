"""``deployguard check`` — the pre-traffic checks from a pipeline, without a deployment.

Runs config validation and smoke tests against whatever endpoint boto3 is configured for (real
AWS, or a moto server via AWS_ENDPOINT_URL). Exit 0 pass, 1 findings, 2 could not run.

A function's first release has no version to check yet: ``--template`` checks the configuration
its SAM template declares instead (``deployguard_cli.template_check``); without it, a function or
version that does not exist is a one-line error naming that fix.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Mapping
from dataclasses import replace
from datetime import UTC, date, datetime
from pathlib import Path

from deployguard.checks import check_version
from deployguard.errors import AwsCallError, DeployGuardError
from deployguard.findings import Decision, decide
from deployguard.guard import Guarded, guard_function
from deployguard.outcome import OutcomeRecord, Role
from deployguard.policy import Policy
from deployguard.ports import LambdaPort, ReferencePort
from deployguard.secrets import Redactor
from deployguard.stages import APP_TAG, Stage
from deployguard_cli import adapters
from deployguard_cli.commands.policy import BUCKET_HELP, read_stage_policy
from deployguard_cli.exit_codes import EXIT_FINDINGS, EXIT_OK
from deployguard_cli.policy_store import resolve_bucket
from deployguard_cli.render import print_record
from deployguard_cli.template_check import find_function, judged_name, template_checks, template_tags
from deployguard_cli.templates import read_template


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("check", help="run config validation and smoke tests on a version")
    parser.add_argument("--stage", required=True, choices=[s.value for s in Stage])
    parser.add_argument(
        "--policy",
        type=Path,
        help="an application's policy file (with --baseline, or the baseline.yaml next to its apps/ "
        "folder) or a whole-stage policy file; default: the stage's policy store, the document of "
        "the application the function's deployguard:app tag names",
    )
    parser.add_argument(
        "--baseline", type=Path, help="the baseline an application's policy file is merged with"
    )
    parser.add_argument("--bucket", help=BUCKET_HELP)
    parser.add_argument("--function", required=True, help="function name or ARN")
    parser.add_argument(
        "--version", help="the version to check (the release candidate); required unless --template"
    )
    parser.add_argument(
        "--template",
        type=Path,
        help="the function's first release: check the configuration its SAM/CloudFormation template "
        "declares (no version needed; smoke tests run at its first guarded deployment)",
    )
    parser.add_argument(
        "--resource",
        help="with --template: the function's logical id (default: the one whose logical id or "
        "FunctionName is --function)",
    )
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
    if args.template is not None:
        return _report(check_template(args, stage), as_json=args.json)
    if not args.version:
        raise CheckUsageError(
            "--version is required (the version to check); for a function's first release, pass "
            "--template template.yaml instead"
        )
    try:
        return _check_version(args, stage)
    except AwsCallError as exc:
        if exc.error_code != "ResourceNotFoundException":
            raise
        raise CheckUsageError(
            f"{args.function} has no version {args.version} to check ({exc.operation}: "
            f"{exc.error_code}): for a function's first release, check its template instead: "
            f"deployguard check --stage {stage.value} --function {args.function} --template template.yaml"
        ) from exc


class CheckUsageError(DeployGuardError):
    """``deployguard check`` cannot run as asked: the message says how to run it."""

    code = "CHECK"


def _check_version(args: argparse.Namespace, stage: Stage) -> int:
    policy = (
        read_stage_policy(args.policy, stage=stage, baseline_path=args.baseline)
        if args.policy
        else stored_policy(stage, args.function, args.bucket)
    )
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
    return _report(record, as_json=args.json)


def _report(record: OutcomeRecord, *, as_json: bool) -> int:
    if as_json:
        print(json.dumps(record.document(), indent=2))
    else:
        print_record(record)
    return EXIT_OK if record.decision is Decision.SUCCEEDED else EXIT_FINDINGS


def check_template(args: argparse.Namespace, stage: Stage) -> OutcomeRecord:
    """The first release's check: the configuration the template declares for the function, judged
    by its policy (a file, or the store's document of the application its template tags name)."""
    template = read_template(args.template)
    function = find_function(template, args.function, args.resource)
    tags = template_tags(function)
    name = judged_name(function, args.function)
    policy = (
        read_stage_policy(args.policy, stage=stage, baseline_path=args.baseline)
        if args.policy
        else stored_policy(stage, name, args.bucket, tags=tags)
    )
    record = OutcomeRecord(role=Role.CLI, stage=stage.value, function_name=args.function)
    found = guard_function(policy, name, tags=tags)
    if not isinstance(found, Guarded):
        checks = [found.policy_check]
    else:
        checks = [
            found.policy_check,
            *template_checks(
                function,
                found.entry,
                function_name=name,
                stage=stage,
                references=adapters.references(),
                today=datetime.now(UTC).date(),
            ),
        ]
    reason = f"first release, checked from {args.template}: smoke tests run at its first guarded deployment"
    # NOTE: the template's literal values are formats-only redacted, as any record
    return (
        replace(record, checks=checks, decision=decide(checks), reason=reason).finish().redacted(Redactor())
    )


def stored_policy(
    stage: Stage, function_name: str, bucket: str | None, *, tags: Mapping[str, str] | None = None
) -> Policy:
    """The function's effective policy as the hooks read it: its application's document (the
    ``deployguard:app`` tag; ``tags``: as given, else the deployed function's) under the stage's
    baseline, from the policy bucket."""
    from deployguard.aws.policy_store import PolicyStore  # noqa: PLC0415 — only without --policy

    if tags is None:
        tags = adapters.functions().tags(function_name)
    store = PolicyStore(adapters.s3, resolve_bucket(bucket, stage), max_age=0)
    return store.load(stage, tags.get(APP_TAG), function_name)


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
    found = guard_function(policy, function_name, tags=functions.tags(function_name))
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
