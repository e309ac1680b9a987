"""JSON or YAML documents (policies, payload files, AppSpecs): one parser for both, with limits.

A policy is input from whoever can write to its file or its SSM parameter, and the hooks parse it
with 512 MB and a deadline. So the cost of parsing is bounded before any validation runs: the size
of the text, the nesting depth, the number of nodes (every mapping, list, key and scalar; YAML
aliases counted as expanded, which is what stops a "billion laughs" alias bomb) and the number of
YAML aliases. Each limit is a named constant below, and its error names the limit and the fix.
The numbers, and the peak memory they allow, are measured by ``scripts/bench_policy.py``.
"""

from __future__ import annotations

import json
from functools import cache
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    from pathlib import Path

    import yaml

MAX_DOCUMENT_BYTES: Final = 4 * 1024 * 1024
"""A policy with payloads inlined, as UTF-8. The store for per-application policies holds several MB."""

MAX_NODES: Final = 250_000
"""Mappings, lists, keys and scalars, YAML aliases expanded, per document. Memory grows with nodes,
not bytes (each wrong value costs its validation error): at this limit the worst input measured
keeps a hook-like interpreter near the goal of 256 MB (``scripts/bench_policy.py`` prints it). A
function entry with 20 smoke cases has about 1 000, so one application's document holds about 200
such functions (200 x 20: 197 000 nodes, 1.4 MB); a larger application splits into several."""

MAX_DEPTH: Final = 64
"""Nesting levels. A policy uses 6 before a smoke payload's own; the parsers recurse per level."""

MAX_YAML_ALIASES: Final = 1_000
"""``*name`` references in one YAML document."""


class DocumentSyntaxError(ValueError):
    """Neither valid JSON nor valid YAML, or not text at all."""

    fix = "fix the syntax"


class DocumentLimitError(DocumentSyntaxError):
    """The document is over one of the limits above (so it was not, or not fully, parsed)."""

    def __init__(self, problem: str, fix: str) -> None:
        super().__init__(problem)
        self.fix = fix


def _size_error(size: int | None) -> DocumentLimitError:
    measured = f"{size:,} bytes" if size is not None else f"more than {MAX_DOCUMENT_BYTES:,} bytes"
    return DocumentLimitError(
        f"the document is {measured}; the limit is {MAX_DOCUMENT_BYTES:,} bytes (MAX_DOCUMENT_BYTES)",
        "make it smaller: shorter smoke payloads, one entry with a glob 'match' for functions guarded alike",
    )


def _depth_error() -> DocumentLimitError:
    return DocumentLimitError(
        f"the document is nested more than {MAX_DEPTH} levels deep (MAX_DEPTH)",
        "flatten it: a policy needs about 6 levels plus its smoke payloads'",
    )


def _nodes_error(*, expanded: bool = False) -> DocumentLimitError:
    if expanded:
        return DocumentLimitError(
            f"the document has more than {MAX_NODES:,} keys and values once its YAML aliases are "
            "expanded (MAX_NODES)",
            "use fewer aliases: each '*name' repeats everything under its '&name'",
        )
    return DocumentLimitError(
        f"the document has more than {MAX_NODES:,} keys and values (MAX_NODES)",
        "make it smaller: shorter smoke payloads, one entry with a glob 'match' for functions guarded alike",
    )


def _decode(data: bytes, source: str) -> str:
    """``data`` as text: UTF-8 (a BOM is dropped) and at most :data:`MAX_DOCUMENT_BYTES`."""
    if len(data) > MAX_DOCUMENT_BYTES:
        raise _size_error(len(data))
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DocumentSyntaxError(
            f"{source} is not UTF-8 text (byte 0x{data[exc.start]:02x} at offset {exc.start})"
        ) from exc


