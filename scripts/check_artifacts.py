"""Check what ``sam build`` produced, and print the size of every built artifact.

For each function and layer of ``.aws-sam/build/template.yaml``:

- sizes: files, unzipped bytes, and the zipped size Lambda counts against its 50 MB (direct
  upload) limit; function + layers unzipped must stay under Lambda's 250 MB;
- the layer holds no test, CLI or build-only libraries (moto, pytest, hypothesis, rich,
  deployguard_cli, …) and no boto3/botocore (the python3.12 runtime provides them);
- the layer holds exactly the distributions its lock pins (layers/deployguard/requirements.txt,
  for Python 3.12 on the template's architecture), at the locked versions: what CI tested with
  (.venv is installed from a lock constrained to the same pins) is what ships;
- every native extension is built for the template's architecture (ELF machine);
- every ``.py`` file has Python 3.12 bytecode that Lambda will use: an unchecked-hash ``.pyc``
  (``make build`` writes them; SAM's zips date every file 1980-01-01, so timestamp-checked
  bytecode would be stale on Lambda and every module compiled again at each cold start);
- when the build host has that architecture: every ``deployguard`` module and every function's
  ``app`` module imports under Python 3.12 from the build folder alone — ``python3.12 -I -S`` (no
  site-packages, no user site, no PYTHON* variables) with only the function folder, the layer's
  ``python/`` and a stand-in for the Lambda runtime's boto3 (``--runtime-site``, boto3 and its
  dependencies installed by ``make`` with ``pip --target``) on ``sys.path``, in Lambda's order.
  The example orders function is imported with neither layer nor boto3: it is stdlib only.

Exit status 0 when every check passes, 1 otherwise.
"""

from __future__ import annotations

import argparse
import importlib.util
import io
import json
import platform
import subprocess
import sys
import zipfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from samtranslator.yaml_helper import yaml_parse

from scripts.locks import LAYER_LOCK, LockError, normalize, resolved

ROOT = Path(__file__).resolve().parent.parent
BUILD_DIR = ROOT / ".aws-sam" / "build"
RUNTIME_SITE = ROOT / ".tools" / "lambda-runtime"

# Top-level names that must never ship in the layer.
FORBIDDEN = {
    "moto": "test library (embedded AWS for tests and the rehearsal)",
    "pytest": "test library",
    "_pytest": "test library",
    "hypothesis": "test library",
    "rich": "CLI-only library",
    "deployguard_cli": "the CLI package",
    "mypy": "development tool",
    "ruff": "development tool",
    "samtranslator": "build tool",
    "cfnlint": "build tool",
    "boto3": "provided by the Lambda python3.12 runtime",
    "botocore": "provided by the Lambda python3.12 runtime",
    "s3transfer": "provided by the Lambda python3.12 runtime",
    "tests": "test code",
}
ELF_MACHINES = {0x3E: "x86_64", 0xB7: "arm64"}
HOST_ARCHITECTURES = {"x86_64": "x86_64", "amd64": "x86_64", "aarch64": "arm64", "arm64": "arm64"}
LAMBDA_UNZIPPED_LIMIT = 250 * 1024 * 1024
LAMBDA_ZIPPED_UPLOAD_LIMIT = 50 * 1024 * 1024


@dataclass
class Artifact:
    logical_id: str
    kind: str  # "function" or "layer"
    path: Path
    layers: list[str] = field(default_factory=list)  # logical ids of this template's layers
    handler: str | None = None


@dataclass
class Size:
    files: int
    unzipped: int
    zipped: int


def load_built_template(build_dir: Path) -> dict[str, Any]:
    template: dict[str, Any] = yaml_parse((build_dir / "template.yaml").read_text())
    return template


def artifacts(template: dict[str, Any], build_dir: Path) -> list[Artifact]:
    found: list[Artifact] = []
    for logical_id, resource in template.get("Resources", {}).items():
        properties = resource.get("Properties", {})
        if resource.get("Type") == "AWS::Serverless::LayerVersion":
            found.append(Artifact(logical_id, "layer", build_dir / str(properties["ContentUri"])))
        elif resource.get("Type") == "AWS::Serverless::Function":
            layers = [
                item["Ref"]
                for item in properties.get("Layers", [])
                if isinstance(item, dict) and "Ref" in item
            ]
            handler = properties.get("Handler") or template.get("Globals", {}).get("Function", {}).get(
                "Handler"
            )
            found.append(
                Artifact(logical_id, "function", build_dir / str(properties["CodeUri"]), layers, handler)
            )
    return sorted(found, key=lambda a: (a.kind != "layer", a.logical_id))


