"""The hash-locked requirement files ``make lock`` writes, and a strict reader for them.

Every lock is ``uv pip compile --universal --generate-hashes`` output: one ``name==version`` per
package (an environment marker where the package is needed on some platforms or Pythons only),
each with the sha256 of every file PyPI has for that version. pip installs them with
``--require-hashes``; ``sam build`` installs the layer from its lock (pip enters hash-checking mode
by itself when a requirements file carries hashes).

Used by scripts/check_artifacts.py (the built layer holds exactly the layer lock's packages) and
tests/unit/test_supply_chain.py. Standard library only, but for ``packaging`` to evaluate markers.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from packaging.markers import Marker

ROOT = Path(__file__).resolve().parent.parent
REQUIREMENTS = ROOT / "requirements"
# One lock per audience. The layer's lock is the file sam build reads.
LAYER_LOCK = ROOT / "layers" / "deployguard" / "requirements.txt"
CLI_LOCK = REQUIREMENTS / "cli.txt"
DEV_LOCK = REQUIREMENTS / "dev.txt"
TOOL_LOCKS = REQUIREMENTS / "tools"

_REQUIREMENT = re.compile(
    r"(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[^\]]*\])?==(?P<version>[^\s;\\]+)"
    r"\s*(?:;\s*(?P<marker>[^\\]*?))?\s*(?P<hashes>(?:--hash=sha256:[0-9a-f]{64}\s*)+)"
)
_HASH = re.compile(r"--hash=sha256:([0-9a-f]{64})")


class LockError(ValueError):
    """A lock line that is not ``name==version [; marker]`` with at least one sha256 hash."""


@dataclass(frozen=True)
class Pin:
    name: str  # normalised (PEP 503): lower case, runs of -_. as one -
    version: str
    marker: str | None
    hashes: tuple[str, ...]
    line: int

    def applies(self, environment: dict[str, str]) -> bool:
        return self.marker is None or Marker(self.marker).evaluate(environment)


def normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def all_locks() -> list[Path]:
    return [LAYER_LOCK, CLI_LOCK, DEV_LOCK, *sorted(TOOL_LOCKS.glob("*.txt"))]


def read_lock(path: Path) -> list[Pin]:
    """Every requirement of a lock, its backslash continuations joined. Raises ``LockError`` naming
    the file and line of anything else than a pinned, hashed requirement (an option such as
    ``-e``, ``--index-url`` or ``-r``, a range, a URL, a requirement without a hash)."""
    pins: list[Pin] = []
    logical, start = "", 0
    for number, raw in enumerate(path.read_text().splitlines(), start=1):
        text = raw.split(" #", 1)[0].strip() if not raw.lstrip().startswith("#") else ""
        if not text:
            continue
        if not logical:
            start = number
        logical += " " + text.removesuffix("\\")
        if text.endswith("\\"):
            continue
        match = _REQUIREMENT.fullmatch(logical.strip())
        if match is None:
            raise LockError(f"{path}:{start}: not a pinned, hashed requirement: {logical.strip()[:120]}")
        pins.append(
            Pin(
                name=normalize(match["name"]),
                version=match["version"],
                marker=match["marker"] or None,
                hashes=tuple(_HASH.findall(match["hashes"])),
                line=start,
            )
        )
        logical = ""
    if logical:
        raise LockError(f"{path}:{start}: the file ends inside a continued line")
    return pins


def environment(python: str = "3.12", machine: str = "x86_64") -> dict[str, str]:
    """PEP 508 marker values for CPython on Linux (Lambda's, and CI's)."""
    return {
        "implementation_name": "cpython",
        "platform_python_implementation": "CPython",
        "python_version": python,
        "python_full_version": f"{python}.0",
        "sys_platform": "linux",
        "platform_system": "Linux",
        "os_name": "posix",
        "platform_machine": machine,
        "platform_release": "",
        "platform_version": "",
        "implementation_version": f"{python}.0",
        "extra": "",
    }


def resolved(path: Path, python: str = "3.12", machine: str = "x86_64") -> dict[str, str]:
    """name → version that pip installs from the lock on CPython ``python`` on Linux ``machine``.
    Raises ``LockError`` if two pins of one package both apply there."""
    chosen: dict[str, str] = {}
    for pin in read_lock(path):
        if not pin.applies(environment(python, machine)):
            continue
        if pin.name in chosen:
            raise LockError(f"{path}:{pin.line}: {pin.name} pinned twice for Python {python}")
        chosen[pin.name] = pin.version
    return chosen
