"""``deployguard policy check|schema|publish|show`` — the guard policy documents.

A stage's policy is a baseline (the platform team's: defaults, floors, ``unguarded``) and one
document per application (its team's functions), in the stage's policy bucket
(:mod:`deployguard_cli.policy_store`). ``policy check`` also reads a whole-stage policy file (the
format ``deployguard check --policy`` takes).

``policy check`` exits 0 when every file is valid, 1 when one breaks the rules (its errors are
listed), 2 when one cannot be checked at all: missing, not UTF-8 text, not JSON or YAML, or over a
limit of :mod:`deployguard.documents`. With several files the highest applies.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Literal, TypedDict

from deployguard.errors import DeployGuardError
from deployguard.policy import (
    ApplicationPolicy,
    Baseline,
    InvalidPolicyError,
    Policy,
    UnreadablePolicyError,
    application_document,
    effective_policy,
    inline_document_payloads,
    inline_payloads,
    load_baseline,
    load_policy,
    parse_document,
    policy_json_schema,
    read_policy_file,
    valid_application_name,
    value_origins,
)
from deployguard.stages import Stage, application_key, baseline_key
from deployguard_cli import adapters
from deployguard_cli.exit_codes import EXIT_ERROR, EXIT_FINDINGS, EXIT_OK
from deployguard_cli.policy_store import (
    BUCKET_VARIABLE,
    PublishError,
    application_names,
    encode,
    put_document,
    read_document,
    resolve_bucket,
)

DocumentKind = Literal["policy", "baseline", "application"]


class IssueDocument(TypedDict):
    path: str
    problem: str
    fix: str


class FileReport(TypedDict):
    file: str
    kind: str
    valid: bool
    readable: bool
    error_count: int
    errors: list[IssueDocument]


BUCKET_HELP = (
    f"the stage's policy bucket (default: ${BUCKET_VARIABLE}, else the name template.yaml gives it: "
    "deployguard-<stage>-policies-<account>-<region>, the stack's output PolicyBucketName)"
)


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "policy", help="check, publish, show, or print the schema of a guard policy"
    )
    commands = parser.add_subparsers(dest="policy_command", required=True, metavar="ACTION")

    check = commands.add_parser(
        "check",
        help="validate baseline, application or whole-stage policy files; every error with its path and fix",
    )
    check.add_argument("files", nargs="+", type=Path, metavar="FILE")
    check.add_argument(
        "--baseline",
        type=Path,
        metavar="BASELINE",
        help="the baseline application documents are checked against (default: ../baseline.yaml "
        "next to an apps/ folder, else built-in defaults and no floors)",
    )
    check.add_argument("--json", action="store_true", help="machine-readable output")
    check.set_defaults(run=run_check)

    schema = commands.add_parser("schema", help="print the JSON Schema (for editors)")
    schema.add_argument(
        "--document",
        choices=["policy", "baseline", "application"],
        default="policy",
        help="which document's schema (default: a whole-stage policy)",
    )
    schema.set_defaults(run=run_schema)

    publish = commands.add_parser(
        "publish", help="store a stage's baseline or an application's policy where the hooks read it"
    )
    publish.add_argument("file", type=Path, metavar="FILE")
    publish.add_argument("--stage", required=True, choices=[s.value for s in Stage])
    which = publish.add_mutually_exclusive_group()
    which.add_argument("--app", metavar="APPLICATION", help="publish FILE as this application's document")
    which.add_argument("--baseline", action="store_true", help="publish FILE as the stage's baseline")
    publish.add_argument("--bucket", help=BUCKET_HELP)
    publish.set_defaults(run=run_publish)

    show = commands.add_parser(
        "show", help="print an application's effective policy and where each value comes from"
    )
    show.add_argument("--stage", required=True, choices=[s.value for s in Stage])
    show.add_argument("--app", required=True, metavar="APPLICATION")
    show.add_argument("--bucket", help=BUCKET_HELP)
    show.add_argument("--json", action="store_true", help="machine-readable output")
    show.set_defaults(run=run_show)


def read_policy(path: Path, *, stage: Stage | None = None) -> Policy:
    """Load a whole-stage policy file and inline its payload files (relative to the policy file,
    in its folder).

    UnreadablePolicyError: the file cannot be read or parsed; InvalidPolicyError: it breaks the rules.
    """
    policy = load_policy(read_policy_file(path), str(path), stage=stage)
    return inline_payloads(policy, path.parent, source=str(path))


def document_kind(document: Any) -> DocumentKind:
    """What a parsed policy file is: an application's document names its ``application``; a
    baseline has ``defaults`` or ``floors``, or no ``functions``; anything else a whole-stage policy."""
    if isinstance(document, dict):
        if "application" in document:
            return "application"
        if "defaults" in document or "floors" in document or "functions" not in document:
            return "baseline"
    return "policy"


def read_baseline(path: Path, *, stage: Stage | None = None) -> Baseline:
    return load_baseline(read_policy_file(path), str(path), stage=stage)


def sibling_baseline(path: Path) -> Path | None:
    """``policies/<stage>/baseline.yaml`` for ``policies/<stage>/apps/<app>.yaml``, when it exists."""
    if path.parent.name != "apps":
        return None
    for name in ("baseline.yaml", "baseline.yml", "baseline.json"):
        candidate = path.parent.parent / name
        if candidate.is_file():
            return candidate
    return None


def read_application(
    path: Path, baseline: Baseline | None, *, stage: Stage | None = None, application: str | None = None
) -> tuple[dict[str, Any], Policy]:
    """An application's document (payload files inlined) and its effective policy under
    ``baseline`` (None: built-in defaults and no floors, in the document's own stage)."""
    source = str(path)
    document = inline_document_payloads(
        application_document(read_policy_file(path), source), path.parent, source=source
    )
    if baseline is None:
        try:
            baseline = Baseline(stage=Stage(str(stage or document.get("stage"))))
        except ValueError:
            baseline = Baseline(stage=stage or Stage.DEV)  # the document's stage is invalid: reported below
    return document, effective_policy(baseline, document, source, application=application, stage=stage)


def read_stage_policy(path: Path, *, stage: Stage, baseline_path: Path | None = None) -> Policy:
    """The policy ``deployguard check --policy FILE`` judges by: a whole-stage policy file, or an
    application's document under its baseline (``baseline_path``, else the one next to its folder)."""
    kind = document_kind(parse_document(read_policy_file(path), str(path)))
    if kind == "application":
        found = baseline_path or sibling_baseline(path)
        baseline = read_baseline(found, stage=stage) if found else None
        return read_application(path, baseline, stage=stage)[1]
    if kind == "baseline":
        raise InvalidPolicyError(
            str(path),
            [
                _issue(
                    "(document)",
                    "this is a baseline: it names no function",
                    "give an application's document (or a whole-stage policy)",
                )
            ],
        )
    return read_policy(path, stage=stage)


def _issue(path: str, problem: str, fix: str) -> Any:
    from deployguard.policy import PolicyIssue  # noqa: PLC0415

    return PolicyIssue(path=path, problem=problem, fix=fix)


def _kind_of(path: Path) -> DocumentKind:
    return document_kind(parse_document(read_policy_file(path), str(path)))


def _check_file(path: Path, baseline_path: Path | None, kind: DocumentKind) -> None:
    if kind == "application":
        found = baseline_path or sibling_baseline(path)
        read_application(path, read_baseline(found) if found else None)
    elif kind == "baseline":
        read_baseline(path)
    else:
        read_policy(path)


def run_check(args: argparse.Namespace) -> int:
    report: list[FileReport] = []
    for path in args.files:
        kind = "unknown"
        try:
            kind = _kind_of(path)
            _check_file(path, args.baseline, kind)
        except InvalidPolicyError as exc:  # UnreadablePolicyError included: readable tells them apart
            issues = [IssueDocument(path=i.path, problem=i.problem, fix=i.fix) for i in exc.issues]
            readable = not isinstance(exc, UnreadablePolicyError)
            report.append(
                {
                    "file": str(path),
                    "kind": kind,
                    "valid": False,
                    "readable": readable,
                    "error_count": exc.total,
                    "errors": issues,
                }
            )
        else:
            report.append(
                {
                    "file": str(path),
                    "kind": kind,
                    "valid": True,
                    "readable": True,
                    "error_count": 0,
                    "errors": [],
                }
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
    models: dict[str, type[Baseline] | type[ApplicationPolicy]] = {
        "baseline": Baseline,
        "application": ApplicationPolicy,
    }
    model = models.get(args.document)
    schema = policy_json_schema() if model is None else model.model_json_schema(by_alias=True)
    if model is not None:
        schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
        schema["title"] = f"DeployGuard {args.document} policy"
    json.dump(schema, sys.stdout, indent=2)
    print()
    return EXIT_OK


NO_KIND = (
    "say what FILE is: --baseline (the stage's baseline: defaults, floors, unguarded) or --app "
    "APPLICATION (one application's functions). The policy store replaced the single SSM parameter "
    "/deployguard/<stage>/policy: split a whole-stage policy into a baseline and one document per "
    "application (docs/policy.md#moving-from-the-ssm-parameter)"
)


def run_publish(args: argparse.Namespace) -> int:
    stage = Stage(args.stage)
    if not args.baseline and not args.app:
        print(f"deployguard: {NO_KIND}", file=sys.stderr)
        return EXIT_ERROR
    try:
        bucket = resolve_bucket(args.bucket, stage)
        s3 = adapters.s3()
        if args.baseline:
            message = publish_baseline(s3, bucket, stage, args.file)
        else:
            message = publish_application(s3, bucket, stage, args.app, args.file)
    except DeployGuardError as exc:  # InvalidPolicyError, PublishError, AwsCallError
        print(f"deployguard: {exc}", file=sys.stderr)
        return EXIT_ERROR
    print(message)
    return EXIT_OK


def _etag(s3: Any, bucket: str, key: str) -> str | None:
    found = read_document(s3, bucket, key)
    return None if found is None else found[0]


def current_baseline(s3: Any, bucket: str, stage: Stage) -> Baseline:
    key = baseline_key(stage)
    found = read_document(s3, bucket, key)
    if found is None:
        raise PublishError(
            f"the {stage.value} baseline s3://{bucket}/{key} is not published: publish it first with "
            f"`deployguard policy publish --stage {stage.value} --baseline FILE`"
        )
    return load_baseline(found[1], f"s3://{bucket}/{key}", stage=stage, json_only=True)


def publish_application(s3: Any, bucket: str, stage: Stage, application: str, path: Path) -> str:
    """Validate ``path`` as ``application``'s document under the stage's current baseline (floors
    checked), then store it only if nobody changed it since it was read. The line to print."""
    if not valid_application_name(application):
        raise PublishError(
            f"--app {application[:64]!r} is not an application name: lowercase letters, digits, '.', '_', '-' "
            "(at most 63), as its functions' deployguard:app tag says"
        )
    key = application_key(stage, application)
    etag = _etag(s3, bucket, key)  # NOTE: read first: a publish after this one is a conflict
    document, _ = read_application(
        path, current_baseline(s3, bucket, stage), stage=stage, application=application
    )
    data = encode(document, key)
    put_document(s3, bucket, key, data, etag=etag)
    return f"published application {application}'s {stage.value} policy ({len(data):,} bytes) to s3://{bucket}/{key}"


def publish_baseline(s3: Any, bucket: str, stage: Stage, path: Path) -> str:
    """Validate and store the stage's baseline (conditionally, as above). Applications whose stored
    documents the new floors reject are listed as warnings: their deployments fail until fixed."""
    key = baseline_key(stage)
    etag = _etag(s3, bucket, key)
    baseline = read_baseline(path, stage=stage)
    data = encode(baseline.model_dump(mode="json", by_alias=True, exclude_unset=True), key)
    put_document(s3, bucket, key, data, etag=etag)
    for application in application_names(s3, bucket, stage):
        app_key = application_key(stage, application)
        found = read_document(s3, bucket, app_key)
        if found is None:
            continue
        source = f"s3://{bucket}/{app_key}"
        try:
            effective_policy(
                baseline,
                application_document(found[1], source, json_only=True),
                source,
                application=application,
            )
        except InvalidPolicyError as exc:
            print(
                f"deployguard: warning: application {application} is invalid under the new baseline, and its "
                f"deployments fail until it is fixed: {exc}",
                file=sys.stderr,
            )
    return f"published the {stage.value} baseline ({len(data):,} bytes) to s3://{bucket}/{key}"


def run_show(args: argparse.Namespace) -> int:
    stage = Stage(args.stage)
    try:
        bucket = resolve_bucket(args.bucket, stage)
        shown = effective_view(adapters.s3(), bucket, stage, args.app)
    except DeployGuardError as exc:
        print(f"deployguard: {exc}", file=sys.stderr)
        return EXIT_ERROR
    if args.json:
        print(json.dumps(shown, indent=2))
        return EXIT_OK
    print(f"{stage.value} policy of application {args.app} ({shown['source']})")
    for item in shown["values"]:
        print(f"  {item['path']}: {json.dumps(item['value'])}  ({item['origin']})")
    if shown["floors"]:
        print("floors (the baseline's; no application may weaken them):")
        for path, value in shown["floors"].items():
            print(f"  {path}: {json.dumps(value)}")
    return EXIT_OK


def effective_view(s3: Any, bucket: str, stage: Stage, application: str) -> dict[str, Any]:
    """The effective policy of ``application`` as ``policy show`` prints it: every value with its
    path and origin (``baseline`` for the stage-wide settings; for function entries ``application``,
    ``baseline default`` or ``built-in default``), and the floors."""
    baseline = current_baseline(s3, bucket, stage)
    key = application_key(stage, application)
    found = read_document(s3, bucket, key) if valid_application_name(application) else None
    if found is None:
        raise PublishError(
            f"application {application} has no {stage.value} policy (s3://{bucket}/{key}): publish it with "
            f"`deployguard policy publish --stage {stage.value} --app {application} FILE`"
        )
    source = f"s3://{bucket}/{key}"
    document = application_document(found[1], source, json_only=True)
    policy = effective_policy(baseline, document, source, application=application, stage=stage)
    origins = value_origins(baseline, document, policy)
    values: list[dict[str, Any]] = [
        {"path": "unguarded", "value": policy.unguarded, "origin": "baseline"},
        {"path": "rollback.recent_minutes", "value": policy.rollback.recent_minutes, "origin": "baseline"},
    ]
    dumped = policy.model_dump(mode="json")
    for key, paths in origins.items():
        for path, origin in paths.items():
            value = dumped["functions"][key]
            for part in path.split("."):
                value = value[part]
            values.append({"path": f"functions.{key}.{path}", "value": value, "origin": origin})
    return {
        "stage": stage.value,
        "application": application,
        "source": source,
        "values": values,
        "floors": baseline.floors.model_dump(mode="json", by_alias=True, exclude_none=True),
        "policy": dumped,
    }
