"""Offline IAM lint of every policy statement of the transformed template, with parliament.

    .tools/parliament/bin/python -m tests.tools.iam_lint .aws-sam/transformed-template.json

``make iam-lint`` runs it (the ``template`` stage of ``make test``), in parliament's own pinned
venv (requirements/tools/parliament.txt); parliament's IAM data (actions, resource types, access
levels from the Service Authorization Reference) ships in the package, so nothing goes online.

What is linted: every identity policy (a role's inline policies, ``AWS::IAM::Policy`` /
``ManagedPolicy``) and every resource-based policy (any resource with a ``PolicyDocument``: topic
and queue policies), once per stage and per setting of the guarded-name pattern parameters (empty:
``*-<stage>-*``; set: a custom pattern), each resolved first to the concrete ARNs an account would
see (``tests.tools.resolve.Resolver``: ``Fn::Sub``, ``Ref``, ``Fn::GetAtt … Arn``, ``Fn::If``), so
parliament judges ARNs rather than CloudFormation intrinsics. Trust policies
(``AssumeRolePolicyDocument``) grant no action on a resource and are out of parliament's scope.

What fails: every parliament finding (its own checks and its community auditors: unknown action or
prefix, a resource that matches no resource type of the action, ``Resource: "*"`` on an action that
supports resource-level permissions, malformed ARNs and conditions, …) that is not in
``SUPPRESSED`` below, where each suppression says why; a suppression that no longer matches
anything (stale); and a **wildcard write** — an Allow of an action whose access level is not Read
or List on ``*`` or on an ARN whose resource part is all wildcards (``function:*``), unless the
action supports no resource-level permissions at all (then ``*`` is the only possible resource), or
the statement is bounded by a tag instead: a ``StringEquals`` on ``aws:ResourceTag/<key>`` and every
resource type the action takes supports that condition key (attribute-based access: the guard
roles' Lambda actions on ``function:*`` tagged ``deployguard:stage=<stage>``).

Before the template, a canary policy with one known defect per check must be caught, so a broken
install or an empty data file cannot pass silently.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.tools.resolve import ACCOUNT, PARTITION, REGION, Resolver

STAGES = ("dev", "staging", "prod")
# Each setting of the template's pattern parameters: empty (the default, *-<stage>-*) and set.
PARAMETER_VARIANTS: dict[str, dict[str, str]] = {
    "default patterns": {},
    "custom patterns": {"GuardedFunctionPattern": "payments-*", "GuardedApplicationPattern": "payments-*"},
}
READ_LEVELS = {"Read", "List"}

# (parliament issue, action) → why the finding is not a defect. Each must still match something
# (a stale suppression fails the lint), and docs/deploying.md#iam-lint lists them.
SUPPRESSED: dict[tuple[str, str], str] = {}
# NOTE: none today. PutLifecycleEventHookExecutionStatus and StopDeployment used to be scoped to the
# stage's deployment groups by name (suppressing parliament's RESOURCE_MISMATCH); they are now on
# Resource "*", as the Service Authorization Reference says (no resource type): a hook must be able
# to report a status for any lifecycle event it is invoked for, whatever the application's name.

SCOPE_TAG_KEY = "aws:resourcetag/"  # condition keys are case-insensitive


@dataclass(frozen=True)
class Policy:
    """One resolved policy document and where it comes from."""

    where: str  # e.g. "dev, default patterns: PreTrafficHookRole/pre-traffic-hook"
    document: dict[str, Any]


@dataclass(frozen=True)
class Finding:
    where: str
    issue: str
    detail: str


def _documents(name: str, resource: dict[str, Any]) -> Iterator[tuple[str, Any]]:
    properties = resource.get("Properties", {})
    if resource["Type"] == "AWS::IAM::Role":
        for policy in properties.get("Policies", []):
            yield f"{name}/{policy.get('PolicyName', '?')}", policy["PolicyDocument"]
    elif "PolicyDocument" in properties:
        yield name, properties["PolicyDocument"]


def policies(template: dict[str, Any]) -> list[Policy]:
    """Every identity and resource-based policy of the template, resolved per stage and per
    pattern-parameter setting; a document that resolves the same in two variants is kept once."""
    found: list[Policy] = []
    seen: set[str] = set()
    for stage in STAGES:
        for variant, parameters in PARAMETER_VARIANTS.items():
            resolve = Resolver(stage, template, parameters)
            for name, resource in template["Resources"].items():
                for label, document in _documents(name, resource):
                    resolved = resolve(document)
                    key = json.dumps(resolved, sort_keys=True)
                    if key not in seen:
                        seen.add(key)
                        found.append(Policy(f"{stage}, {variant}: {label}", resolved))
    return found


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def unbounded(arn: str) -> bool:
    """``*``, or an ARN for every resource of its type: a wildcard region or account, or a
    resource part that is only wildcards after its type (``function:*``, ``table/*``)."""
    if arn == "*":
        return True
    parts = arn.split(":", 5)
    if len(parts) < 6:
        return False
    _, _, _, region, account, rest = parts
    if "*" in region or "*" in account:
        return True
    name = re.split(r"[:/]", rest, maxsplit=1)[1] if re.search(r"[:/]", rest) else rest
    return re.fullmatch(r"[*?:/]*", name) is not None


def resource_tag_conditions(statement: dict[str, Any]) -> list[str]:
    """The ``aws:ResourceTag/<key>`` keys the statement requires a value of (``StringEquals``)."""
    equals = statement.get("Condition", {}).get("StringEquals", {})
    return [key for key, value in equals.items() if key.lower().startswith(SCOPE_TAG_KEY) and value]


def tag_bounds(service: str, resource_type: str) -> bool:
    """The service's ``resource_type`` (``function*``) supports the aws:ResourceTag condition key."""
    from parliament import iam_definition

    name = resource_type.rstrip("*")
    for definition in iam_definition:
        if definition["prefix"] != service:
            continue
        for resource in definition["resources"]:
            if resource["resource"] == name:
                return any(k.lower().startswith(SCOPE_TAG_KEY) for k in resource.get("condition_keys", []))
    return False


def wildcard_writes(policy: Policy) -> list[Finding]:
    """Allowed non-read actions on unbounded resources, where the action could be scoped."""
    from parliament import expand_action
    from parliament.statement import get_privilege_info

    findings = []
    for statement in _as_list(policy.document.get("Statement", [])):
        if statement.get("Effect") != "Allow" or "Action" not in statement:
            continue
        wide = [r for r in _as_list(statement.get("Resource", [])) if unbounded(str(r))]
        if not wide:
            continue
        tag_keys = resource_tag_conditions(statement)
        for action in _as_list(statement["Action"]):
            for expanded in expand_action(action, raise_exceptions=False):
                info = get_privilege_info(expanded["service"], expanded["action"])
                types = [t["resource_type"] for t in info["resource_types"] if t["resource_type"]]
                if info["access_level"] in READ_LEVELS or not types:
                    continue
                if tag_keys and all(tag_bounds(expanded["service"], t) for t in types):
                    continue
                name = f"{expanded['service']}:{expanded['action']}"
                findings.append(
                    Finding(
                        policy.where,
                        "WILDCARD_WRITE",
                        f"{statement.get('Sid', '(no Sid)')}: {name} ({info['access_level']}) on "
                        f"{', '.join(map(str, wide))}; it supports {', '.join(types)}: scope it",
                    )
                )
    return findings


def _detail_actions(detail: Any) -> list[str] | None:
    """The actions a RESOURCE_MISMATCH names, or None for findings of another shape."""
    if isinstance(detail, list) and all(isinstance(d, dict) and "action" in d for d in detail):
        return [str(d["action"]) for d in detail]
    return None


def analyse(policy: Policy, used: set[tuple[str, str]]) -> list[Finding]:
    """parliament's findings (community auditors included), less the suppressed ones, plus ours."""
    from parliament import analyze_policy_string

    analysed = analyze_policy_string(json.dumps(policy.document), include_community_auditors=True)
    findings = []
    for finding in analysed.findings:
        actions = _detail_actions(finding.detail)
        if actions is not None:
            kept = [a for a in actions if (finding.issue, a) not in SUPPRESSED]
            used.update((finding.issue, a) for a in actions if (finding.issue, a) in SUPPRESSED)
            if not kept:
                continue
            detail = ", ".join(kept)
        else:
            detail = json.dumps(finding.detail, default=str)[:300] if finding.detail else ""
        location = finding.location.get("string", "") if isinstance(finding.location, dict) else ""
        findings.append(Finding(policy.where, finding.issue, f"{detail} {location}".strip()))
    return findings + wildcard_writes(policy)


def _arn(service: str, resource: str) -> str:
    return f"arn:{PARTITION}:{service}:{REGION}:{ACCOUNT}:{resource}"


# One defect per check; each must be reported, or the linter is not working.
CANARY: list[tuple[str, dict[str, Any]]] = [
    (
        "UNKNOWN_ACTION",
        {"Effect": "Allow", "Action": "lambda:InvokeFunktion", "Resource": _arn("lambda", "function:x")},
    ),
    ("UNKNOWN_PREFIX", {"Effect": "Allow", "Action": "lambada:InvokeFunction", "Resource": "*"}),
    ("RESOURCE_MISMATCH", {"Effect": "Allow", "Action": "sns:Publish", "Resource": _arn("sqs", "queue-x")}),
    ("RESOURCE_STAR", {"Effect": "Allow", "Action": "ssm:GetParameter", "Resource": "*"}),
    (
        "WILDCARD_WRITE",
        {"Effect": "Allow", "Action": "lambda:UpdateAlias", "Resource": _arn("lambda", "function:*")},
    ),
    (  # a tag condition bounds nothing where the resource type has no aws:ResourceTag (S3 objects)
        "WILDCARD_WRITE",
        {
            "Effect": "Allow",
            "Action": "s3:PutObject",
            "Resource": "arn:aws:s3:::*",
            "Condition": {"StringEquals": {"aws:ResourceTag/deployguard:stage": "prod"}},
        },
    ),
]


def canary_misses() -> list[str]:
    missed = []
    for issue, statement in CANARY:
        policy = Policy(f"canary {issue}", {"Version": "2012-10-17", "Statement": [statement]})
        if issue not in {f.issue for f in analyse(policy, set())}:
            missed.append(f"{issue} not reported for {json.dumps(statement)}")
    return missed


def lint(template: dict[str, Any]) -> tuple[list[Policy], list[Finding], set[tuple[str, str]]]:
    found = policies(template)
    used: set[tuple[str, str]] = set()
    findings = [finding for policy in found for finding in analyse(policy, used)]
    return found, findings, used


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("template", type=Path, help="the transformed template (make transform writes it)")
    args = parser.parse_args(argv)
    try:
        import parliament
    except ImportError:
        print("iam-lint: parliament is not installed here; run it as `make iam-lint`", file=sys.stderr)
        return 2
    missed = canary_misses()
    if missed:
        print("iam-lint: the linter itself is broken (canary not caught):", file=sys.stderr)
        for line in missed:
            print(f"  - {line}", file=sys.stderr)
        return 2
    template = json.loads(args.template.read_text())
    found, findings, used = lint(template)
    statements = sum(len(_as_list(p.document.get("Statement", []))) for p in found)
    print(
        f"iam-lint: parliament {parliament.__version__} (offline), {len(found)} policies, {statements} "
        f"statements ({len(STAGES)} stages x {len(PARAMETER_VARIANTS)} parameter settings, resolved to ARNs)"
    )
    for key in sorted(used):
        print(f"  suppressed {key[0]} for {key[1]}: {SUPPRESSED[key]}")
    stale = sorted(set(SUPPRESSED) - used)
    problems = [f"{f.where}: {f.issue} {f.detail}" for f in findings]
    problems += [f"stale suppression {issue} for {action}: nothing matches it now" for issue, action in stale]
    if problems:
        print("iam-lint FAILED:", file=sys.stderr)
        for problem in problems:
            print(f"  - {problem}", file=sys.stderr)
        return 1
    print("iam-lint passed: no unknown action, every resource matches its action, no wildcard write.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
