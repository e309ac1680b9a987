"""``deployguard lint``'s rules: is a SAM template wired so DeployGuard guards its deployments?

Offline, on the template as written (:mod:`deployguard_cli.templates`). Each finding has a stable
code (``LNT0xx``, documented in docs/lint.md), a level, the resource and line, and the fix.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass
from datetime import date
from typing import Any, Literal

from deployguard.config_check import is_deprecated, plaintext_secret_findings
from deployguard.runtimes import RUNTIMES
from deployguard.stages import APP_TAG, STAGE_TAG, Stage
from deployguard_cli.templates import (
    Template,
    TemplateFunction,
    is_intrinsic,
    line_of,
    literal,
    sub_variables,
)

LintLevel = Literal["error", "warning"]

# What DeployGuard's stack exports and names (template.yaml Outputs; tests/unit/test_onboarding.py
# checks these against it): hooks are attached by importing <stack>-PreTrafficHookName (or the ARN).
HOOK_EXPORT_SUFFIXES = {
    "PreTraffic": ("-PreTrafficHookName", "-PreTrafficHookArn"),
    "PostTraffic": ("-PostTrafficHookName", "-PostTrafficHookArn"),
}
HOOK_FUNCTION_PREFIX = "CodeDeployHook_deployguard-"
HOOK_FUNCTION_SUFFIXES = {"PreTraffic": "-pre-traffic", "PostTraffic": "-post-traffic"}
MAX_DEPLOYMENT_GROUP_ALARMS = 10
"""CodeDeploy: alarms per deployment group (AlarmConfiguration.alarms, CodeDeploy quotas)."""

RULES: dict[str, str] = {
    "LNT001": "DeploymentPreference without AutoPublishAlias",
    "LNT002": "no function is deployed through CodeDeploy",
    "LNT003": "no DeployGuard pre-traffic hook",
    "LNT004": "no DeployGuard post-traffic hook",
    "LNT005": "the hook is the application's own (one hook per lifecycle event)",
    "LNT006": "DeployGuard's hooks are swapped",
    "LNT007": "no alarms in the DeploymentPreference",
    "LNT008": "an alarm that does not watch the new version (no ExecutedVersion dimension)",
    "LNT009": "AutoPublishAliasAllProperties is not true",
    "LNT010": "an environment variable set from a template Parameter (SAM issue #3820)",
    "LNT011": f"no {STAGE_TAG} tag (or another stage's)",
    "LNT012": f"no {APP_TAG} tag",
    "LNT013": "a deprecated runtime",
    "LNT014": f"more than {MAX_DEPLOYMENT_GROUP_ALARMS} alarms in a DeploymentPreference",
    "LNT015": "a hook that cannot be told apart (set from a Parameter)",
    "LNT016": "an AutoPublishAlias SAM cannot resolve",
    "LNT017": "a hook of another stage's DeployGuard",
    "LNT018": "a plaintext secret in the template's environment",
}
# SAM's own check of an alias name (aws-sam-translator, sam_resources.py: ALIAS_REGEX).
_ALIAS = re.compile(r"(?!^[0-9]+$)[a-zA-Z0-9\-_]+$")


@dataclass(frozen=True)
class LintFinding:
    code: str
    level: LintLevel
    resource: str
    message: str
    fix: str
    line: int | None = None

    def document(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class _Context:
    template: Template
    stage: str | None
    app: str | None
    today: date


def lint(
    template: Template, *, today: date, stage: str | None = None, app: str | None = None
) -> list[LintFinding]:
    """Every finding of ``template``, in template order. ``stage`` / ``app``: the values the scope
    tags must have (unchecked when None)."""
    context = _Context(template, stage, app, today)
    guarded = [f for f in template.functions if f.guarded]
    if not guarded:
        if _plain_cloudformation_aliases(template):
            return [
                LintFinding(
                    "LNT002",
                    "warning",
                    str(template.path.name),
                    "no SAM DeploymentPreference; the template's AWS::Lambda::Alias UpdatePolicy wiring "
                    "is plain CloudFormation, which lint does not check",
                    "compare it with the CloudFormation snippet of docs/attach.md",
                )
            ]
        return [
            LintFinding(
                "LNT002",
                "error",
                str(template.path.name),
                "no function has an enabled DeploymentPreference: CloudFormation updates the functions "
                "in place, CodeDeploy never runs, and no hook can guard a release",
                "give each function to guard `AutoPublishAlias: live` and a `DeploymentPreference` "
                "(docs/attach-in-10-minutes.md)",
            )
        ]
    findings: list[LintFinding] = []
    for function in guarded:
        for rule in (
            _alias,
            _hooks,
            _alarms,
            _all_properties,
            _parameter_environment,
            _plaintext_secrets,
            _tags,
            _runtime,
        ):
            findings.extend(rule(function, context))
    return findings


def _plain_cloudformation_aliases(template: Template) -> bool:
    return any(
        isinstance(r, Mapping)
        and r.get("Type") == "AWS::Lambda::Alias"
        and isinstance(r.get("UpdatePolicy"), Mapping)
        and "CodeDeployLambdaAliasUpdate" in r["UpdatePolicy"]
        for r in template.resources.values()
    )


def _finding(function: TemplateFunction, code: str, level: LintLevel, message: str, fix: str) -> LintFinding:
    return LintFinding(code, level, function.logical_id, message, fix, function.line)


def _alias(function: TemplateFunction, context: _Context) -> Iterator[LintFinding]:
    alias = function.properties.get("AutoPublishAlias")
    parameter = alias.get("Ref") if isinstance(alias, Mapping) and len(alias) == 1 else None
    name = literal(alias)
    if alias is not None and not (parameter in context.template.parameters or (name and _ALIAS.match(name))):
        yield _finding(
            function,
            "LNT016",
            "error",
            "AutoPublishAlias must be an alias name (letters, digits, '-', '_'; not only digits) or a Ref "
            "to a template Parameter: SAM resolves nothing else and refuses the template",
            "set `AutoPublishAlias: live` (or `!Ref AliasParameter`)",
        )
    if alias is None:
        yield _finding(
            function,
            "LNT001",
            "error",
            "DeploymentPreference needs AutoPublishAlias: without an alias SAM publishes no version "
            "and creates no CodeDeploy deployment (sam validate refuses it)",
            "add `AutoPublishAlias: live` to the function (or Globals.Function)",
        )


def _hooks(function: TemplateFunction, context: _Context) -> Iterator[LintFinding]:
    preference = function.deployment_preference or {}
    hooks = preference.get("Hooks")
    hooks = hooks if isinstance(hooks, Mapping) else {}
    missing: tuple[tuple[str, str, LintLevel], ...] = (
        ("PreTraffic", "LNT003", "error"),
        ("PostTraffic", "LNT004", "warning"),
    )
    for event, code, level in missing:
        value = hooks.get(event)
        if value is None:
            what = (
                "the configuration checks and smoke tests never run before traffic shifts"
                if event == "PreTraffic"
                else "no smoke test on the alias, no alarm or per-version health check after the shift"
            )
            yield _finding(
                function,
                code,
                level,
                f"DeploymentPreference.Hooks has no {event} hook: {what}",
                f"add `{event}: !ImportValue deployguard-<stage>-{event}HookName` under "
                "DeploymentPreference.Hooks",
            )
            continue
        yield from _hook_target(function, context, event, value)


def _hook_target(
    function: TemplateFunction, context: _Context, event: str, value: object
) -> Iterator[LintFinding]:
    points_at = deployguard_hook(value)
    if points_at == event:
        yield from _hook_stage(function, context, event, value)
        return
    import_fix = f"`{event}: !ImportValue deployguard-<stage>-{event}HookName`"
    if points_at is not None:
        yield _finding(
            function,
            "LNT006",
            "error",
            f"Hooks.{event} points at DeployGuard's {points_at} hook: it would run at the wrong "
            "lifecycle event and fail every deployment",
            f"use {import_fix}",
        )
        return
    own = _own_resource(context.template, value)
    if own is None and context.template.parameter_refs(value):
        yield _finding(
            function,
            "LNT015",
            "warning",
            f"Hooks.{event} comes from a template Parameter: lint cannot tell whether it is DeployGuard's",
            f"import it: {import_fix}",
        )
        return
    whose = f"the application's own function {own}" if own else "a function that is not DeployGuard's"
    yield _finding(
        function,
        "LNT005",
        "error",
        f"Hooks.{event} runs {whose}: CodeDeploy runs exactly one hook per lifecycle event (the "
        f"alias UpdatePolicy takes one function name for it), so DeployGuard's {event} hook cannot "
        "be attached beside it",
        f"point it at DeployGuard ({import_fix}), move what your hook tests into the policy's smoke "
        "cases (`deployguard init` writes one per events/*.json) and delete your hook function; "
        "DeployGuard does not call another hook (docs/lint.md#one-hook-per-lifecycle-event)",
    )


def _hook_stage(
    function: TemplateFunction, context: _Context, event: str, value: object
) -> Iterator[LintFinding]:
    """With ``--stage``: a hook of another stage's DeployGuard stack (``deployguard-<other>-…``)."""
    imported = value.get("Fn::ImportValue") if isinstance(value, Mapping) else None
    name = _text(imported if imported is not None else value) or ""
    others = [s.value for s in Stage if s.value != context.stage and f"deployguard-{s.value}-" in name]
    if context.stage is not None and others:
        yield _finding(
            function,
            "LNT017",
            "error",
            f"Hooks.{event} is the {others[0]} DeployGuard's, but the function is deployed to "
            f"{context.stage}: that hook finds no {STAGE_TAG}={others[0]} tag and fails the deployment",
            f"import `deployguard-{context.stage}-{event}HookName` (or `!Sub deployguard-${{Stage}}-{event}HookName`)",
        )


