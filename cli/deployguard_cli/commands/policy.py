"""``deployguard policy check|schema|publish`` — the guard policy documents.

``policy check`` exits 0 when every file is a valid policy, 1 when one breaks the policy's rules
(its errors are listed), 2 when one cannot be checked at all: missing, not UTF-8 text, not JSON
or YAML, or over a limit of :mod:`deployguard.documents`. With several files the highest applies.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, TypedDict

from deployguard.aws.errors import aws_call
from deployguard.policy import (
    InvalidPolicyError,
    Policy,
    UnreadablePolicyError,
    inline_payloads,
    load_policy,
    policy_json_schema,
    read_policy_file,
)
from deployguard.stages import Stage
from deployguard_cli import adapters
from deployguard_cli.exit_codes import EXIT_ERROR, EXIT_FINDINGS, EXIT_OK

if TYPE_CHECKING:
    from mypy_boto3_ssm import SSMClient

DEFAULT_PARAMETER = "/deployguard/{stage}/policy"


class IssueDocument(TypedDict):
    path: str
    problem: str
    fix: str


class FileReport(TypedDict):
    file: str
    valid: bool
    readable: bool
    error_count: int
    errors: list[IssueDocument]


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("policy", help="check, publish, or print the schema of a guard policy")
    commands = parser.add_subparsers(dest="policy_command", required=True, metavar="ACTION")

    check = commands.add_parser("check", help="validate policy files; every error with its path and fix")
    check.add_argument("files", nargs="+", type=Path, metavar="FILE")
    check.add_argument("--json", action="store_true", help="machine-readable output")
    check.set_defaults(run=run_check)

    schema = commands.add_parser("schema", help="print the JSON Schema (for editors)")
    schema.set_defaults(run=run_schema)

    publish = commands.add_parser("publish", help="store a stage's policy in SSM where its hooks read it")
    publish.add_argument("file", type=Path, metavar="FILE")
    publish.add_argument("--stage", required=True, choices=[s.value for s in Stage])
    publish.add_argument("--parameter", help=f"SSM parameter name (default {DEFAULT_PARAMETER})")
    publish.set_defaults(run=run_publish)


def read_policy(path: Path, *, stage: Stage | None = None) -> Policy:
    """Load a policy file and inline its payload files (relative to the policy file, in its folder).

    UnreadablePolicyError: the file cannot be read or parsed; InvalidPolicyError: it breaks the rules.
    """
    policy = load_policy(read_policy_file(path), str(path), stage=stage)
    return inline_payloads(policy, path.parent, source=str(path))


def run_check(args: argparse.Namespace) -> int:
    report: list[FileReport] = []
    for path in args.files:
        try:
            read_policy(path)
        except InvalidPolicyError as exc:  # UnreadablePolicyError included: readable tells them apart
            issues = [IssueDocument(path=i.path, problem=i.problem, fix=i.fix) for i in exc.issues]
            readable = not isinstance(exc, UnreadablePolicyError)
            report.append(
                {
                    "file": str(path),
                    "valid": False,
                    "readable": readable,
                    "error_count": exc.total,
                    "errors": issues,
                }
            )
        else:
            report.append(
                {"file": str(path), "valid": True, "readable": True, "error_count": 0, "errors": []}
            )
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        for entry in report:
            _print_file_report(entry)
    if not all(e["readable"] for e in report):
        return EXIT_ERROR
    return EXIT_OK if all(e["valid"] for e in report) else EXIT_FINDINGS


def _print_file_report(entry: FileReport) -> None:
    if entry["valid"]:
        print(f"{entry['file']}: ok")
        return
    print(
        f"{entry['file']}: {entry['error_count']} error(s)"
        if entry["readable"]
        else f"{entry['file']}: cannot be checked"
    )
    for error in entry["errors"]:
        fix = f" — fix: {error['fix']}" if error["fix"] else ""
        print(f"  {error['path']}: {error['problem']}{fix}")
    more = entry["error_count"] - len(entry["errors"])
    if more:
        print(f"  … and {more} more: fix these and check again")


def run_schema(args: argparse.Namespace) -> int:
    json.dump(policy_json_schema(), sys.stdout, indent=2)
    print()
    return EXIT_OK


def run_publish(args: argparse.Namespace) -> int:
    stage = Stage(args.stage)
    try:
        policy = read_policy(args.file, stage=stage)
    except InvalidPolicyError as exc:
        print(f"deployguard: {exc}", file=sys.stderr)
        return EXIT_ERROR
    name = args.parameter or DEFAULT_PARAMETER.format(stage=stage.value)
    size = publish_policy(adapters.ssm(), policy, name)
    print(f"published the {stage.value} policy ({size} bytes) to SSM parameter {name}")
    return EXIT_OK


def publish_policy(ssm: SSMClient, policy: Policy, parameter: str) -> int:
    """Store ``policy`` (payload files inlined) in SSM ``parameter``, where the hooks read it; its size."""
    document = policy.model_dump_json(exclude_unset=True)
    with aws_call("PutParameter"):
        ssm.put_parameter(
            Name=parameter, Value=document, Type="String", Overwrite=True, Tier="Intelligent-Tiering"
        )
    return len(document)
