"""DeployGuard benchmarks, printed as ratios (never asserted in tests: timing is the machine's).

1. Cold init of the pre-traffic hook module in a fresh interpreter (imports, settings, the boto3
   clients it uses) relative to `import boto3` plus creating the same clients. Measured twice:
   - wall time, interleaved fresh interpreters (best and median: a shared VM is noisy);
   - instructions executed, counted by valgrind (callgrind) when it is installed: the same count
     on every run, whatever else the machine does. Interpreter start-up is subtracted from both.
   Then the first policy parse, which the first invocation adds (pydantic is imported there, not
   at init), so the whole cold start is on the record too.
   And init plus the first invocation of the real handler on moto, with a latency added to every AWS
   call (as the network adds on AWS), with and without the policy parser built ahead on a
   background thread (``PolicyStore.prepare``): what overlapping it with the network waits saves.
   Last, the init as Lambda runs it, from the built artifacts (``make build``): sources dated
   1980-01-01 as SAM's zips date them, bytecode never written (``/opt`` is read-only), with the
   layer's unchecked-hash bytecode vs the timestamp-checked bytecode pip writes (what a bare
   ``sam build`` ships, stale on Lambda: every module is compiled again).
2. N smoke cases of equal latency L at the policy's default ``smoke_concurrency``: elapsed / L
   (sequential would be N), and at the settings shipped before (8 by default, 4 in the shipped policies).

Run from the repository root: .venv/bin/python -m scripts.bench [--no-instructions] (``make bench``)
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# The clients the pre-traffic path always makes (Secrets Manager only when a variable names a secret).
CLIENTS = "('codedeploy', 'lambda', 'lambda', 'ssm')"

START = "import time, importlib.util, os\n"  # what every measured script does before its clock starts

BASELINE = START + textwrap.dedent(
    f"""
    t = time.perf_counter()
    import boto3
    from botocore.config import Config
    for name in {CLIENTS}:
        boto3.client(name, config=Config())
    print((time.perf_counter() - t) * 1000)
    """
)

# What the pre-traffic hook's init does once its handler module is loaded: settings and clients.
SETTINGS_AND_CLIENTS = textwrap.dedent(
    """
    from deployguard import entrypoints
    from deployguard.settings import HookSettings
    settings = HookSettings.from_environ(os.environ)
    entrypoints.codedeploy_adapter(); entrypoints.lambda_adapter(); entrypoints.references_adapter()
    entrypoints.policy_store(settings.policy_bucket, settings.policy_cache_seconds)
    """
)
ELAPSED = "print((time.perf_counter() - t) * 1000)\n"

HOOK = (
    START
    + textwrap.dedent(
        f"""
        t = time.perf_counter()
        spec = importlib.util.spec_from_file_location("app", {str(ROOT / "functions/pre_traffic/app.py")!r})
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        """
    )
    + SETTINGS_AND_CLIENTS
    + ELAPSED
)


# The hook's init, then what its first invocation adds beyond AWS calls: parsing the stage's
# baseline and the function's application document, and validating the function's entry (stored
# in the policy bucket as JSON, so no YAML parser is involved).
def _published(path: str) -> str:
    import json

    import yaml

    return json.dumps(yaml.safe_load((ROOT / "policies" / path).read_text()))


FIRST_PARSE = HOOK.removesuffix(ELAPSED) + textwrap.dedent(
    f"""
    t2 = time.perf_counter()
    from deployguard.policy import application_document, effective_policy, load_baseline
    from deployguard.stages import Stage
    baseline = load_baseline({_published("prod/baseline.yaml")!r}, "s3", stage=Stage.PROD)
    document = application_document({_published("prod/apps/orders.yaml")!r}, "s3")
    effective_policy(baseline, document, "s3", application="orders", stage=Stage.PROD, function_name="deployguard-prod-orders")
    print((time.perf_counter() - t2) * 1000)
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
    "DEPLOYGUARD_POLICY_BUCKET": "deployguard-prod-policies-123456789012-us-east-1",
    "PATH": "/usr/bin:/bin",
}


def fresh(code: str) -> float:
    # cwd: the measured scripts import tests.support (the benchmarks' world) from the repository root
    answer = subprocess.run(
        [sys.executable, "-c", code], env=ENV, cwd=ROOT, capture_output=True, text=True, check=True
    )
    return float(answer.stdout.strip().splitlines()[-1])


def cold_init(runs: int = 15) -> None:
    # NOTE: interleaved (baseline, hook, baseline, hook…) so that noise from other tenants of the
    # machine hits both sides alike; the minimum is the least noisy estimate of the true cost.
    fresh(BASELINE)  # warm the OS file cache (and write bytecode) for both
    fresh(FIRST_PARSE)
    baseline: list[float] = []
    hook: list[float] = []
    parse: list[float] = []
    for _ in range(runs):
        baseline.append(fresh(BASELINE))
        hook.append(fresh(HOOK))
        parse.append(fresh(FIRST_PARSE))
    for name, pick in (("median", statistics.median), ("best", min)):
        ratio = pick(hook) / pick(baseline)
        print(
            f"cold init, wall ({name} of {runs} fresh interpreters): hook module {pick(hook):.0f} ms vs "
            f"import boto3 + same clients {pick(baseline):.0f} ms: ratio {ratio:.2f}x (target <= 1.30x)"
        )
    whole = (min(hook) + min(parse)) / min(baseline)
    print(
        f"  first policy parse (first invocation; imports pydantic): {min(parse):.0f} ms; "
        f"init + first parse {whole:.2f}x the baseline"
    )


