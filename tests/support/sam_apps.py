"""Public SAM apps (tests/fixtures/sam_apps) as a team has them: a git repository of its own (the
live version its last commit, the new one its working tree), its policy, its --setup; and
``deployguard rehearse --json`` run on them. Used by tests/e2e/test_rehearse_app.py and
scripts/bench_rehearse_app.py."""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from deployguard_cli import main as cli

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "sam_apps"
GIT_ENV = {
    "GIT_AUTHOR_NAME": "team",
    "GIT_AUTHOR_EMAIL": "team@example.com",
    "GIT_COMMITTER_NAME": "team",
    "GIT_COMMITTER_EMAIL": "team@example.com",
}

SAFE_LAMBDA_POLICY = """\
version: 1
stage: dev
application: safe-lambda
functions:
  returnS3Buckets:
    match: '*-returnS3Buckets-*'
    config:
      stage_variable: null    # the app has no STAGE variable
      required: []
      settings:
        deprecated_runtime: warning   # the team knows nodejs6.10 is old: dev reports it
    smoke:
      - name: s3
        payload_file: s3.json
        max_latency_ms: 10000   # a cold start loads aws-sdk v2 (about 0.6 s alone, seconds on a busy machine)
        expect: [{path: $.statusCode, equals: 200}, {path: $.body, type: number}]
    version_health:
      max_error_rate: 0.05
      min_invocations: 5
"""

NO_ASSERTIONS_POLICY = """\
version: 1
stage: dev
application: sessions
functions:
  BaseFunction:
    match: '*-BaseFunction-*'
    config:
      stage_variable: null
      settings:
        deprecated_runtime: warning
    smoke:
      - name: base
        payload: {}
    post_traffic_smoke: false
"""


def team_repository(tmp_path: Path, fixture: str, files: dict[str, str] | None = None) -> Path:
    """The fixture app as a team's repository: copied, ``files`` written, everything committed."""
    app = tmp_path / fixture
    shutil.copytree(FIXTURES / fixture, app)
    for name, text in (files or {}).items():
        (app / name).parent.mkdir(parents=True, exist_ok=True)
        (app / name).write_text(text)
    commit_all(app)
    return app


def commit_all(folder: Path, message: str = "the live release") -> None:
    """``folder`` as a git repository whose one commit holds all its files."""
    env = {**os.environ, **GIT_ENV}
    for command in (["init", "-q"], ["add", "-A"], ["commit", "-q", "-m", message]):
        subprocess.run(["git", *command], cwd=folder, env=env, check=True)


def rehearse(*args: str) -> tuple[int, dict[str, Any]]:
    """``deployguard rehearse --json …``: its exit code and its document."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = cli.main(["rehearse", "--json", *args])
    return code, json.loads(out.getvalue()) if out.getvalue() else {}


def by_name(document: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {s["scenario"]: s for s in document["scenarios"]}


def seed_buckets(count: int) -> str:
    """A --setup command: ``count`` buckets in the embedded AWS (what returnS3Buckets lists)."""
    script = f"import boto3; s3 = boto3.client('s3'); [s3.create_bucket(Bucket=f'team-bucket-{{i}}') for i in range({count})]"
    return f'{sys.executable} -c "{script}"'


def echo_app(tmp_path: Path) -> tuple[Path, list[str]]:
    """adhorn/aws-lambda-sam-application's Python ``Echo`` function as a team that moved it to this
    machine's Python and pinned what its unpinned requirements no longer resolve to (the X-Ray SDK
    that Powertools' Tracer imports, ssm-cache 2 that chaos-lambda 0.3 imports); and the
    ``rehearse`` arguments it needs (its parameter without default, an SSM parameter by --setup)."""
    runtime = f"python{sys.version_info.major}.{sys.version_info.minor}"
    fixture = FIXTURES / "adhorn-aws-lambda-sam-application"
    template = (fixture / "template.yaml").read_text().replace("Runtime: python3.7", f"Runtime: {runtime}")
    upstream = (fixture / "application" / "requirements.txt").read_text().rstrip("\n")
    requirements = (
        f"{upstream}\naws-xray-sdk\nssm-cache<3\n"  # Tracer's import; chaos-lambda 0.3's ssm_cache.cache
    )
    policy = """\
version: 1
stage: dev
application: echo
functions:
  Echo:
    match: '*-Echo-*'
    config:
      stage_variable: null
      required: [CHAOS_PARAM, TABLE_NAME]
    smoke:
      - name: event
        payload_file: events/event.json
        max_latency_ms: 10000   # a cold start: Powertools, X-Ray, chaos-lambda and an SSM read
        expect: [{path: $.statusCode, equals: 200}]
"""
    app = team_repository(
        tmp_path,
        "adhorn-aws-lambda-sam-application",
        {
            "template.yaml": template,
            "application/requirements.txt": requirements,
            "deployguard-dev.yaml": policy,
        },
    )
    seed = (
        "import boto3; boto3.client('ssm').put_parameter(Name='chaoslambda.config', "
        "Value='{\\\"is_enabled\\\": false}', Type='String')"
    )

    return app, [
        "--template",
        str(app / "template.yaml"),
        "--parameter-overrides",
        "YourEmail=team@example.com",
        "--setup",
        f'{sys.executable} -c "{seed}"',
    ]
