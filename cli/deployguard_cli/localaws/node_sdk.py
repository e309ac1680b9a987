"""The AWS SDK for JavaScript that Lambda's Node.js runtimes ship, for functions on the embedded AWS.

On Lambda, ``nodejs16.x`` and older runtimes ship the SDK v2 (``require('aws-sdk')``) and
``nodejs18.x`` and newer ship the SDK v3 (``@aws-sdk/client-*`` ...): code uses it without packaging
it. Here :func:`provide` installs, with npm, the part of it a function's code names (its
``require``/``import`` specifiers, scanned once per code package), once per machine into the tool
cache (:func:`cache_root`), pinned (:data:`V2_VERSION`; every package as npm had it on
:data:`SNAPSHOT_DATE`), behind a file lock and an atomic rename so that two processes never install
it twice nor see half an install. The folders go on ``NODE_PATH`` after the function's own
``node_modules`` and its layers, so a function that bundles its own SDK gets its own, as on Lambda.

What cannot be installed (no npm, no registry) is not an error here: the function runs, and only a
``require``/``import`` of the missing package fails, with the reason and the fix in the message.
"""

from __future__ import annotations

import contextlib
import functools
import os
import re
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from deployguard_cli.localaws.caches import locked, user_cache

__all__ = [
    "CACHE_VARIABLE",
    "SNAPSHOT_DATE",
    "V2_VERSION",
    "RuntimeSdk",
    "cache_root",
    "provide",
    "ships",
]

CACHE_VARIABLE: Final = "DEPLOYGUARD_NODE_SDK_CACHE"
"""Where the SDK is installed; default ``$XDG_CACHE_HOME/deployguard/node-sdk`` (``~/.cache/…``)."""
V2_VERSION: Final = "2.1693.0"
"""The SDK v2 (``aws-sdk``) of the ``nodejs16.x`` and older runtimes: its last release."""
SNAPSHOT_DATE: Final = "2025-12-15"
"""Every package (the SDK v3 ones and all dependencies) is installed as npm had it that day
(``npm install --before``): one date pins a consistent SDK, as a runtime release does."""
LAST_V2_RUNTIME: Final = 16
"""``nodejs16.x`` is the last runtime that ships the SDK v2; ``nodejs18.x`` and later ship v3."""
NPM_TIMEOUT_SECONDS: Final = 300.0
RETRY_AFTER_SECONDS: Final = 60.0
"""A failed install is not tried again in this process before this many seconds."""

# NOTE: npm retries a failed fetch for up to minutes by default; these apply unless npm is told
# otherwise by the environment (npm_config_*), so a missing registry fails in about a second.
_NPM_DEFAULTS: Final = {
    "npm_config_fetch_retries": "1",
    "npm_config_fetch_retry_mintimeout": "1000",
    "npm_config_fetch_retry_maxtimeout": "5000",
}
_NPM_FLAGS: Final = (
    "--no-save",
    "--no-package-lock",
    "--no-audit",
    "--no-fund",
    "--no-update-notifier",
    "--ignore-scripts",
    "--omit=dev",
    "--loglevel=error",
)
# A module specifier in a require(...), import(...), `import ... from` or `export ... from`.
_SPECIFIER: Final = re.compile(
    rb"""(?:\brequire\s*\(\s*|\bimport\s*\(\s*|\bfrom\s*|\bimport\s*)["'](aws-sdk|@aws-sdk/[a-z0-9][\w.-]*)(?:/[^"'\s]*)?["']"""
)
_SOURCE_SUFFIXES: Final = frozenset({".js", ".mjs", ".cjs"})
_SDK_FOLDERS: Final = frozenset({"@aws-sdk", "@smithy", "aws-sdk"})
_URL_USERINFO: Final = re.compile(r"//[^/\s@]+@")