def instructions(code: str) -> int:
    """Instructions the interpreter executes for ``code`` (callgrind), start-up included."""
    return instructions_of([sys.executable, "-c", code])


def instructions_of(command: list[str]) -> int:
    answer = subprocess.run(
        ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", *command],
        env={**ENV, "PYTHONHASHSEED": "0"},
        capture_output=True,
        text=True,
        check=True,
    )
    line = next(line for line in answer.stderr.splitlines() if "Collected" in line)
    return int(line.split()[-1])


def cold_init_instructions() -> None:
    if shutil.which("valgrind") is None:
        print("cold init, instructions: skipped (valgrind is not installed)")
        return
    start = instructions(START)
    baseline = instructions(BASELINE) - start
    hook = instructions(HOOK) - start
    whole = instructions(FIRST_PARSE) - start
    print(
        f"cold init, instructions (callgrind, deterministic): hook module {hook / 1e6:.0f} M vs "
        f"import boto3 + same clients {baseline / 1e6:.0f} M: ratio {hook / baseline:.2f}x (target <= 1.30x)"
    )
    print(f"  init + first policy parse: {whole / 1e6:.0f} M, {whole / baseline:.2f}x the baseline")


FIRST_INVOCATION = """
import json, os, sys, time
from tests.support.aws import FAKE_CREDENTIALS, REAL_AWS_VARIABLES, local_aws, publish_policy, start_deployment
from tests.support.release import APPLICATION, GROUP, HOOK_ENV, POLICY_BUCKET, empty_release, watch_policy
os.environ.update({{**FAKE_CREDENTIALS, **HOOK_ENV}})
for key in REAL_AWS_VARIABLES:
    os.environ.pop(key, None)
with local_aws():
    from deployguard_cli.localaws import moto_codedeploy
    empty_release()
    publish_policy(POLICY_BUCKET, watch_policy(["orders-errors"]))
    properties = {{"Name": "orders", "Alias": "live", "CurrentVersion": "1", "TargetVersion": "2"}}  # the AppSpec SAM writes
    content = json.dumps({{"version": 0.0, "Resources": [{{"orders": {{"Type": "AWS::Lambda::Function", "Properties": properties}}}}]}})
    deployment = start_deployment(APPLICATION, GROUP, content)
    execution = moto_codedeploy.start_lifecycle_event(deployment, "BeforeAllowTraffic")
    # NOTE: DeployGuard's moto extension and the world's builders import a few small modules of
    # DeployGuard (no pydantic, no Powertools); they are forgotten here, so the hook's init below
    # imports every module it needs, as it does on Lambda.
    for name in [m for m in sys.modules if m == "deployguard" or m.startswith("deployguard.")]:
        del sys.modules[name]
    assert not [m for m in sys.modules if m.startswith(("pydantic", "aws_lambda_powertools"))], "imported before the clock"
    t = time.perf_counter()  # the cold start as a user pays it: init, then the first invocation
    import importlib.util
    spec = importlib.util.spec_from_file_location("app", {app!r})
    app = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(app)
    from deployguard.aws import clients
    from deployguard.aws.policy_store import PolicyStore
    if not {prefetch}:
        PolicyStore.prepare = lambda self: None
    def network(**_kwargs):
        time.sleep({latency} / 1000)
    for client in (clients.codedeploy_client(), clients.lambda_client(), clients.lambda_invoke_client(), clients.ssm_client(), clients.s3_client()):
        client.meta.events.register("before-call.*.*", network)
    class Context:
        function_name = "CodeDeployHook_bench"
        function_version = "$LATEST"
        invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:CodeDeployHook_bench"
        memory_limit_in_mb = 512
        aws_request_id = "bench"
        def get_remaining_time_in_millis(self):
            return 60_000
    answer = app.handler({{"DeploymentId": deployment, "LifecycleEventHookExecutionId": execution}}, Context())
    elapsed = (time.perf_counter() - t) * 1000
    assert answer["decision"] == "Succeeded", answer
    print(elapsed)
"""


def first_invocation(latency_ms: float = 30.0, runs: int = 7) -> None:
    def run(prefetch: bool) -> float:
        code = FIRST_INVOCATION.format(
            app=str(ROOT / "functions/pre_traffic/app.py"),
            prefetch=prefetch,
            latency=latency_ms,
        )
        return fresh(code)

    ahead: list[float] = []
    behind: list[float] = []
    for _ in range(runs):  # interleaved, as above
        ahead.append(run(True))
        behind.append(run(False))
    best_ahead, best_behind = min(ahead), min(behind)
    print(
        f"init + first invocation, {latency_ms:.0f} ms per AWS call (best of {runs}): parser built ahead "
        f"{best_ahead:.0f} ms vs after the calls {best_behind:.0f} ms: {best_behind - best_ahead:.0f} ms "
        f"saved ({best_ahead / best_behind:.2f}x)"
    )


