"""``deployguard check --template``: the first release of a function, checked from its template.

Before a function's first deployment there is no version to read or invoke. Its configuration is
what the template declares (SAM ``Globals`` merged, ``deployguard_cli.templates``): the same
configuration check the pre-traffic hook runs, on a :class:`FunctionSnapshot` built from the
template. A value given by an intrinsic function (``!Ref``, ``!Sub``, ``!GetAtt``, ``!If``…) is only
known at deploy time: it is reported as unresolved (TPL001, a warning) and whatever depends on it
is not judged here, never guessed; the pre-traffic hook judges it at the first guarded deployment.
Smoke tests need a version: they are reported as skipped, to run at that first deployment.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any

from deployguard.config_check import validate_config
from deployguard.findings import CheckResult, Finding, Result, Severity, result_from_findings
from deployguard.policy import FunctionPolicy
from deployguard.ports import ReferencePort
from deployguard.snapshot import FunctionSnapshot
from deployguard.stages import Stage
from deployguard_cli.templates import Template, TemplateError, TemplateFunction, is_intrinsic, literal

UNRESOLVED = "TPL001"
SMOKE_LATER = (
    "not run: the function has no version yet; the pre-traffic hook runs it at the first guarded deployment"
)
ENVIRONMENT = "Environment"  # the subject of an Environment.Variables given by an intrinsic as a whole
_SETTINGS_SUBJECTS = frozenset({"runtime", "timeout", "tracing", "on_failure_destination"})
_DECLARED = "(declared in the template)"  # a target whose presence is all the check judges


@dataclass(frozen=True)
class TemplateSnapshot:
    """The configuration the template declares, and what it leaves to deploy time (subject → how)."""

    snapshot: FunctionSnapshot
    unresolved: dict[str, str]


def find_function(template: Template, function_name: str, resource: str | None) -> TemplateFunction:
    """The template's function: logical id ``resource``, else the one whose logical id or literal
    ``FunctionName`` is ``function_name``. TemplateError naming the template's functions otherwise."""
    for function in template.functions:
        if resource is not None:
            if function.logical_id == resource:
                return function
        elif function_name in (function.logical_id, literal(function.properties.get("FunctionName"))):
            return function
    names = ", ".join(f.logical_id for f in template.functions) or "none"
    wanted = f"logical id {resource}" if resource else f"{function_name} (as logical id or FunctionName)"
    raise TemplateError(
        f"{template.path} declares no function {wanted}; its functions: {names}"
        + ("" if resource else " (pass --resource LOGICAL_ID when the FunctionName is generated)")
    )


def judged_name(function: TemplateFunction, function_name: str) -> str:
    """The function name the policy judges: the template's literal ``FunctionName``; else
    ``function_name`` when it is not the logical id (the name the team expects); else a name of the
    shape CloudFormation generates, ``<stack>-<LogicalId>-<suffix>``, which the ``*-<LogicalId>-*``
    entry ``deployguard init`` writes for such a function matches."""
    declared = literal(function.properties.get("FunctionName"))
    if declared:
        return declared
    if function_name != function.logical_id:
        return function_name
    return f"stack-{function.logical_id}-generated"