@dataclass(frozen=True)
class RuntimeSdk:
    """What a function gets of the SDK its runtime ships."""

    module_paths: tuple[str, ...] = ()
    """Folders for ``NODE_PATH``, after the function's own and its layers'."""
    v2_root: str | None = None
    """The installed ``aws-sdk`` v2 folder, whose global config the bootstrap points at the
    embedded AWS (None when the function bundles its own ``aws-sdk`` or does not use it)."""
    missing: Mapping[str, str] = field(default_factory=dict)
    """Package → why it could not be provided (appended to a "Cannot find module" error)."""
    esm_resolves_node_path: bool = False
    """ES modules find packages on ``NODE_PATH`` (the SDK and layers), as on ``nodejs18.x`` and later."""

    def bootstrap_spec(self, *, endpoint: str, closed: bool) -> dict[str, Any]:
        """What the Node.js bootstrap needs: the v2 folder and the global config it sets there
        (every service at ``endpoint``, path-style S3, no retries when nothing listens there)."""
        v2_config: dict[str, Any] = {"endpoint": endpoint, "s3ForcePathStyle": True}
        if closed:
            v2_config["maxRetries"] = 0
        return {
            "v2_root": self.v2_root,
            "v2_config": v2_config,
            "missing": dict(self.missing),
            "esm_resolves_node_path": self.esm_resolves_node_path,
        }


def cache_root() -> Path:
    """``$DEPLOYGUARD_NODE_SDK_CACHE``, else ``deployguard/node-sdk`` in the user's cache folder."""
    return user_cache(CACHE_VARIABLE, "node-sdk")


def ships(runtime: str, package: str) -> bool:
    """Whether Lambda's ``runtime`` (``nodejs16.x``) ships ``package`` (``aws-sdk``, ``@aws-sdk/…``)."""
    if _major(runtime) <= LAST_V2_RUNTIME:
        return package == "aws-sdk"
    return package.startswith("@aws-sdk/")


def provide(runtime: str, *, code_roots: Sequence[Path], module_dirs: Sequence[Path]) -> RuntimeSdk:
    """The SDK packages ``runtime`` ships that the code under ``code_roots`` (the function's folder,
    its layers') names and ``module_dirs`` (its own ``node_modules``, its layers') lack, installed
    if need be."""
    named = frozenset().union(*(_named_packages(root) for root in code_roots))
    paths: list[str] = []
    missing: dict[str, str] = {}
    v2_root = None
    for package in sorted(named):
        if any((folder / package / "package.json").is_file() for folder in module_dirs):
            continue  # the function's own copy wins: nothing to provide
        if not ships(runtime, package):
            missing[package] = _not_shipped(runtime, package)
            continue
        prefix = cache_root() / SNAPSHOT_DATE / package.replace("/", "+")
        spec = f"{package}@{V2_VERSION}" if package == "aws-sdk" else package
        reason = _installed(package, spec, prefix)
        if reason is not None:
            missing[package] = _explain(runtime, package, spec, reason)
            continue
        modules = (prefix / "node_modules").resolve()
        paths.append(str(modules))
        if package == "aws-sdk":
            v2_root = str(modules / "aws-sdk")
    return RuntimeSdk(
        module_paths=tuple(paths),
        v2_root=v2_root,
        missing=missing,
        esm_resolves_node_path=_major(runtime) > LAST_V2_RUNTIME,
    )


def _major(runtime: str) -> int:
    """``nodejs20.x`` → 20; ``nodejs`` (Lambda's first) → 0."""
    digits = re.match(r"nodejs(\d*)", runtime)
    return int(digits.group(1)) if digits and digits.group(1) else 0


@functools.lru_cache(maxsize=512)
def _named_packages(root: Path) -> frozenset[str]:
    """The SDK packages (``aws-sdk``, ``@aws-sdk/…``) the JavaScript under ``root`` requires or
    imports, the SDK's own copies left out. Cached: an extracted code folder never changes."""
    found: set[str] = set()
    for folder, subfolders, files in os.walk(root):
        subfolders[:] = [name for name in subfolders if name not in _SDK_FOLDERS]
        for name in files:
            if Path(name).suffix in _SOURCE_SUFFIXES:
                with contextlib.suppress(OSError):
                    source = Path(folder, name).read_bytes()
                    found.update(m.group(1).decode() for m in _SPECIFIER.finditer(source))
    return frozenset(found)


# --- installing --------------------------------------------------------------------------------

_failures: dict[Path, tuple[float, str]] = {}
_failures_lock = threading.Lock()


