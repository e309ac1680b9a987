"""A user's SAM or CloudFormation template as ``deployguard init`` and ``deployguard lint`` read it.

Parsed with cfn-lint's decoder (YAML with the short tags ``!Ref``, ``!Sub``, ``!GetAtt``…, or
JSON; it keeps each node's line), never deployed or transformed: intrinsic functions stay
symbolic, so a parameter without a default needs no value. ``Globals.Function`` is merged into
each ``AWS::Serverless::Function`` the way SAM merges it (see :func:`merge_globals`).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from deployguard.errors import DeployGuardError

SERVERLESS_FUNCTION = "AWS::Serverless::Function"
LAMBDA_FUNCTION = "AWS::Lambda::Function"
MAX_TEMPLATE_BYTES = 1_000_000
"""CloudFormation's limit for a template uploaded through S3 (its largest); a bigger file is not one."""

_SUB_VARIABLE = re.compile(r"\$\{([^!}][^}]*)\}")


class TemplateError(DeployGuardError):
    """The template cannot be read: missing, not UTF-8, not YAML or JSON, or not a template (or,
    for ``deployguard rehearse``, a value in it cannot be evaluated: ``rehearsal.wiring``)."""

    code = "TEMPLATE"


@dataclass(frozen=True)
class TemplateFunction:
    """A Lambda function of the template: its logical id, its properties (SAM Globals merged)."""

    logical_id: str
    type: str
    properties: Mapping[str, Any]
    line: int | None = None

    @property
    def deployment_preference(self) -> Mapping[str, Any] | None:
        preference = self.properties.get("DeploymentPreference")
        return preference if isinstance(preference, Mapping) else None

    @property
    def guarded(self) -> bool:
        """Deployed through CodeDeploy: a DeploymentPreference that is not ``Enabled: false``
        (an intrinsic ``Enabled`` counts as enabled: it may be, in some stage)."""
        preference = self.deployment_preference
        return preference is not None and preference.get("Enabled", True) not in (False, "false", "False")

    @property
    def environment(self) -> Mapping[str, Any]:
        environment = self.properties.get("Environment")
        variables = environment.get("Variables") if isinstance(environment, Mapping) else None
        return variables if isinstance(variables, Mapping) else {}

    @property
    def tags(self) -> Mapping[str, Any]:
        """The function's tags: SAM's map, or CloudFormation's ``[{Key, Value}]`` list as a map."""
        tags = self.properties.get("Tags")
        if isinstance(tags, Mapping):
            return tags
        if isinstance(tags, list):
            return {t["Key"]: t.get("Value") for t in tags if isinstance(t, Mapping) and "Key" in t}
        return {}

    @property
    def runtime(self) -> str | None:
        return literal(self.properties.get("Runtime"))


@dataclass(frozen=True)
class Template:
    path: Path
    document: Mapping[str, Any]
    functions: tuple[TemplateFunction, ...] = field(default=())

    @property
    def resources(self) -> Mapping[str, Any]:
        resources = self.document.get("Resources")
        return resources if isinstance(resources, Mapping) else {}

    @property
    def parameters(self) -> Mapping[str, Any]:
        parameters = self.document.get("Parameters")
        return parameters if isinstance(parameters, Mapping) else {}

    @property
    def conditions(self) -> Mapping[str, Any]:
        conditions = self.document.get("Conditions")
        return conditions if isinstance(conditions, Mapping) else {}

    def resource(self, logical_id: object) -> Mapping[str, Any] | None:
        found = self.resources.get(logical_id) if isinstance(logical_id, str) else None
        return found if isinstance(found, Mapping) else None

    def parameter_refs(self, value: object) -> set[str]:
        """The template Parameters ``value`` depends on: through ``Ref``, ``Fn::Sub`` variables, or
        an ``Fn::If`` whose condition reads them (pseudo parameters and resources are not Parameters)."""
        names: set[str] = set()
        for reference in _references(value, self.conditions):
            if reference in self.parameters:
                names.add(reference)
        return names

    @property
    def folder(self) -> Path:
        return self.path.parent


