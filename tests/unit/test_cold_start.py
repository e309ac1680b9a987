"""What a hook's cold start imports. Timing belongs to scripts/bench.py; these tests pin the
structure that keeps the init small, so a stray import cannot undo it unnoticed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

from tests.conftest import ROOT, load_module

ENVIRONMENT = {
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "DEPLOYGUARD_STAGE": "prod",
    "DEPLOYGUARD_POLICY_PARAMETER": "/deployguard/prod/policy",
    "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
}


def modules_after(*parts: str) -> set[str]:
    """The top-level packages a fresh interpreter has imported after running ``parts`` in turn."""
    script = (
        "".join(textwrap.dedent(part) for part in parts)
        + "\nimport json, sys\nprint(json.dumps(sorted({m.split('.')[0] for m in sys.modules})))"
    )
    answer = subprocess.run(
        [sys.executable, "-c", script], env=ENVIRONMENT, capture_output=True, text=True, check=True, cwd=ROOT
    )
    return set(json.loads(answer.stdout.splitlines()[-1]))


# The init scripts/bench.py measures: the handler module, its settings and its clients.
HOOK_INIT = load_module(ROOT / "scripts" / "bench.py", "bench").HOOK


def test_the_pre_traffic_init_imports_neither_pydantic_nor_yaml() -> None:
    """Handler, settings and clients: pydantic waits for the first policy parse, YAML for YAML input."""
    loaded = modules_after(HOOK_INIT)

    assert {"deployguard", "aws_lambda_powertools", "boto3"} <= loaded
    assert not loaded & {"pydantic", "pydantic_core", "yaml"}, loaded & {"pydantic", "pydantic_core", "yaml"}


def test_the_first_policy_parse_brings_pydantic_in_and_validates_the_policy() -> None:
    document = json.dumps({"version": 1, "stage": "prod", "functions": {"orders": {}}})
    loaded = modules_after(
        HOOK_INIT,
        f"""
    from deployguard.policy import load_policy
    from deployguard.stages import Stage
    assert load_policy({document!r}, "ssm", stage=Stage.PROD).for_function("orders") is not None
    """,
    )

    assert "pydantic" in loaded and "yaml" not in loaded


def test_an_invocation_builds_the_parser_in_the_background() -> None:
    """What the first invocation starts before its first AWS call (PolicyStore.prepare)."""
    loaded = modules_after(
        HOOK_INIT,
        """
    import threading
    entrypoints.policy_store(settings.policy_parameter, settings.policy_cache_seconds).prepare()
    for thread in threading.enumerate():
        if thread.name == "deployguard-policy-parser":
            thread.join()
    """,
    )

    assert "pydantic" in loaded and "yaml" not in loaded