def _installed(package: str, spec: str, prefix: Path) -> str | None:
    """Install ``spec`` into ``prefix`` unless it is there; None when it is, else why not."""
    marker = prefix / "node_modules" / package / "package.json"
    if marker.is_file():
        return None
    with _failures_lock:
        failed = _failures.get(prefix)
    if failed is not None and time.monotonic() - failed[0] < RETRY_AFTER_SECONDS:
        return failed[1]
    reason = _install(package, spec, prefix, marker)
    if reason is not None:
        with _failures_lock:
            _failures[prefix] = (time.monotonic(), reason)
    return reason


def _install(package: str, spec: str, prefix: Path, marker: Path) -> str | None:
    npm = shutil.which("npm")
    if npm is None:
        return "npm is not on PATH"
    prefix.parent.mkdir(parents=True, exist_ok=True)
    with locked(prefix.parent / f".{prefix.name}.lock"):
        if marker.is_file():  # another process installed it while this one waited
            return None
        staging = Path(tempfile.mkdtemp(prefix=f".{prefix.name}.", dir=prefix.parent))
        try:
            reason = _npm_install(npm, spec, staging)
            if reason is None and not (staging / "node_modules" / package / "package.json").is_file():
                reason = f"npm install {spec} left no {package} package"
            if reason is None:
                if prefix.exists():  # a partial copy made by hand: the lock says nobody uses it
                    shutil.rmtree(prefix)
                staging.rename(prefix)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    return reason


def _npm_install(npm: str, spec: str, prefix: Path) -> str | None:
    env = dict(os.environ)
    lowered = {key.lower() for key in env}
    env.update({key: value for key, value in _NPM_DEFAULTS.items() if key not in lowered})
    command = [npm, "install", "--prefix", str(prefix), *_NPM_FLAGS, f"--before={SNAPSHOT_DATE}", spec]
    try:
        done = subprocess.run(  # noqa: S603 - npm from PATH, our arguments, no shell
            command,
            capture_output=True,
            text=True,
            env=env,
            cwd=prefix,
            timeout=NPM_TIMEOUT_SECONDS,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return f"npm install {spec} did not finish within {NPM_TIMEOUT_SECONDS:.0f} s"
    except OSError as exc:
        return f"npm could not start: {exc.strerror or exc}"
    if done.returncode == 0:
        return None
    return _npm_error(spec, done.returncode, done.stderr)


def _npm_error(spec: str, returncode: int, stderr: str) -> str:
    """npm's error code and first error line, e.g. ``ECONNREFUSED: FetchError: request to …``
    (a registry URL's user:password part is masked)."""
    lines = [line.removeprefix("npm error").removeprefix("npm ERR!").strip() for line in stderr.splitlines()]
    code = next((line.removeprefix("code ").strip() for line in lines if line.startswith("code ")), None)
    message = next(
        (line for line in lines if line and not line.startswith(("code ", "syscall ", "errno "))),
        f"exit status {returncode}",
    )
    summary = f"{code}: {message}" if code else message
    return f"npm install {spec} failed ({_URL_USERINFO.sub('//***@', summary)[:300]})"


def _not_shipped(runtime: str, package: str) -> str:
    if _major(runtime) <= LAST_V2_RUNTIME:
        shipped, other = "the AWS SDK v2 (aws-sdk)", f"{package} (the SDK v3, shipped from nodejs18.x on)"
    else:
        shipped, other = "the AWS SDK v3 (@aws-sdk/*)", f"{package} (the SDK v2, shipped up to nodejs16.x)"
    return (
        f"The {runtime} runtime ships {shipped}, not {other}: bundle {package} with the function "
        "(its node_modules or a layer's nodejs/node_modules), or move its code to the SDK its runtime ships."
    )


def _explain(runtime: str, package: str, spec: str, reason: str) -> str:
    return (
        f"The {runtime} runtime ships {package}; the embedded AWS installs it ({spec}, as of "
        f"{SNAPSHOT_DATE}) with npm into {cache_root()} (${CACHE_VARIABLE}), and could not: {reason}. "
        f"Bundle {package} with the function (its node_modules or a layer's nodejs/node_modules), "
        "or let npm reach its registry (npm config get registry) and invoke again."
    )