def deployguard_hook(value: object) -> str | None:
    """Which DeployGuard hook ``value`` names ('PreTraffic' / 'PostTraffic'), if one: an
    ``Fn::ImportValue`` of DeployGuard's exports, or its function's name or ARN."""
    imported = value.get("Fn::ImportValue") if isinstance(value, Mapping) and len(value) == 1 else None
    if imported is not None:
        name = _text(imported)
        for event, suffixes in HOOK_EXPORT_SUFFIXES.items():
            if name is not None and name.endswith(suffixes):
                return event
        return None
    name = _text(value)
    if name is None or HOOK_FUNCTION_PREFIX not in name:
        return None
    for event, suffix in HOOK_FUNCTION_SUFFIXES.items():
        if name.endswith(suffix):
            return event
    return None


def _text(value: object) -> str | None:
    """A literal string, or an ``Fn::Sub`` template string (its variables left as written)."""
    if isinstance(value, str):
        return value
    if isinstance(value, Mapping) and len(value) == 1 and "Fn::Sub" in value:
        argument = value["Fn::Sub"]
        text = argument[0] if isinstance(argument, list) and argument else argument
        return text if isinstance(text, str) else None
    return None


def _own_resource(template: Template, value: object) -> str | None:
    """The template resource ``value`` refers to (``Ref`` / ``GetAtt``), if it is one."""
    if isinstance(value, Mapping) and len(value) == 1:
        (key, argument) = next(iter(value.items()))
        if key == "Ref" and template.resource(argument) is not None:
            return str(argument)
        if key == "Fn::GetAtt":
            name = argument[0] if isinstance(argument, list) and argument else str(argument).split(".")[0]
            return str(name) if template.resource(name) is not None else None
        if key == "Fn::Sub":
            text = _text(value) or ""
            return next((n for n in sorted(sub_variables(text)) if template.resource(n)), None)
    return None