def read_template(path: Path) -> Template:
    """The template at ``path``. TemplateError when it cannot be read as a template."""
    try:
        size = path.stat().st_size
        if size > MAX_TEMPLATE_BYTES:
            raise TemplateError(
                f"{path} is {size:,} bytes, over CloudFormation's {MAX_TEMPLATE_BYTES:,}-byte template limit"
            )
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise TemplateError(f"cannot read template {path}: {exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise TemplateError(f"template {path} is not UTF-8 text: save it as UTF-8") from exc
    return parse_template(text, path)


def parse_template(text: str, path: Path) -> Template:
    # NOTE: imported here: cfn-lint's package takes most of a second to import, and only the two
    # commands that read templates need it.
    from cfnlint.decode.decode import decode_str  # noqa: PLC0415

    document, matches = decode_str(text)
    if matches or not isinstance(document, Mapping):
        problem = "; ".join(m.message for m in matches[:3]) if matches else "it is not a mapping"
        raise TemplateError(f"{path} is not a CloudFormation template (YAML or JSON): {problem}")
    resources = document.get("Resources")
    if not isinstance(resources, Mapping) or not resources:
        raise TemplateError(f"{path} has no Resources: is it a SAM or CloudFormation template?")
    return Template(path=path, document=document, functions=tuple(_functions(document)))


def _functions(document: Mapping[str, Any]) -> Iterator[TemplateFunction]:
    globals_section = document.get("Globals")
    function_globals = globals_section.get("Function") if isinstance(globals_section, Mapping) else None
    for logical_id, resource in document["Resources"].items():
        if not isinstance(resource, Mapping):
            continue
        kind = resource.get("Type")
        if kind not in (SERVERLESS_FUNCTION, LAMBDA_FUNCTION):
            continue
        properties = resource.get("Properties")
        properties = properties if isinstance(properties, Mapping) else {}
        if kind == SERVERLESS_FUNCTION and isinstance(function_globals, Mapping):
            properties = merge_globals(function_globals, properties)
        yield TemplateFunction(str(logical_id), str(kind), properties, line_of(resource))


def merge_globals(global_value: Any, local_value: Any) -> Any:
    """SAM's Globals merge: maps merge key by key (the resource's value wins), lists are the global
    items then the resource's, anything else — a scalar, or an intrinsic function — is the resource's.

    NOTE: hand-written (a dozen lines) because aws-sam-translator, whose GlobalsPlugin does this,
    is not a dependency of the CLI; only the properties DeployGuard reads matter here.
    """
    if is_intrinsic(global_value) or is_intrinsic(local_value):
        return local_value
    if isinstance(global_value, Mapping) and isinstance(local_value, Mapping):
        merged = dict(global_value)
        for key, value in local_value.items():
            merged[key] = merge_globals(global_value[key], value) if key in global_value else value
        return merged
    if isinstance(global_value, list) and isinstance(local_value, list):
        return [*global_value, *local_value]
    return local_value


def is_intrinsic(value: object) -> bool:
    """``{"Ref": …}`` or ``{"Fn::…": …}`` (also ``{"Condition": …}``): a value CloudFormation computes."""
    if not isinstance(value, Mapping) or len(value) != 1:
        return False
    (key,) = value.keys()
    return key in ("Ref", "Condition") or (isinstance(key, str) and key.startswith("Fn::"))


def literal(value: object) -> str | None:
    """``value`` as a string when the template states it (not an intrinsic, not a list or map)."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, str | int | float):
        return str(value)
    return None


def line_of(node: object) -> int | None:
    """The 1-based line where ``node`` starts in the template (cfn-lint's nodes keep it)."""
    mark = getattr(node, "start_mark", None)
    line = getattr(mark, "line", None)
    return line + 1 if isinstance(line, int) else None


def sub_variables(template_string: str) -> set[str]:
    """The names ``${Name}`` / ``${Name.Attr}`` of an ``Fn::Sub`` string refers to (``${!x}`` is literal)."""
    return {match.split(".", 1)[0] for match in _SUB_VARIABLE.findall(template_string)}


def _references(
    value: object, conditions: Mapping[str, Any], seen: frozenset[str] = frozenset()
) -> Iterator[str]:
    """Every name ``value`` refers to (Ref, GetAtt's resource, Sub variables, through conditions)."""
    if isinstance(value, list):
        for item in value:
            yield from _references(item, conditions, seen)
        return
    if not isinstance(value, Mapping):
        return
    for key, argument in value.items():
        if key == "Ref" and isinstance(argument, str):
            yield argument
        elif key == "Fn::Sub":
            yield from _sub_references(argument, conditions, seen)
        elif key in ("Fn::If", "Condition"):
            name = argument[0] if key == "Fn::If" and isinstance(argument, list) and argument else argument
            if isinstance(name, str) and name not in seen:
                yield from _references(conditions.get(name), conditions, seen | {name})
            if key == "Fn::If" and isinstance(argument, list):
                yield from _references(argument[1:], conditions, seen)
        else:
            yield from _references(argument, conditions, seen)


def _sub_references(argument: object, conditions: Mapping[str, Any], seen: frozenset[str]) -> Iterator[str]:
    if isinstance(argument, str):
        yield from sub_variables(argument)
    elif isinstance(argument, list) and argument and isinstance(argument[0], str):
        local = argument[1] if len(argument) > 1 and isinstance(argument[1], Mapping) else {}
        yield from (name for name in sub_variables(argument[0]) if name not in local)
        yield from _references(list(local.values()), conditions, seen)
