"""``deployguard policy check|schema|publish`` — the guard policy documents."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from deployguard.aws import clients
from deployguard.aws.errors import aws_call
from deployguard.errors import DeployGuardError
from deployguard.policy import InvalidPolicyError, Policy, inline_payloads, load_policy, policy_json_schema
from deployguard.stages import Stage
from deployguard_cli.exit_codes import EXIT_ERROR, EXIT_FINDINGS, EXIT_OK

DEFAULT_PARAMETER = "/deployguard/{stage}/policy"


def register(subparsers: Any) -> None:
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
    """Load a policy file and inline its payload files (paths relative to the policy file)."""
    try:
        text = path.read_text()
    except OSError as exc:
        raise DeployGuardError(f"cannot read policy {path}: {exc.strerror}") from exc
    policy = load_policy(text, str(path), stage=stage)
    return inline_payloads(policy, path.parent)


def run_check(args: argparse.Namespace) -> int:
    report: list[dict[str, Any]] = []
    for path in args.files:
        try:
            read_policy(path)
        except InvalidPolicyError as exc:
            report.append({"file": str(path), "valid": False, "errors": [i.model_dump() for i in exc.issues]})
        except DeployGuardError as exc:
            report.append(
                {
                    "file": str(path),
                    "valid": False,
                    "errors": [{"path": "(file)", "problem": str(exc), "fix": ""}],
                }
            )
        else:
            report.append({"file": str(path), "valid": True, "errors": []})
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        for entry in report:
            if entry["valid"]:
                print(f"{entry['file']}: ok")
                continue
            print(f"{entry['file']}: {len(entry['errors'])} error(s)")
            for error in entry["errors"]:
                fix = f" — fix: {error['fix']}" if error["fix"] else ""
                print(f"  {error['path']}: {error['problem']}{fix}")
    return EXIT_OK if all(e["valid"] for e in report) else EXIT_FINDINGS


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
    document = policy.model_dump_json(exclude_unset=True)
    with aws_call("PutParameter"):
        clients.ssm().put_parameter(
            Name=name, Value=document, Type="String", Overwrite=True, Tier="Intelligent-Tiering"
        )
    print(f"published the {stage.value} policy ({len(document)} bytes) to SSM parameter {name}")
    return EXIT_OK