def _alarms(function: TemplateFunction, context: _Context) -> Iterator[LintFinding]:
    preference = function.deployment_preference or {}
    alarms = list(_branches(preference.get("Alarms")))
    if not alarms:
        yield _finding(
            function,
            "LNT007",
            "warning",
            "the DeploymentPreference names no alarms: CodeDeploy stops the traffic shift on "
            "nothing (DeployGuard's post-traffic hook still watches the policy's alarms.select)",
            "add an alarm on the new version's errors (the ExecutedVersion dimension, "
            "docs/attach.md) under DeploymentPreference.Alarms",
        )
        return
    if len(alarms) > MAX_DEPLOYMENT_GROUP_ALARMS:
        yield _finding(
            function,
            "LNT014",
            "error",
            f"{len(alarms)} alarms in the DeploymentPreference: a CodeDeploy deployment group "
            f"takes at most {MAX_DEPLOYMENT_GROUP_ALARMS}, and the stack update fails",
            f"keep the {MAX_DEPLOYMENT_GROUP_ALARMS} that matter most there (or one composite alarm) and "
            "let DeployGuard's policy watch the rest (alarms.select)",
        )
    for alarm in alarms:
        logical_id = alarm.get("Ref") if isinstance(alarm, Mapping) else None
        resource = context.template.resource(logical_id)
        if resource is None or resource.get("Type") != "AWS::CloudWatch::Alarm":
            continue  # a literal name or an alarm of another stack: its dimensions are not here
        per_version = _watches_version(resource.get("Properties"))
        if per_version is False:
            yield LintFinding(
                "LNT008",
                "warning",
                str(logical_id),
                "the alarm has no ExecutedVersion dimension: it counts the old version's errors too, "
                "so an alarm already firing blocks the fix, and the new version's errors are diluted",
                "add `- Name: ExecutedVersion` / `Value: !GetAtt <Function>.Version.Version` to its "
                "Dimensions (docs/attach.md)",
                line_of(resource),
            )


