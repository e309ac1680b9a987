"""The AppSpec of a Lambda deployment: which function, alias and versions it moves.

AppSpec content in the wild varies: ``Resources/Properties/Name`` in the AppSpec example and
lower-case ``resources/properties/name`` in the AppSpec reference, ``version`` as ``0.0`` or ``"0.0"``,
JSON or YAML; the content sits in the revision's ``appSpecContent`` or ``string`` section. Parse
leniently, validate strictly.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from deployguard.documents import DocumentSyntaxError, parse_json_or_yaml
from deployguard.errors import ResolutionError
from deployguard.records import datarecord


@datarecord
class DeploymentTarget:
    """The function a deployment shifts, and between which versions."""

    function_name: str
    alias: str
    current_version: str
    target_version: str


# The section of a CodeDeploy RevisionLocation that holds inline AppSpec content, by revisionType.
REVISION_CONTENT_SECTIONS = {"AppSpecContent": "appSpecContent", "String": "string"}


def revision_content(revision: Mapping[str, Any]) -> str | None:
    """The inline AppSpec content of a RevisionLocation (``AppSpecContent`` or ``String``), if any."""
    section = REVISION_CONTENT_SECTIONS.get(str(revision.get("revisionType")))
    holder = revision.get(section) if section else None
    content = holder.get("content") if isinstance(holder, Mapping) else None
    return str(content) if content else None


def lower_keys(value: Any) -> Any:
    """Every mapping key lower-cased, at any depth: AppSpec keys appear in either case."""
    if isinstance(value, dict):
        return {str(k).lower(): lower_keys(v) for k, v in value.items()}
    if isinstance(value, list):
        return [lower_keys(v) for v in value]
    return value


def plain_function_name(function: str) -> str:
    """``orders``, ``arn:aws:lambda:…:function:orders[:live]`` and ``orders:live`` → ``orders``."""
    return function.split(":function:", 1)[-1].split(":", 1)[0]


def _version(value: Any, field: str) -> str:
    if isinstance(value, bool) or value is None or value == "":
        raise ResolutionError(f"AppSpec {field} is missing: the revision must name it")
    text = str(value)
    if isinstance(value, float) and value.is_integer():
        text = str(int(value))
    return text


def parse_appspec(content: str) -> DeploymentTarget:
    """The single Lambda resource of an AppSpec document (JSON or YAML)."""
    try:
        document = parse_json_or_yaml(content)
    except DocumentSyntaxError as exc:
        raise ResolutionError(f"AppSpec content is neither JSON nor YAML ({exc})") from exc
    document = lower_keys(document)
    if not isinstance(document, dict) or "resources" not in document:
        raise ResolutionError("AppSpec has no 'Resources' section")
    resources = document["resources"]
    if isinstance(resources, dict):  # tolerate a mapping instead of a list of one-key mappings
        resources = [{k: v} for k, v in resources.items()]
    if not isinstance(resources, list) or len(resources) != 1 or not isinstance(resources[0], dict):
        raise ResolutionError("AppSpec 'Resources' must hold exactly one Lambda function")
    (resource,) = resources[0].values()
    if not isinstance(resource, dict):
        raise ResolutionError("AppSpec resource must be a mapping with 'Type' and 'Properties'")
    kind = str(resource.get("type", "AWS::Lambda::Function"))
    if kind.lower() != "aws::lambda::function":
        raise ResolutionError(f"AppSpec resource type is {kind}, not AWS::Lambda::Function")
    properties = resource.get("properties")
    if not isinstance(properties, dict):
        raise ResolutionError("AppSpec resource has no 'Properties'")
    name, alias = properties.get("name"), properties.get("alias")
    if not name or not alias:
        raise ResolutionError("AppSpec Properties must name the function ('Name') and its 'Alias'")
    return DeploymentTarget(
        function_name=str(name),
        alias=str(alias),
        current_version=_version(properties.get("currentversion"), "CurrentVersion"),
        target_version=_version(properties.get("targetversion"), "TargetVersion"),
    )


def render_appspec(target: DeploymentTarget) -> str:
    """The AppSpec JSON that CodeDeploy (and SAM) would write for ``target``."""
    return json.dumps(
        {
            "version": 0.0,
            "Resources": [
                {
                    target.function_name: {
                        "Type": "AWS::Lambda::Function",
                        "Properties": {
                            "Name": target.function_name,
                            "Alias": target.alias,
                            "CurrentVersion": target.current_version,
                            "TargetVersion": target.target_version,
                        },
                    }
                }
            ],
        }
    )