def _files(path: Path) -> Iterator[Path]:
    return (p for p in sorted(path.rglob("*")) if p.is_file() and "__pycache__" not in p.parts)


def measure(path: Path) -> Size:
    """What ships: every file, bytecode included."""
    buffer = io.BytesIO()
    files = unzipped = 0
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for file in (p for p in sorted(path.rglob("*")) if p.is_file()):
            files += 1
            unzipped += file.stat().st_size
            archive.write(file, file.relative_to(path).as_posix())
    return Size(files=files, unzipped=unzipped, zipped=len(buffer.getvalue()))


def forbidden_content(layer_python: Path) -> list[str]:
    problems = []
    for entry in sorted(layer_python.iterdir()):
        name = entry.name.split("-", 1)[0] if entry.name.endswith((".dist-info", ".data")) else entry.stem
        top = name.lower().replace("-", "_")
        if top in FORBIDDEN:
            problems.append(f"{entry.name}: {FORBIDDEN[top]} must not ship in the layer")
    return problems


LOCK_MACHINES = {"x86_64": "x86_64", "arm64": "aarch64"}


def lock_problems(layer_python: Path, architecture: str, lock: Path = LAYER_LOCK) -> tuple[int, list[str]]:
    """The layer's distributions (``*.dist-info``) against the lock's pins for Python 3.12 on
    ``architecture``: none missing, none extra, every version the locked one."""
    try:
        pinned = resolved(lock, "3.12", LOCK_MACHINES.get(architecture, architecture))
    except (OSError, LockError) as error:
        return 0, [f"cannot read the layer lock: {error}"]
    shipped: dict[str, str] = {}
    for info in layer_python.glob("*.dist-info"):
        name, _, version = info.name.removesuffix(".dist-info").partition("-")
        shipped[normalize(name)] = version
    problems = [
        f"{name}=={version} is locked but not in the layer"
        for name, version in sorted(pinned.items())
        if name not in shipped
    ]
    problems += [
        f"{name} {version} ships but is not in {lock.name}"
        for name, version in sorted(shipped.items())
        if name not in pinned
    ]
    problems += [
        f"{name} {shipped[name]} ships, the lock pins {version}"
        for name, version in sorted(pinned.items())
        if name in shipped and shipped[name] != version
    ]
    return len(shipped), problems


def elf_architecture(path: Path) -> str | None:
    with path.open("rb") as handle:
        header = handle.read(20)
    if header[:4] != b"\x7fELF" or len(header) < 20:
        return None
    little_endian = header[5] == 1
    machine = int.from_bytes(header[18:20], "little" if little_endian else "big")
    return ELF_MACHINES.get(machine, hex(machine))


def native_mismatches(path: Path, architecture: str) -> tuple[int, list[str]]:
    count, problems = 0, []
    for file in _files(path):
        if file.suffix != ".so" and ".so." not in file.name:
            continue
        machine = elf_architecture(file)
        if machine is None:
            continue
        count += 1
        if machine != architecture:
            problems.append(f"{file.relative_to(path)} is built for {machine}, not {architecture}")
    return count, problems


PYC_UNCHECKED_HASH = 0b01  # PEP 552 flags: hash-based, source not checked


def bytecode_problems(path: Path) -> tuple[int, list[str]]:
    """Every .py under ``path`` needs a Python 3.12 unchecked-hash .pyc beside it (``__pycache__``)."""
    magic = importlib.util.MAGIC_NUMBER if sys.version_info[:2] == (3, 12) else None
    count, missing, stale = 0, [], []
    for source in _files(path):
        if source.suffix != ".py":
            continue
        count += 1
        compiled = source.parent / "__pycache__" / f"{source.stem}.cpython-312.pyc"
        try:
            header = compiled.read_bytes()[:8]
        except OSError:
            missing.append(str(source.relative_to(path)))
            continue
        if (magic is not None and header[:4] != magic) or int.from_bytes(
            header[4:8], "little"
        ) != PYC_UNCHECKED_HASH:
            stale.append(str(source.relative_to(path)))
    problems = []
    for kind, files in (("no bytecode", missing), ("bytecode Lambda would not use", stale)):
        if files:
            problems.append(
                f"{len(files)} module(s) with {kind} (e.g. {files[0]}): build with `make build`, which "
                "writes unchecked-hash bytecode after sam build"
            )
    return count, problems