def _branches(value: object) -> Iterator[object]:
    """The items of a list, through ``Fn::If`` (both branches; AWS::NoValue dropped)."""
    if isinstance(value, list):
        for item in value:
            yield from _branches(item) if _is_if(item) else iter([item])
    elif _is_if(value):
        assert isinstance(value, Mapping)
        for branch in value["Fn::If"][1:]:
            yield from _branches(branch)
    elif value is not None and not (isinstance(value, Mapping) and value.get("Ref") == "AWS::NoValue"):
        yield value


def _is_if(value: object) -> bool:
    return (
        isinstance(value, Mapping)
        and isinstance(value.get("Fn::If"), list)
        and len(value["Fn::If"]) == 3
        and len(value) == 1
    )


def _watches_version(properties: object) -> bool | None:
    """Whether an alarm's metric (or one of its metric-math metrics) has ExecutedVersion; None: unknown."""
    if not isinstance(properties, Mapping):
        return None
    dimension_lists = [properties.get("Dimensions")]
    for metric in properties.get("Metrics") or []:
        stat = metric.get("MetricStat") if isinstance(metric, Mapping) else None
        inner = stat.get("Metric") if isinstance(stat, Mapping) else None
        if isinstance(inner, Mapping):
            dimension_lists.append(inner.get("Dimensions"))
    if any(is_intrinsic(d) for d in dimension_lists):
        return None
    return any(
        isinstance(d, Mapping) and d.get("Name") == "ExecutedVersion"
        for dimensions in dimension_lists
        if isinstance(dimensions, list)
        for d in dimensions
    )


def _all_properties(function: TemplateFunction, context: _Context) -> Iterator[LintFinding]:
    if function.properties.get("AutoPublishAliasAllProperties") not in (True, "true", "True"):
        yield _finding(
            function,
            "LNT009",
            "warning",
            "AutoPublishAliasAllProperties is not true: SAM publishes a new version only when the "
            "code changes, so a configuration-only change (an environment variable) reaches $LATEST "
            "without a deployment and without DeployGuard's checks",
            "add `AutoPublishAliasAllProperties: true` next to AutoPublishAlias",
        )


