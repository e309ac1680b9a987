"""A small, strict JSONPath subset for smoke-test expectations: ``$``, ``$.a.b``, ``$.items[0]``,
``$['odd key']``, ``$.items[-1].sku``."""

from __future__ import annotations

import re
from typing import Any

_TOKEN = re.compile(r"\.([A-Za-z_][A-Za-z0-9_-]*)|\[(-?\d+)\]|\[['\"]([^'\"]+)['\"]\]")

MISSING = object()
"""Returned when the path does not exist in the document."""


def parse_path(path: str) -> list[str | int]:
    if not path.startswith("$"):
        raise ValueError(f"path '{path}' must start with '$'")
    steps: list[str | int] = []
    position = 1
    while position < len(path):
        match = _TOKEN.match(path, position)
        if match is None:
            raise ValueError(f"path '{path}' is not understood at '{path[position:]}'")
        name, index, quoted = match.groups()
        steps.append(int(index) if index is not None else (name or quoted))
        position = match.end()
    return steps


def find(document: Any, path: str) -> Any:
    """The value at ``path``, or :data:`MISSING`."""
    current = document
    for step in parse_path(path):
        if isinstance(step, int):
            if not isinstance(current, list) or not -len(current) <= step < len(current):
                return MISSING
            current = current[step]
        else:
            if not isinstance(current, dict) or step not in current:
                return MISSING
            current = current[step]
    return current
