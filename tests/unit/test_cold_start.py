"""What a hook's cold start imports. Timing belongs to scripts/bench.py; these tests pin the
structure that keeps the init small, so a stray import cannot undo it unnoticed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

from tests.support.handlers import ROOT, load_module

ENVIRONMENT = {
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "DEPLOYGUARD_STAGE": "prod",
    "DEPLOYGUARD_POLICY_BUCKET": "deployguard-prod-policies-123456789012-us-east-1",
    "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
}


def imported_after(*parts: str) -> set[str]:
    """The modules a fresh interpreter has imported after running ``parts`` in turn."""
    script = (
        "".join(textwrap.dedent(part) for part in parts)
        + "\nimport json, sys\nprint(json.dumps(sorted(sys.modules)))"
    )
    answer = subprocess.run(
        [sys.executable, "-c", script], env=ENVIRONMENT, capture_output=True, text=True, check=True, cwd=ROOT
    )
    return set(json.loads(answer.stdout.splitlines()[-1]))


def modules_after(*parts: str) -> set[str]:
    """The top-level packages a fresh interpreter has imported after running ``parts`` in turn."""
    return {name.split(".")[0] for name in imported_after(*parts)}


# The init scripts/bench.py measures: the handler module, its settings and its clients.
HOOK_INIT = load_module(ROOT / "scripts" / "bench.py", "bench").HOOK


def test_the_pre_traffic_init_imports_neither_pydantic_nor_yaml_nor_re2() -> None:
    """Handler, settings and clients: pydantic and RE2 wait for the first policy parse, YAML for
    YAML input."""
    loaded = modules_after(HOOK_INIT)

    assert {"deployguard", "aws_lambda_powertools", "boto3"} <= loaded
    parsers = {"pydantic", "pydantic_core", "yaml", "re2", "_re2"}
    assert not loaded & parsers, loaded & parsers


def test_the_pre_traffic_init_leaves_the_other_functions_use_cases_out() -> None:
    """Each function pays for its own use case only (the composition root imports the others late)."""
    loaded = imported_after(HOOK_INIT)

    assert {"deployguard.pre_traffic", "deployguard.guard", "deployguard.hook"} <= loaded
    others = {
        "deployguard.post_traffic",
        "deployguard.bake_step",
        "deployguard.alarm_rollback",
        "deployguard.watch",
        "deployguard.aws.cloudwatch",
        "deployguard.aws.stepfunctions",
    }
    assert not loaded & others, loaded & others


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
    entrypoints.policy_store(settings.policy_bucket, settings.policy_cache_seconds).prepare()
    for thread in threading.enumerate():
        if thread.name == "deployguard-policy-parser":
            thread.join()
    """,
    )

    assert "pydantic" in loaded and "yaml" not in loaded