def _parameter_environment(function: TemplateFunction, context: _Context) -> Iterator[LintFinding]:
    driven = {
        name: sorted(context.template.parameter_refs(value))
        for name, value in function.environment.items()
        if context.template.parameter_refs(value)
    }
    if driven:
        listed = ", ".join(f"{name} (from {', '.join(params)})" for name, params in sorted(driven.items()))
        yield _finding(
            function,
            "LNT010",
            "warning",
            f"environment variables set from template Parameters: {listed}. A change of a "
            "Parameter's value alone publishes no new version even with AutoPublishAliasAllProperties "
            "(SAM issue #3820): no deployment, no hook, the change is not guarded",
            "release a Parameter change together with a code change or a literal change in the "
            "function (e.g. a Description naming the release), until SAM's fix ships",
        )


def _plaintext_secrets(function: TemplateFunction, context: _Context) -> Iterator[LintFinding]:
    literals = {str(k): v for k, v in ((k, literal(v)) for k, v in function.environment.items()) if v}
    for found in plaintext_secret_findings(literals):
        yield _finding(
            function,
            "LNT018",
            "error",
            f"{found.message} ({found.code}: every deployment fails while the template holds it; "
            "the secret is also in the template's history)",
            "reference it instead: a Secrets Manager ARN or an SSM parameter name, read at run time; "
            "then rotate the secret",
        )


def _tags(function: TemplateFunction, context: _Context) -> Iterator[LintFinding]:
    tags = function.tags
    snippet = f"Tags: {{{STAGE_TAG}: {context.stage or '<stage>'}, {APP_TAG}: {context.app or '<app>'}}}"
    stage = tags.get(STAGE_TAG)
    if stage is None:
        yield _finding(
            function,
            "LNT011",
            "error",
            f"no {STAGE_TAG} tag: DeployGuard guards only functions tagged with its stage; it treats "
            "this one as unguarded (in staging and prod: every deployment fails)",
            f"add `{snippet}` to the function, or to Globals.Function",
        )
    elif context.stage is not None and literal(stage) not in (None, context.stage):
        yield _finding(
            function,
            "LNT011",
            "error",
            f"{STAGE_TAG} is '{literal(stage)}', not '{context.stage}': the {context.stage} DeployGuard "
            "treats this function as out of its scope",
            f"set `{STAGE_TAG}: {context.stage}` (or `!Ref Stage`)",
        )
    app = tags.get(APP_TAG)
    if app is None:
        yield _finding(
            function,
            "LNT012",
            "error",
            f"no {APP_TAG} tag: DeployGuard finds the function's policy document by it",
            f"add `{snippet}` to the function, or to Globals.Function",
        )
    elif context.app is not None and literal(app) not in (None, context.app):
        yield _finding(
            function,
            "LNT012",
            "error",
            f"{APP_TAG} is '{literal(app)}', not '{context.app}': DeployGuard would read another "
            "application's policy",
            f"set `{APP_TAG}: {context.app}`",
        )


def _runtime(function: TemplateFunction, context: _Context) -> Iterator[LintFinding]:
    runtime = function.runtime
    lifecycle = RUNTIMES.get(runtime or "")
    if runtime is None or lifecycle is None or not is_deprecated(runtime, context.today):
        return
    blocked = [
        f"{what} from {when.isoformat()}"
        for what, when in (("creates", lifecycle.create_block), ("updates", lifecycle.update_block))
        if when is not None
    ]
    yield _finding(
        function,
        "LNT013",
        "error",
        f"runtime {runtime} was deprecated on {lifecycle.deprecated.isoformat()}"
        + (f" (Lambda blocks {' and '.join(blocked)})" if blocked else "")
        + ": the policy's deprecated_runtime rule (error by default) fails a deployment of it",
        f"move to {lifecycle.successor}" if lifecycle.successor else "move to a supported runtime",
    )