IMPORT_PROBE = """
import importlib, json, pkgutil, sys
paths, package, forbidden = json.loads(sys.argv[1]), sys.argv[2], json.loads(sys.argv[3])
sys.path[:0] = paths
imported = []
if package:
    root = importlib.import_module(package)
    imported.append(root.__name__)
    for info in pkgutil.walk_packages(root.__path__, prefix=package + "."):
        importlib.import_module(info.name)
        imported.append(info.name)
handler = importlib.import_module("app")
assert callable(getattr(handler, "handler", None)), "app.handler is not callable"
imported.append("app")
leaked = sorted({m.split(".")[0] for m in sys.modules} & set(forbidden) - {"boto3", "botocore", "s3transfer"})
origins = {m: getattr(sys.modules[m], "__file__", None) for m in ("app", package) if m}
print(json.dumps({"imported": len(imported), "leaked": leaked, "origins": origins}))
"""


def import_check(
    python: str, artifact: Artifact, layer_paths: list[Path], runtime_site: Path | None
) -> tuple[str, list[str]]:
    """Import the function's app (and the deployguard package when a layer is attached)."""
    paths = [str(artifact.path), *(str(p / "python") for p in layer_paths)]
    if runtime_site is not None and layer_paths:
        paths.append(str(runtime_site))
    package = "deployguard" if layer_paths else ""
    command = [
        python,
        "-I",
        "-S",
        "-B",  # the probe must not write bytecode into the build
        "-c",
        IMPORT_PROBE,
        json.dumps(paths),
        package,
        json.dumps(sorted(FORBIDDEN)),
    ]
    environment = {"AWS_DEFAULT_REGION": "us-east-1", "PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"}
    done = subprocess.run(
        command, capture_output=True, text=True, env=environment, cwd="/", check=False, timeout=120
    )
    if done.returncode != 0:
        return "import FAILED", [f"{artifact.logical_id}: import failed:\n{done.stderr.strip()[-2000:]}"]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    problems = [f"{artifact.logical_id}: importing it loaded {name}" for name in report["leaked"]]
    for module, origin in report["origins"].items():
        allowed = [str(artifact.path), *(str(p) for p in layer_paths)]
        if origin and not any(origin.startswith(prefix) for prefix in allowed):
            problems.append(f"{artifact.logical_id}: {module} was imported from {origin}, outside the build")
    return f"imports ok ({report['imported']} modules)", problems


def _mb(size: int) -> str:
    """Human size, fixed width: KiB below 1 MiB, else MiB."""
    if size < 1024 * 1024:
        return f"{size / 1024:7.1f} KB"
    return f"{size / 1024 / 1024:7.2f} MB"


def host_architecture() -> str:
    return HOST_ARCHITECTURES.get(platform.machine().lower(), platform.machine())


@dataclass
class Run:
    """What every artifact check needs: the interpreter, the runtime stand-in, the architecture."""

    python: str
    runtime_site: Path | None
    architecture: str
    build_dir: Path
    sizes: dict[str, Size]
    layers: dict[str, Artifact]

    @property
    def can_import(self) -> bool:
        return host_architecture() == self.architecture


def check_layer(artifact: Artifact, run: Run) -> tuple[list[str], list[str]]:
    python_dir = artifact.path / "python"
    forbidden = forbidden_content(python_dir)
    count, mismatched = native_mismatches(artifact.path, run.architecture)
    modules, bytecode = bytecode_problems(artifact.path)
    distributions, unlocked = lock_problems(python_dir, run.architecture)
    notes = [
        f"{count} native modules {'ok' if not mismatched else 'WRONG ARCH'}",
        f"{modules} modules {'with bytecode' if not bytecode else 'MISSING BYTECODE'}",
        "no test/CLI libraries" if not forbidden else "FORBIDDEN CONTENT",
        f"{distributions} distributions {'= its lock' if not unlocked else 'NOT ITS LOCK'}",
    ]
    return notes, [f"{artifact.logical_id}: {p}" for p in forbidden + mismatched + bytecode + unlocked]