BUILD = ROOT / ".aws-sam" / "build"
RUNTIME_SITE = ROOT / ".tools" / "lambda-runtime"  # boto3 as the python3.12 runtime provides it
ZIP_DATE = 315532800  # 1980-01-01: the date SAM's zips give every file

LAMBDA_INIT = (
    textwrap.dedent(
        """
        import sys, time
        sys.path[:0] = sys.argv[1:]  # as Lambda orders them: the function, the layer, the runtime
        t = time.perf_counter()
        import importlib, os
        app = importlib.import_module("app")
        """
    )
    + SETTINGS_AND_CLIENTS
    + ELAPSED
)


def _as_deployed(source: Path, target: Path, invalidation: str) -> Path:
    shutil.copytree(source, target)
    if invalidation != "unchecked-hash":  # the build's own bytecode stays as it is
        subprocess.run(
            [
                sys.executable,
                "-m",
                "compileall",
                "-q",
                "-f",
                "--invalidation-mode",
                invalidation,
                str(target),
            ],
            check=True,
            capture_output=True,
        )
    for file in target.rglob("*.py"):
        os.utime(file, (ZIP_DATE, ZIP_DATE))
    return target


def deployed_init(runs: int = 9) -> None:
    layer, function = BUILD / "DeployGuardLayer" / "python", BUILD / "PreTrafficHookFunction"
    if not layer.is_dir() or not (RUNTIME_SITE / "boto3").is_dir():
        print("init from the built artifacts: skipped (run `make artifacts` first)")
        return
    with tempfile.TemporaryDirectory() as tmp:
        paths = {
            mode: [
                str(_as_deployed(function, Path(tmp) / mode / "function", mode)),
                str(_as_deployed(layer, Path(tmp) / mode / "python", mode)),
                str(RUNTIME_SITE),
            ]
            for mode in ("unchecked-hash", "timestamp")
        }

        def command(mode: str) -> list[str]:
            return [sys.executable, "-I", "-S", "-B", "-c", LAMBDA_INIT, *paths[mode]]

        walls: dict[str, list[float]] = {mode: [] for mode in paths}
        for _ in range(runs):
            for mode in paths:
                done = subprocess.run(command(mode), env=ENV, capture_output=True, text=True, check=True)
                walls[mode].append(float(done.stdout.strip().splitlines()[-1]))
        shipped, bare = min(walls["unchecked-hash"]), min(walls["timestamp"])
        print(
            f"init from the built artifacts, as Lambda runs it (best of {runs}): with the build's bytecode "
            f"{shipped:.0f} ms vs every module compiled again {bare:.0f} ms ({bare / shipped:.2f}x)"
        )
        if shutil.which("valgrind") is not None:
            counted = {mode: instructions_of(command(mode)) for mode in paths}
            print(
                f"  instructions: {counted['unchecked-hash'] / 1e6:.0f} M vs {counted['timestamp'] / 1e6:.0f} M "
                f"({counted['timestamp'] / counted['unchecked-hash']:.2f}x)"
            )


def smoke_concurrency(n: int = 10, latency_ms: float = 200.0) -> None:
    """N cases at the policy's own default setting (a policy that sets no ``smoke_concurrency``), and
    at the settings shipped before (8 by default, 4 in the shipped policies) for the ratio."""
    from deployguard.policy import FunctionPolicy, SmokeCase
    from deployguard.smoke import run_smoke
    from deployguard.snapshot import InvocationResult

    def invoker(_payload: bytes) -> InvocationResult:
        time.sleep(latency_ms / 1000)
        return InvocationResult(
            function_error=None, payload=b"{}", executed_version="2", latency_ms=latency_ms
        )

    cases = [SmokeCase(name=f"case{i}") for i in range(n)]
    default = FunctionPolicy(smoke=cases).smoke_concurrency  # what a policy gets when it sets none

    def elapsed_ms(concurrency: int | None) -> float:
        started = time.perf_counter()
        run_smoke(cases, invoker, concurrency=concurrency)
        return (time.perf_counter() - started) * 1000

    now, before, shipped = elapsed_ms(default), elapsed_ms(8), elapsed_ms(4)
    print(f"smoke: {n} cases of {latency_ms:.0f} ms each, at the policy's default setting: {now:.0f} ms")
    print(f"  ratio {now / latency_ms:.2f}x L (target <= 1.50x; sequential would be {n}x)")
    print(
        f"  before: default 8 {before / latency_ms:.2f}x L, the shipped policies' 4 {shipped / latency_ms:.2f}x L "
        f"({shipped / now:.1f}x slower than now)"
    )


if __name__ == "__main__":
    cold_init()
    if "--no-instructions" not in sys.argv:
        cold_init_instructions()
    first_invocation()
    deployed_init()
    smoke_concurrency()
