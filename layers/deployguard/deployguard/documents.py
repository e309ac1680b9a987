"""JSON or YAML documents (policies, AppSpecs): one parser for both."""

from __future__ import annotations

import json
from typing import Any


class DocumentSyntaxError(ValueError):
    """Neither valid JSON nor valid YAML."""


def parse_json_or_yaml(text: str) -> Any:
    """JSON when the text is a JSON object, else YAML (a JSON superset).

    NOTE: PyYAML is imported only for YAML input. Published policies and CodeDeploy's AppSpecs are
    JSON, so a hook's cold start never pays for the YAML parser.
    """
    if text.lstrip().startswith("{"):
        try:
            return json.loads(text)
        except json.JSONDecodeError as exc:
            raise DocumentSyntaxError(
                f"invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}"
            ) from exc
    import yaml  # noqa: PLC0415

    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise DocumentSyntaxError(f"invalid YAML: {exc}") from exc
