"""The JSON Schema of the outcome record, as it is written (log lines, reports, the rehearsal).

``docs/outcome-record.schema.json`` is this schema; a test keeps it current. Regenerate it with
``python -m deployguard.schema > docs/outcome-record.schema.json``.
"""

from __future__ import annotations

import json
from typing import Any

from deployguard.outcome import SCHEMA_VERSION, OutcomeRecord

JSON_SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"


def outcome_record_schema() -> dict[str, Any]:
    """The record's JSON Schema in serialization mode: what a log line's record fields look like.

    A field that is null may be absent (Powertools Logger drops null keys from the line); every
    other field is always written. Additional properties are allowed: a log line also carries
    Powertools' keys (level, timestamp, correlation_id, …), and a reader of
    ``deployguard.outcome/1`` must ignore fields it does not know.
    """
    schema = OutcomeRecord.model_json_schema(mode="serialization")
    for model in [schema, *schema.get("$defs", {}).values()]:
        _nullable_is_optional(model)
    return {
        "$schema": JSON_SCHEMA_DIALECT,
        **schema,
        "title": f"DeployGuard outcome record ({SCHEMA_VERSION})",
        "description": (
            "One record of every decision DeployGuard makes, logged as one JSON line with message "
            "'deployguard outcome'. Never carries a secret value."
        ),
    }


def _nullable_is_optional(model: dict[str, Any]) -> None:
    properties = model.get("properties", {})
    required = [
        name
        for name in model.get("required", [])
        if {"type": "null"} not in properties.get(name, {}).get("anyOf", [])
    ]
    if required:
        model["required"] = required
    else:
        model.pop("required", None)


def render() -> str:
    return json.dumps(outcome_record_schema(), indent=2, sort_keys=True) + "\n"


if __name__ == "__main__":
    print(render(), end="")