def check_function(artifact: Artifact, run: Run) -> tuple[list[str], list[str]]:
    modules, bytecode = bytecode_problems(artifact.path)
    notes = [f"{modules} module(s) {'with bytecode' if not bytecode else 'MISSING BYTECODE'}"]
    problems = [f"{artifact.logical_id}: {p}" for p in bytecode]
    attached = [run.layers[name].path for name in artifact.layers if name in run.layers]
    total = run.sizes[artifact.logical_id].unzipped + sum(
        run.sizes[name].unzipped for name in artifact.layers if name in run.sizes
    )
    if total > LAMBDA_UNZIPPED_LIMIT:
        problems.append(f"{artifact.logical_id}: {_mb(total)} unzipped with its layers exceeds 250 MB")
    if run.can_import:
        note, failed = import_check(run.python, artifact, attached, run.runtime_site)
        notes.append(note)
        problems += failed
    else:
        notes.append(f"import not run: {run.architecture} build on a {host_architecture()} host")
    return notes, problems


def python_version(python: str) -> str:
    return subprocess.run(
        [python, "-I", "-S", "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--build-dir", type=Path, default=BUILD_DIR)
    parser.add_argument(
        "--python", default="python3.12", help="the Python 3.12 interpreter (Lambda's runtime)"
    )
    parser.add_argument(
        "--runtime-site", type=Path, default=RUNTIME_SITE, help="boto3 as the runtime provides it"
    )
    parser.add_argument("--architecture", help="the build's architecture (default: the template's default)")
    args = parser.parse_args(argv)

    template = load_built_template(args.build_dir)
    version = python_version(args.python)
    problems: list[str] = []
    if version != "3.12":
        problems.append(f"{args.python} is Python {version}; the Lambda runtime is python3.12")
    runtime_site = args.runtime_site if (args.runtime_site / "boto3").is_dir() else None
    if runtime_site is None:
        problems.append(
            f"no boto3 under {args.runtime_site}: run `make artifacts` (it installs the runtime stand-in)"
        )
    found = artifacts(template, args.build_dir)
    run = Run(
        python=args.python,
        runtime_site=runtime_site,
        architecture=args.architecture or str(template["Parameters"]["Architecture"]["Default"]),
        build_dir=args.build_dir,
        sizes={a.logical_id: measure(a.path) for a in found if a.path.is_dir()},
        layers={a.logical_id: a for a in found if a.kind == "layer"},
    )
    print(f"Built artifacts in {args.build_dir} ({run.architecture}; Python {version}):")
    print(f"  {'artifact':<26} {'kind':<9} {'files':>6} {'unzipped':>11} {'zipped':>11}  checks")
    for artifact in found:
        if not artifact.path.resolve().is_relative_to(args.build_dir.resolve()) or not artifact.path.is_dir():
            problems.append(f"{artifact.logical_id}: not built by sam build ({artifact.path})")
            print(f"  {artifact.logical_id:<26} {artifact.kind:<9} NOT BUILT")
            continue
        check = check_layer if artifact.kind == "layer" else check_function
        notes, failed = check(artifact, run)
        problems += failed
        size = run.sizes[artifact.logical_id]
        if size.zipped > LAMBDA_ZIPPED_UPLOAD_LIMIT:
            notes.append("over 50 MB zipped: sam deploy uploads it through S3")
        print(
            f"  {artifact.logical_id:<26} {artifact.kind:<9} {size.files:>6} {_mb(size.unzipped)} "
            f"{_mb(size.zipped)}  {'; '.join(notes)}"
        )
    total_unzipped = sum(s.unzipped for s in run.sizes.values())
    total_zipped = sum(s.zipped for s in run.sizes.values())
    print(f"  {'total':<26} {'':<9} {'':>6} {_mb(total_unzipped)} {_mb(total_zipped)}")
    if problems:
        print("\nArtifact check FAILED:", file=sys.stderr)
        for problem in problems:
            print(f"  - {problem}", file=sys.stderr)
        return 1
    print("Artifact check passed.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
