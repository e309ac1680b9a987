"""``deployguard init``'s logic: a starting application policy from a SAM template.

From the template as written (:mod:`deployguard_cli.templates`): one entry per function with an
enabled DeploymentPreference, its environment variables required, secret-named variables noted,
the DeploymentPreference's alarms selected by name, and one smoke case per ``events/*.json``. What
cannot be read from the template (an intrinsic name, an alarm without ``AlarmName``) becomes a
note, never a guess that would fail a deployment.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from deployguard.config_check import plaintext_secret_findings
from deployguard.secrets import is_secret_name
from deployguard_cli.templates import Template, TemplateFunction, literal

MAX_SMOKE_EVENTS = 20
"""Smoke cases written per function from events/: the rest are noted (a smoke case is an invocation
of the new version at every deployment)."""

_CASE_NAME = re.compile(r"[^A-Za-z0-9_.-]+")
_SUB_VARIABLE = re.compile(r"\$\{[^}]*\}")

SMOKE_PLACEHOLDER = """\
# No smoke case was written for {functions}: there is no events/*.json next to the template
# (the folder `sam local invoke -e` reads). Add one per function, e.g.:
#       smoke:
#         - name: ping
#           payload: {{}}
#           expect: [{{path: $.statusCode, equals: 200}}]
"""


@dataclass
class FunctionSummary:
    key: str
    logical_id: str
    match: str | None
    required: list[str]
    secret_named: list[str]
    alarms: list[str]
    smoke: list[str]


@dataclass
class StarterPolicy:
    """The document ``init`` writes, what it found, and what it could not decide (notes)."""

    document: dict[str, Any]
    functions: list[FunctionSummary]
    notes: list[str] = field(default_factory=list)

    def render(self, template: Template) -> str:
        """The policy as YAML, with a header saying where it came from and what to check."""
        header = [
            f"# DeployGuard application policy written by `deployguard init` from {template.path.name}.",
            "# A starting point: review each entry (docs/policy.md), then",
            "#   deployguard policy check <this file>",
        ]
        for note in self.notes:
            first, *rest = _wrap(note)
            header += [f"# NOTE: {first}", *(f"#       {line}" for line in rest)]
        without_smoke = [f.key for f in self.functions if not f.smoke]
        text = "\n".join(header) + "\n"
        if without_smoke:
            text += SMOKE_PLACEHOLDER.format(functions=", ".join(without_smoke))
        return text + yaml.safe_dump(self.document, sort_keys=False, allow_unicode=True, width=100)


def starter_policy(template: Template, *, stage: str, app: str, policy_folder: Path) -> StarterPolicy:
    """The starting policy of ``template``'s guarded functions for ``stage``; payload files are
    named relative to ``policy_folder`` (where the policy is written) when they lie below it."""
    entries: dict[str, Any] = {}
    summaries: list[FunctionSummary] = []
    notes: list[str] = []
    guarded = [f for f in template.functions if f.guarded]
    events = _events(template.folder)
    unmatched = set(events)
    for function in guarded:
        key, match, note = _key(function)
        notes.extend([note] if note else [])
        entry: dict[str, Any] = {} if match is None else {"match": match}
        config, required, secret_named = _config(function, notes)
        entry["config"] = config
        alarm_names = _alarm_names(template, function, notes)
        if alarm_names:
            entry["alarms"] = {"select": {"names": alarm_names}}
        mine = _events_of(function, events, single=len(guarded) == 1)
        unmatched -= set(mine)
        smoke = _smoke_cases(mine, policy_folder, function, notes)
        if smoke:
            entry["smoke"] = smoke
        entries[key] = entry
        summaries.append(
            FunctionSummary(
                key,
                function.logical_id,
                match,
                required,
                secret_named,
                alarm_names,
                [c["name"] for c in smoke],
            )
        )
    if unmatched:
        notes.append(
            "events not matched to a function (name the file after the function's logical id): "
            + ", ".join(sorted(p.name for p in unmatched))
        )
    document: dict[str, Any] = {"version": 1, "stage": stage, "application": app, "functions": entries}
    return StarterPolicy(document=document, functions=summaries, notes=notes)


def _key(function: TemplateFunction) -> tuple[str, str | None, str | None]:
    """The policy key, its ``match`` glob (None: the key is the name) and a note."""
    name = function.properties.get("FunctionName")
    text = literal(name)
    if text is not None:
        return text, None, None
    if isinstance(name, Mapping) and isinstance(name.get("Fn::Sub"), str):
        pattern = _SUB_VARIABLE.sub("*", name["Fn::Sub"])
        return function.logical_id, pattern, None
    pattern = f"*-{function.logical_id}-*"
    why = "has no FunctionName" if name is None else "has a FunctionName computed at deploy time"
    return (
        function.logical_id,
        pattern,
        f"{function.logical_id} {why}: matched as '{pattern}' (CloudFormation names it "
        "<stack>-<logical id>-<suffix>); give it a FunctionName or change `match` if that is not its name",
    )


def _config(function: TemplateFunction, notes: list[str]) -> tuple[dict[str, Any], list[str], list[str]]:
    environment = function.environment
    required = sorted(str(name) for name, value in environment.items() if literal(value) != "")
    secret_named = sorted(str(name) for name in environment if is_secret_name(str(name)))
    literals = {str(k): v for k, v in ((k, literal(v)) for k, v in environment.items()) if v}
    for finding in plaintext_secret_findings(literals):  # what the pre-traffic hook would fail
        notes.append(f"{function.logical_id}: {finding.message} ({finding.code}, plaintext_secrets: error)")
    for name in (n for n in secret_named if n not in literals):
        notes.append(
            f"{function.logical_id}: {name} is named like a secret and set at deploy time: a deployment "
            "fails (plaintext_secrets: error) if the value it gets is the secret itself rather than an "
            "SSM parameter name or a Secrets Manager ARN read at run time"
        )
    stage_value = environment.get("STAGE")
    config: dict[str, Any] = {
        # NOTE: explicit, whatever the stage's default: a variable that equals the stage is checked
        # only when the template sets one
        "stage_variable": "STAGE" if stage_value is not None and literal(stage_value) is None else None,
        "required": required,
        "plaintext_secrets": "error",
    }
    return config, required, secret_named


def _alarm_names(template: Template, function: TemplateFunction, notes: list[str]) -> list[str]:
    preference = function.deployment_preference or {}
    alarms = preference.get("Alarms")
    names: list[str] = []
    for alarm in alarms if isinstance(alarms, list) else []:
        text = literal(alarm)
        logical_id = alarm.get("Ref") if isinstance(alarm, Mapping) else None
        resource = template.resource(logical_id)
        properties = resource.get("Properties") if resource is not None else None
        alarm_name = properties.get("AlarmName") if isinstance(properties, Mapping) else None
        if text is not None:
            names.append(text)
        elif literal(alarm_name) is not None:
            names.append(str(literal(alarm_name)))
        else:
            what = f"alarm {logical_id}" if logical_id else "an alarm of its DeploymentPreference"
            notes.append(
                f"{function.logical_id}: {what} has no fixed AlarmName (CloudFormation generates it): "
                "give it an AlarmName and add it to alarms.select.names, or tag it and select by tags"
            )
    if alarms is not None and not isinstance(alarms, list):
        notes.append(
            f"{function.logical_id}: its DeploymentPreference.Alarms is computed; select them by hand"
        )
    return names


def _events(folder: Path) -> list[Path]:
    events = folder / "events"
    return sorted(events.glob("*.json")) if events.is_dir() else []


def _events_of(function: TemplateFunction, events: list[Path], *, single: bool) -> list[Path]:
    """The events named after the function (its logical id or name); all of them for a single function."""
    names = {function.logical_id.lower()}
    name = literal(function.properties.get("FunctionName"))
    names |= {name.lower()} if name else set()
    mine = [e for e in events if any(n in e.stem.lower() for n in names)]
    return mine or (events if single else [])


def _smoke_cases(
    events: list[Path], policy_folder: Path, function: TemplateFunction, notes: list[str]
) -> list[dict[str, Any]]:
    cases: list[dict[str, Any]] = []
    for event in events[:MAX_SMOKE_EVENTS]:
        name = _CASE_NAME.sub("-", event.stem).strip("-") or "event"
        if name in {c["name"] for c in cases}:
            name = f"{name}-{len(cases) + 1}"
        try:
            payload = json.loads(event.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            notes.append(f"{event.name} is not a JSON event ({exc}): no smoke case from it")
            continue
        case: dict[str, Any] = {"name": name}
        resolved = event.resolve()
        if resolved.is_relative_to(policy_folder.resolve()):
            case["payload_file"] = resolved.relative_to(policy_folder.resolve()).as_posix()
        else:
            case["payload"] = payload
        cases.append(case)
    if len(events) > MAX_SMOKE_EVENTS:
        notes.append(f"{function.logical_id}: only the first {MAX_SMOKE_EVENTS} events became smoke cases")
    if cases:
        notes.append(
            f"{function.logical_id}: its smoke cases pass when the function answers without an error; "
            "add `expect` assertions on the answer (docs/policy.md)"
        )
    return cases


def _wrap(text: str, width: int = 92) -> list[str]:
    lines: list[str] = []
    line = ""
    for word in text.split():
        if line and len(line) + 1 + len(word) > width:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}" if line else word
    return [*lines, line] if line else lines
