"""A Python function's ``requirements.txt``, installed as ``sam build`` would, for the embedded AWS.

``sam build`` runs ``pip install -r requirements.txt`` for the function's runtime into the
artefact it deploys. The rehearsal does the same with the runtime's own interpreter (found as the
local runner finds it) into a folder of the user's cache, keyed by the requirements' bytes and the
Python version, and deploys it as a layer (``python/`` on ``sys.path``, as ``/opt/python`` is on
Lambda): the function's own folder stays as it is, installed once per machine and requirements.

Where ``.aws-sam/build/<LogicalId>`` exists, the rehearsal deploys that instead and installs nothing.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Final

from deployguard.errors import DeployGuardError
from deployguard_cli.localaws.caches import locked, user_cache

__all__ = ["CACHE_VARIABLE", "DependencyError", "cache_root", "install_requirements"]

CACHE_VARIABLE: Final = "DEPLOYGUARD_PYTHON_DEPS_CACHE"
"""Where requirements are installed; default ``$XDG_CACHE_HOME/deployguard/python-deps``."""
PIP_TIMEOUT_SECONDS: Final = 300.0


class DependencyError(DeployGuardError):
    code = "REHEARSAL"


def cache_root() -> Path:
    return user_cache(CACHE_VARIABLE, "python-deps")


def install_requirements(requirements: Path, python: str, version: str) -> Path:
    """The layer folder (holding ``python/``) with ``requirements`` installed by ``python`` (the
    runtime's interpreter, Python ``version``); installed once, then taken from the cache."""
    key = hashlib.sha256(requirements.read_bytes() + version.encode()).hexdigest()[:16]
    root = cache_root()
    root.mkdir(parents=True, exist_ok=True)
    layer = root / f"python{version}-{key}"
    if (layer / "python").is_dir():
        return layer
    with locked(root / f"{layer.name}.lock"):
        if (layer / "python").is_dir():  # another process installed it while this one waited
            return layer
        staging = Path(tempfile.mkdtemp(prefix=f"{layer.name}-", dir=root))
        try:
            _pip_install(requirements, python, staging / "python")
            staging.rename(layer)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return layer


def _pip_install(requirements: Path, python: str, target: Path) -> None:
    command = [
        python,
        "-m",
        "pip",
        "install",
        "--quiet",
        "--disable-pip-version-check",
        "--no-input",
        "--target",
        str(target),
        "-r",
        str(requirements),
    ]
    try:
        done = subprocess.run(  # noqa: S603 - the runtime's interpreter, our arguments, no shell
            command, capture_output=True, text=True, timeout=PIP_TIMEOUT_SECONDS, check=False
        )
    except subprocess.TimeoutExpired as exc:
        raise DependencyError(
            f"pip install -r {requirements} did not finish within {PIP_TIMEOUT_SECONDS:.0f} s"
        ) from exc
    except OSError as exc:
        raise DependencyError(f"pip could not start with {python}: {exc.strerror or exc}") from exc
    if done.returncode != 0:
        errors = [line for line in done.stderr.splitlines() if line.startswith("ERROR")]
        raise DependencyError(
            f"installing {requirements} with {python} failed (exit {done.returncode}): "
            f"{'; '.join(errors[-3:]) or done.stderr.strip()[-300:]}. Run `sam build` and rehearse again: "
            "the rehearsal then deploys .aws-sam/build as it is"
        )