def template_snapshot(function: TemplateFunction, function_name: str) -> TemplateSnapshot:
    """``function`` as the configuration check sees a version, from its declared properties."""
    properties = function.properties
    unresolved: dict[str, str] = {}
    environment: dict[str, str] = {}
    declared = (
        (properties.get("Environment") or {}) if isinstance(properties.get("Environment"), Mapping) else {}
    )
    variables = declared.get("Variables") if isinstance(declared, Mapping) else None
    if is_intrinsic(properties.get("Environment")) or is_intrinsic(variables):
        unresolved[ENVIRONMENT] = _how(properties.get("Environment") if variables is None else variables)
    elif isinstance(variables, Mapping):
        for name, value in variables.items():
            text = literal(value)
            if text is None:
                unresolved[str(name)] = _how(value)
            else:
                environment[str(name)] = text

    def setting(key: str, subject: str) -> Any:
        value = properties.get(key)
        if value is not None and literal(value) is None and not isinstance(value, list):
            unresolved[subject] = _how(value)
            return None
        return value

    runtime = setting("Runtime", "runtime")
    timeout = setting("Timeout", "timeout")
    memory = setting("MemorySize", "memory")
    tracing = properties.get("Tracing")  # SAM
    tracing_config = properties.get("TracingConfig")  # CloudFormation
    if isinstance(tracing_config, Mapping):
        tracing = tracing_config.get("Mode")
    if tracing is not None and literal(tracing) is None:
        unresolved["tracing"] = _how(tracing)
        tracing = None
    dead_letter = properties.get("DeadLetterQueue") or properties.get("DeadLetterConfig")
    on_failure = _on_failure(properties.get("EventInvokeConfig"))
    architectures = properties.get("Architectures")
    layers = properties.get("Layers")
    snapshot = FunctionSnapshot(
        function_name=function_name,
        version="(template)",
        runtime=literal(runtime),
        architectures=tuple(a for a in map(literal, architectures) if a)
        if isinstance(architectures, list)
        else ("x86_64",),
        memory_size=int(memory) if literal(memory) and str(memory).isdigit() else 128,
        timeout=int(timeout) if literal(timeout) and str(timeout).isdigit() else 3,
        layers=tuple(literal(layer) or _DECLARED for layer in layers) if isinstance(layers, list) else (),
        environment=environment,
        tracing_mode=literal(tracing),
        dead_letter_target=_DECLARED if dead_letter else None,
        on_failure_destination=_DECLARED if on_failure else None,
    )
    return TemplateSnapshot(snapshot=snapshot, unresolved=unresolved)


def _on_failure(config: Any) -> bool:
    destination = config.get("DestinationConfig") if isinstance(config, Mapping) else None
    return isinstance(destination, Mapping) and destination.get("OnFailure") is not None


def _how(value: Any) -> str:
    """How the template gives ``value``: the intrinsic's name (never its argument)."""
    if isinstance(value, Mapping) and len(value) == 1:
        (key,) = value.keys()
        return f"!{str(key).removeprefix('Fn::')}"
    return "a value that is not a literal"


def template_checks(
    function: TemplateFunction,
    policy: FunctionPolicy,
    *,
    function_name: str,
    stage: Stage,
    references: ReferencePort,
    today: date,
) -> list[CheckResult]:
    """The configuration check of what the template declares, and each smoke case skipped."""
    declared = template_snapshot(function, function_name)
    findings = validate_config(
        declared.snapshot, None, policy.config, stage, reference_exists=references.exists, today=today
    )
    left = set(declared.unresolved)
    whole_environment = ENVIRONMENT in left
    # NOTE: a finding about an unresolved value judged its absence, not its deployed value: dropped
    findings = [
        f
        for f in findings
        if f.subject not in left and not (whole_environment and f.subject not in _SETTINGS_SUBJECTS)
    ]
    findings += [
        Finding(
            code=UNRESOLVED,
            severity=Severity.WARNING,
            subject=subject,
            message=f"{subject} is given by {how}, known only at deploy time: not checked here; the "
            "pre-traffic hook checks it at the first guarded deployment",
        )
        for subject, how in declared.unresolved.items()
    ]
    errors = [f for f in findings if f.severity is Severity.ERROR]
    config = CheckResult(
        name="config",
        result=result_from_findings(findings),
        message=(
            f"as {function.logical_id} is declared in the template: {len(errors)} error(s), "
            f"{len(findings) - len(errors)} warning(s)"
            if findings
            else f"as {function.logical_id} is declared in the template: configuration ok"
        ),
        findings=findings,
    )
    smoke = [
        CheckResult(name=f"smoke:{case.name}", result=Result.SKIPPED, message=SMOKE_LATER)
        for case in policy.smoke
    ]
    return [config, *smoke]


def template_tags(function: TemplateFunction) -> dict[str, str]:
    """The function's tags the template states literally (an intrinsic tag is not known here)."""
    return {str(k): text for k, v in function.tags.items() if (text := literal(v)) is not None}
