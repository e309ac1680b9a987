"""The bytecode `make build` ships, and why: on Lambda only unchecked-hash bytecode is used.

SAM's zips date every file 1980-01-01 and /opt is read-only. These tests show what Python does with
each kind of .pyc once a source is dated like that, and that the artifact check tells them apart.
"""

from __future__ import annotations

import compileall
import os
import py_compile
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.handlers import ROOT, load_module

check_artifacts = load_module(ROOT / "scripts" / "check_artifacts.py", "check_artifacts")
ZIP_DATE = 315532800  # 1980-01-01


def build(tmp_path: Path, invalidation: py_compile.PycInvalidationMode) -> Path:
    """A one-module artifact compiled with ``invalidation``, then its source changed and dated 1980."""
    source = tmp_path / "answer.py"
    source.write_text("ANSWER = 'from the bytecode'\n")
    assert compileall.compile_dir(tmp_path, quiet=1, force=True, invalidation_mode=invalidation)
    source.write_text("ANSWER = 'compiled again'\n")  # tells which one Python ran
    os.utime(source, (ZIP_DATE, ZIP_DATE))
    return tmp_path


def answer_as_lambda_imports_it(path: Path) -> str:
    code = "import sys; sys.path.insert(0, sys.argv[1]); import answer; print(answer.ANSWER)"
    done = subprocess.run(
        [sys.executable, "-I", "-S", "-B", "-c", code, str(path)], capture_output=True, text=True, check=True
    )
    return done.stdout.strip()


@pytest.mark.skipif(sys.version_info[:2] != (3, 12), reason="the artifact check reads Python 3.12 bytecode")
def test_unchecked_hash_bytecode_is_used_and_passes_the_check(tmp_path: Path) -> None:
    artifact = build(tmp_path, py_compile.PycInvalidationMode.UNCHECKED_HASH)

    assert answer_as_lambda_imports_it(artifact) == "from the bytecode"
    assert check_artifacts.bytecode_problems(artifact) == (1, [])


@pytest.mark.skipif(sys.version_info[:2] != (3, 12), reason="the artifact check reads Python 3.12 bytecode")
def test_timestamp_bytecode_is_stale_on_lambda_and_fails_the_check(tmp_path: Path) -> None:
    artifact = build(tmp_path, py_compile.PycInvalidationMode.TIMESTAMP)

    assert answer_as_lambda_imports_it(artifact) == "compiled again"
    count, problems = check_artifacts.bytecode_problems(artifact)
    assert count == 1
    assert problems == [
        "1 module(s) with bytecode Lambda would not use (e.g. answer.py): build with `make build`, "
        "which writes unchecked-hash bytecode after sam build"
    ]


def test_a_module_without_bytecode_fails_the_check(tmp_path: Path) -> None:
    (tmp_path / "answer.py").write_text("ANSWER = 1\n")

    count, problems = check_artifacts.bytecode_problems(tmp_path)

    assert count == 1 and "1 module(s) with no bytecode (e.g. answer.py)" in problems[0]
