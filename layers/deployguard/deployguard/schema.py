"""The outcome record as a document: its JSON Schema, and reading a written record back.

``docs/outcome-record.schema.json`` is :func:`outcome_record_schema`; a test keeps it current.
Regenerate it with ``python -m deployguard.schema > docs/outcome-record.schema.json``.

NOTE: this module imports pydantic (to describe and to validate the plain dataclasses of
``deployguard.outcome``); only the CLI and the tests import it, never a hook on its hot path.
"""

from __future__ import annotations

import json
from typing import Any

from pydantic import TypeAdapter

from deployguard.outcome import SCHEMA_VERSION, CheckRecord, OutcomeRecord

JSON_SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"


# NOTE: built at import, while the annotations' names (``datetime``…) still mean what they say: the
# rehearsal's virtual clock rebinds ``datetime`` in DeployGuard's modules while a handler runs.
_RECORDS: TypeAdapter[OutcomeRecord] = TypeAdapter(OutcomeRecord)


def parse_outcome(document: dict[str, Any]) -> OutcomeRecord:
    """A written record (a log line's fields) as an OutcomeRecord. Raises pydantic's ValidationError.

    Keys the record does not have (Powertools' level, timestamp…, the written ``rolled_back`` and
    each check's ``code``) are ignored: they are derived, or not the record's.
    """
    return _RECORDS.validate_python(document)


def outcome_record_schema() -> dict[str, Any]:
    """The record's JSON Schema in serialization mode: what a log line's record fields look like.

    A field that is null may be absent (Powertools Logger drops null keys from the line); every
    other field is always written. Additional properties are allowed: a log line also carries
    Powertools' keys (level, timestamp, correlation_id, …), and a reader of
    ``deployguard.outcome/1`` must ignore fields it does not know.
    """
    schema = _RECORDS.json_schema(mode="serialization")
    definitions = schema.setdefault("$defs", {})
    # The written form (OutcomeRecord.document): each check carries its code, the record rolled_back.
    definitions.pop("CheckResult")
    check = TypeAdapter(CheckRecord).json_schema(mode="serialization", ref_template="#/$defs/{model}")
    definitions.update(check.pop("$defs", {}))
    definitions["CheckRecord"] = check
    schema["properties"]["checks"]["items"] = {"$ref": "#/$defs/CheckRecord"}
    schema["properties"]["rolled_back"] = {
        "description": " ".join((OutcomeRecord.rolled_back.__doc__ or "").split()),
        "readOnly": True,
        "title": "Rolled Back",
        "type": "boolean",
    }
    for model in [schema, *definitions.values()]:
        _written_is_required(model)
    return {
        "$schema": JSON_SCHEMA_DIALECT,
        **schema,
        "title": f"DeployGuard outcome record ({SCHEMA_VERSION})",
        "description": (
            "One record of every decision DeployGuard makes, logged as one JSON line with message "
            "'deployguard outcome'. Never carries a secret value."
        ),
    }


def _written_is_required(model: dict[str, Any]) -> None:
    """Every field is written, defaults included, except that a null one may be absent."""
    properties = model.get("properties", {})
    required = [name for name, spec in properties.items() if {"type": "null"} not in spec.get("anyOf", [])]
    if required:
        model["required"] = required
    else:
        model.pop("required", None)


def render() -> str:
    return json.dumps(outcome_record_schema(), indent=2, sort_keys=True) + "\n"


if __name__ == "__main__":
    print(render(), end="")