def read_document(path: Path) -> str:
    """A document file's text, reading no more than the size limit allows. OSError passes through."""
    with path.open("rb") as stream:
        data = stream.read(MAX_DOCUMENT_BYTES + 1)
    if len(data) > MAX_DOCUMENT_BYTES:
        size = path.stat().st_size  # 0 for a device or a pipe: then only "more than" is known
        raise _size_error(size if size > MAX_DOCUMENT_BYTES else None)
    return _decode(data, str(path))


def _check_size(text: str) -> None:
    # A character is 1 to 4 UTF-8 bytes: encode only when the character count cannot decide.
    if len(text) > MAX_DOCUMENT_BYTES:
        raise _size_error(len(text.encode("utf-8", "surrogatepass")))
    if len(text) > MAX_DOCUMENT_BYTES // 4:
        size = len(text.encode("utf-8", "surrogatepass"))
        if size > MAX_DOCUMENT_BYTES:
            raise _size_error(size)


def parse_json_or_yaml(text: str) -> Any:
    """JSON when the text is a JSON object, else YAML (a JSON superset); within the limits above.

    NOTE: PyYAML is imported only for YAML input. Published policies and CodeDeploy's AppSpecs are
    JSON, so a hook's cold start never pays for the YAML parser.
    """
    _check_size(text)
    if text.lstrip().startswith("{"):
        return parse_json(text)
    return _parse_yaml(text)


def parse_json(text: str) -> Any:
    """A JSON document within the limits above."""
    _check_size(text)
    if len(text) < FAST_JSON_CHARS:
        document = _stdlib_json(text)
    else:
        try:
            document = _fast_json(text)
        except ValueError:  # not JSON as pydantic-core reads it: json says why (or reads it after all)
            document = _stdlib_json(text)
    _check_tree(document)
    return document


FAST_JSON_CHARS: Final = 64 * 1024
"""From this size, JSON is parsed with pydantic-core (an AppSpec or a payload file never is)."""


def _fast_json(text: str) -> Any:
    """pydantic-core's JSON parser (Rust): about 40 % faster than ``json`` on a 1 MB policy, which a
    hook parses on a cache miss (``scripts/bench_policy.py --store``). Imported here, on first use:
    not part of any init (a hook has pydantic loaded by then, to validate what it parses)."""
    from pydantic_core import from_json  # noqa: PLC0415

    return from_json(text)


