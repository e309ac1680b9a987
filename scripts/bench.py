"""DeployGuard benchmarks, printed as ratios (never asserted in tests: timing is the machine's).

1. Cold init of the pre-traffic hook module in a fresh interpreter (imports, settings, the boto3
   clients it uses) relative to `import boto3` plus creating the same clients.
2. N smoke cases of equal latency L run concurrently: elapsed / L (sequential would be N).
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import textwrap
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# The clients the pre-traffic path always makes (Secrets Manager only when a variable names a secret).
CLIENTS = "('codedeploy', 'lambda', 'lambda', 'ssm')"

BASELINE = textwrap.dedent(
    f"""
    import time
    t = time.perf_counter()
    import boto3
    from botocore.config import Config
    for name in {CLIENTS}:
        boto3.client(name, config=Config())
    print((time.perf_counter() - t) * 1000)
    """
)

HOOK = textwrap.dedent(
    f"""
    import time, importlib.util, os
    t = time.perf_counter()
    spec = importlib.util.spec_from_file_location("app", {str(ROOT / "functions/pre_traffic/app.py")!r})
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    from deployguard import entrypoints
    from deployguard.settings import HookSettings
    settings = HookSettings.from_environ(os.environ)
    entrypoints.codedeploy(); entrypoints.lambda_adapter(); entrypoints.references()
    entrypoints.policy_store(settings.policy_parameter, settings.policy_cache_seconds)
    print((time.perf_counter() - t) * 1000)
    """
)


def template_globals() -> dict[str, str]:
    """The plain-string environment variables template.yaml's Globals give every function."""
    import yaml

    class Loader(yaml.SafeLoader):
        pass

    Loader.add_multi_constructor("!", lambda loader, suffix, node: None)
    template = yaml.load((ROOT / "template.yaml").read_text(), Loader=Loader)
    variables = template["Globals"]["Function"]["Environment"]["Variables"]
    return {k: v for k, v in variables.items() if isinstance(v, str)}


ENV = {
    **template_globals(),
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_ACCESS_KEY_ID": "bench",
    "AWS_SECRET_ACCESS_KEY": "bench",
    "DEPLOYGUARD_STAGE": "prod",
    "DEPLOYGUARD_POLICY_PARAMETER": "/deployguard/prod/policy",
    "PATH": "/usr/bin:/bin",
}


def fresh(code: str) -> float:
    answer = subprocess.run([sys.executable, "-c", code], env=ENV, capture_output=True, text=True, check=True)
    return float(answer.stdout.strip().splitlines()[-1])


def cold_init(runs: int = 15) -> None:
    # NOTE: interleaved (baseline, hook, baseline, hook…) so that noise from other tenants of the
    # machine hits both sides alike; the minimum is the least noisy estimate of the true cost.
    fresh(BASELINE)  # warm the OS file cache for both
    fresh(HOOK)
    baseline: list[float] = []
    hook: list[float] = []
    for _ in range(runs):
        baseline.append(fresh(BASELINE))
        hook.append(fresh(HOOK))
    for name, pick in (("median", statistics.median), ("best", min)):
        ratio = pick(hook) / pick(baseline)
        print(
            f"cold init ({name} of {runs} fresh interpreters): hook module {pick(hook):.0f} ms vs "
            f"import boto3 + same clients {pick(baseline):.0f} ms: ratio {ratio:.2f}x (target <= 1.30x)"
        )


def smoke_concurrency(n: int = 10, latency_ms: float = 200.0) -> None:
    from deployguard.policy import SmokeCase
    from deployguard.smoke import run_smoke
    from deployguard.snapshot import InvocationResult

    def invoker(_payload: bytes) -> InvocationResult:
        time.sleep(latency_ms / 1000)
        return InvocationResult(
            function_error=None, payload=b"{}", executed_version="2", latency_ms=latency_ms
        )

    cases = [SmokeCase(name=f"case{i}") for i in range(n)]
    started = time.perf_counter()
    run_smoke(cases, invoker, concurrency=n)
    elapsed = (time.perf_counter() - started) * 1000
    print(f"smoke: {n} cases of {latency_ms:.0f} ms each finished in {elapsed:.0f} ms")
    print(f"  ratio {elapsed / latency_ms:.2f}x L (target <= 1.50x; sequential would be {n}x)")


if __name__ == "__main__":
    cold_init()
    smoke_concurrency()