def _stdlib_json(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise DocumentSyntaxError(f"invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}") from exc
    except RecursionError as exc:
        # NOTE: json's C scanner recurses per level and stops at the interpreter's recursion
        # limit (about 1 000); anything that deep is far past MAX_DEPTH, which the walk checks.
        raise _depth_error() from exc
    except ValueError as exc:  # e.g. an integer of more than 4 300 digits
        raise DocumentSyntaxError(f"invalid JSON: {exc}") from exc


def _check_tree(document: Any) -> None:
    """Depth and node count of parsed JSON (a tree: json never shares a node), without recursion.

    A container's children are counted before they are queued, so a list of a million items is
    refused without a million queue entries. Level by level, containers only (``json.loads`` makes
    exact dicts and lists): about twice as fast as a stack of every node (1 MB: 90 → 45 ms).
    """
    nodes = 1
    level: list[Any] = [document] if type(document) is dict or type(document) is list else []
    depth = 1
    while level:
        deeper: list[Any] = []
        for value in level:
            children: Any
            if type(value) is dict:
                nodes += 2 * len(value)  # keys and values
                children = value.values()
            else:
                nodes += len(value)
                children = value
            if nodes > MAX_NODES:
                raise _nodes_error()
            if children and depth >= MAX_DEPTH:
                raise _depth_error()
            deeper.extend([child for child in children if type(child) is dict or type(child) is list])
        level = deeper
        depth += 1


def _parse_yaml(text: str) -> Any:
    import yaml  # noqa: PLC0415

    try:
        return _load_bounded(text)
    except yaml.YAMLError as exc:
        raise DocumentSyntaxError(f"invalid YAML: {exc}") from exc


def _load_bounded(text: str) -> Any:
    import yaml  # noqa: PLC0415

    loader = _bounded_loader()(text)  # reads the text: unprintable characters fail here
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        _check_graph(node)
        try:
            return loader.construct_document(node)
        except yaml.YAMLError:
            raise
        except Exception as exc:
            # NOTE: PyYAML's safe constructors fail on some scalars with whatever Python raises:
            # '2024-02-30' (ValueError), '!!timestamp x' (AttributeError), '!!int' with no digits
            # (IndexError), 5 000 digits (ValueError). Each is a bad value, not a crash.
            raise DocumentSyntaxError(f"invalid YAML value: {type(exc).__name__}: {exc}") from exc
    finally:
        loader.dispose()


@cache
def _bounded_loader() -> type[yaml.SafeLoader]:
    """PyYAML's SafeLoader that stops composing at the depth, node and alias limits.

    NOTE: built on first YAML input (PyYAML is not imported for JSON, see above). Composing is
    where PyYAML recurses per level and where an alias is resolved, so that is where it is counted.
    """
    import yaml  # noqa: PLC0415
    from yaml.events import AliasEvent  # noqa: PLC0415

    class BoundedSafeLoader(yaml.SafeLoader):
        def __init__(self, stream: str) -> None:
            super().__init__(stream)
            self.depth = 0
            self.nodes = 0
            self.aliases = 0

        def compose_node(self, parent: yaml.Node | None, index: int) -> yaml.Node | None:
            if self.check_event(AliasEvent):
                self.aliases += 1
                if self.aliases > MAX_YAML_ALIASES:
                    raise DocumentLimitError(
                        f"the document has more than {MAX_YAML_ALIASES:,} YAML aliases (*name) "
                        "(MAX_YAML_ALIASES)",
                        "write the shared parts out, or share fewer of them",
                    )
                return super().compose_node(parent, index)
            self.nodes += 1
            if self.nodes > MAX_NODES:
                raise _nodes_error()
            self.depth += 1
            if self.depth > MAX_DEPTH:
                raise _depth_error()
            try:
                return super().compose_node(parent, index)
            finally:
                self.depth -= 1

    return BoundedSafeLoader


def _check_graph(root: yaml.Node) -> None:
    """Depth and node count of a composed YAML document as if every alias were expanded.

    Aliases make the document a graph: each node is measured once (post-order, without recursion)
    and an alias costs what it expands to, which is what the validation after parsing would walk.
    An alias inside its own anchor makes a cycle and is refused.
    """
    import yaml  # noqa: PLC0415

    def children(node: yaml.Node) -> list[yaml.Node]:
        if isinstance(node, yaml.MappingNode):
            return [part for pair in node.value for part in pair]
        if isinstance(node, yaml.SequenceNode):
            return list(node.value)
        return []

    measured: dict[int, tuple[int, int]] = {}  # id(node) → (expanded nodes, expanded depth)
    open_nodes: set[int] = set()  # the nodes on the path from the root to the current one
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, leaving = stack.pop()
        key = id(node)
        if leaving:
            open_nodes.discard(key)
            parts = [measured[id(child)] for child in children(node)]
            nodes = 1 + sum(n for n, _ in parts)
            depth = 1 + max((d for _, d in parts), default=0)
            if nodes > MAX_NODES:
                raise _nodes_error(expanded=True)
            if depth > MAX_DEPTH:
                raise _depth_error()
            measured[key] = (nodes, depth)
            continue
        if key in measured:
            continue
        open_nodes.add(key)
        stack.append((node, True))
        for child in children(node):
            if id(child) in open_nodes:
                raise DocumentLimitError(
                    "a YAML alias refers to a mapping or list that contains it (a recursive document)",
                    "replace the alias with the content it should repeat",
                )
            if id(child) not in measured:
                stack.append((child, False))
