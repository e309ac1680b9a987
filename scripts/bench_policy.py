"""Hostile policies through ``load_policy``: peak memory and time, against the hook's goal.

The goal: the hook's peak memory on any policy is at most 256 MB (it is configured with 512 MB) and
it reports before its deadline. Each input runs in a fresh interpreter of its own, so each peak is
its own: the interpreter first holds what a hook holds when it parses its policy (boto3 and the
hook's clients, Powertools, the policy models built), then parses the input as the stored policy
is parsed, and, for the regular-expression inputs, checks a 4 KB value against the entry's rules.
Printed: the outcome, the time of that step, the peak RSS of the whole interpreter (ru_maxrss)
and its ratio to 256 MB. Never asserted in tests: memory and time are the machine's.

Then the policy store as a hook reads it (``--store`` runs only this part; ``make bench`` does):
a 1 MB application document in the embedded AWS's S3, loaded by ``PolicyStore`` on a cache miss
(GetObject of the baseline and the document, parse, validate the function's entry) against the
goal of 300 ms, then again warm (two conditional GetObjects answered 304, nothing parsed); and,
for scale, validating every entry as ``deployguard policy publish`` does.

Run: .venv/bin/python -m scripts.bench_policy [--store]
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
import tempfile
import textwrap
from collections.abc import Callable
from pathlib import Path

import yaml

from deployguard.documents import MAX_DOCUMENT_BYTES, MAX_NODES
from deployguard.patterns import MAX_MATCHED_CHARS

ROOT = Path(__file__).resolve().parent.parent
GOAL_MB = 256
TIMEOUT_S = 300
ENV = {
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_ACCESS_KEY_ID": "bench",
    "AWS_SECRET_ACCESS_KEY": "bench",
    "PATH": "/usr/bin:/bin",
}

# One input per run: argv[1] the policy file, argv[2] a value for the variable URL ('' for none).
CHILD = textwrap.dedent(
    """
    import json, resource, sys, time
    from datetime import date
    from pathlib import Path

    import boto3
    from aws_lambda_powertools import Logger
    from botocore.config import Config

    from deployguard.config_check import validate_config
    from deployguard.errors import PolicyError
    from deployguard.policy import build_parser, load_policy
    from deployguard.snapshot import FunctionSnapshot
    from deployguard.stages import Stage

    # what a hook holds before its policy is parsed
    clients = [boto3.client(name, config=Config()) for name in ("codedeploy", "lambda", "ssm")]
    Logger(service="bench")
    build_parser()
    text = Path(sys.argv[1]).read_text()
    value = sys.argv[2]
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    started = time.perf_counter()
    try:
        policy = load_policy(text, "ssm:/deployguard/prod/policy", stage=Stage.PROD)
        outcome = "valid"
        if value:
            target = FunctionSnapshot(function_name="orders", version="2", environment={"URL": value})
            findings = validate_config(
                target, None, policy.functions["orders"].config, Stage.PROD,
                reference_exists=None, today=date(2026, 1, 1),
            )
            outcome = f"checked a {len(value):,}-char value: {len(findings)} finding(s)"
    except PolicyError as exc:
        outcome = str(exc)
    seconds = time.perf_counter() - started
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"outcome": outcome, "seconds": seconds, "before_mb": before, "peak_mb": peak}))
    """
)


def as_json(document: object) -> str:
    return json.dumps(document)


def the_repositorys_prod_policy() -> str:
    """The repository's prod policy as one whole-stage document: its baseline's stage-wide keys and
    the orders application's entries with the baseline's defaults merged in (as a hook sees them)."""
    from deployguard.policy import deep_merge

    baseline = yaml.safe_load((ROOT / "policies" / "prod" / "baseline.yaml").read_text())
    application = yaml.safe_load((ROOT / "policies" / "prod" / "apps" / "orders.yaml").read_text())
    functions = {k: deep_merge(baseline["defaults"], v) for k, v in application["functions"].items()}
    return as_json(
        {"version": 1, "stage": "prod", "unguarded": baseline["unguarded"], "functions": functions}
    )


def nodes_of(value: object) -> int:
    """Nodes as the limit counts them: every mapping, list, key and scalar."""
    if isinstance(value, dict):
        return 1 + sum(1 + nodes_of(item) for item in value.values())
    if isinstance(value, list):
        return 1 + sum(nodes_of(item) for item in value)
    return 1


def many_functions(nodes: int) -> str:
    """The largest valid policy within ``nodes``: functions with a rule and a smoke case each."""
    entry = {
        "config": {"rules": [{"variable": "URL", "part": "host", "deny": [r"\.dev\."]}]},
        "smoke": [
            {"name": "ping", "payload": {"action": "ping"}, "expect": [{"path": "$.ok", "equals": True}]}
        ],
    }
    per_function = 1 + nodes_of(entry)  # its key too
    head = {"version": 1, "stage": "prod", "functions": {}}
    functions = {f"fn-{i}": entry for i in range((nodes - nodes_of(head) - 2) // per_function)}
    return as_json({**head, "functions": functions})


def big_payloads() -> str:
    """Just under the size limit in few nodes: long strings in smoke payloads."""
    cases = [{"name": f"c{i}", "payload": {"blob": "x" * 100_000}} for i in range(41)]
    return as_json({"version": 1, "stage": "prod", "functions": {"orders": {"smoke": cases}}})


def alias_bomb() -> str:
    """The reported 'billion laughs' (9**9 strings from 700 bytes)."""
    lines = ["version: 1", "stage: prod", 'l0: &l0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    lines += [f"l{n}: &l{n} [" + ",".join([f"*l{n - 1}"] * 9) + "]" for n in range(1, 9)]
    lines.append("functions: {orders: {smoke: [{name: x, payload: *l8}]}}")
    return "\n".join(lines) + "\n"


def deep(json_document: bool) -> str:
    payload = "[" * 50_000 + "]" * 50_000
    if json_document:
        return as_json(
            {"version": 1, "stage": "prod", "functions": {"orders": {"smoke": [{"name": "x"}]}}}
        ).replace('{"name": "x"}', '{"name": "x", "payload": ' + payload + "}")
    return "version: 1\nstage: prod\nfunctions: {orders: {smoke: [{name: x, payload: " + payload + "}]}}\n"


def wrong_types(count: int) -> str:
    return as_json({"version": 1, "stage": "prod", "functions": {"orders": {"smoke": [1] * count}}})


def empty_mappings() -> str:
    """The most nodes the size limit lets through to the parser: '{},' is 3 bytes."""
    count = (MAX_DOCUMENT_BYTES - 100) // 3
    return (
        '{"version": 1, "stage": "prod", "functions": {"orders": {"smoke": ['
        + ",".join(["{}"] * count)
        + "]}}}"
    )


def yaml_at_the_size_limit() -> str:
    head = "version: 1\nstage: prod\nfunctions:\n  orders:\n    smoke:\n"
    return head + "      - 1\n" * ((MAX_DOCUMENT_BYTES - len(head)) // 10)


def catastrophic_regex() -> str:
    return "version: 1\nstage: prod\nfunctions: {orders: {config: {stage_variable: null, rules: [{variable: URL, deny: ['^(a|aa)+$']}]}}}\n"


def patterns_up_to_the_budget() -> str:
    """Distinct patterns of the slowest kind measured, as many as the instruction budget allows."""
    big = [f"(?:.|\\n){{400}}c{i}" for i in range(17)]  # about 2 800 instructions each
    rules = [{"variable": "URL", "deny": big}]
    return as_json(
        {
            "version": 1,
            "stage": "prod",
            "functions": {"orders": {"config": {"stage_variable": None, "rules": rules}}},
        }
    )


def mixed_value() -> str:
    """4 KB of 1- to 4-byte characters: RE2 matches UTF-8, so the widest ones cost most."""
    random.seed(1)
    return "".join(random.choice("ab€😀") for _ in range(MAX_MATCHED_CHARS))


INPUTS: list[tuple[str, Callable[[], str], str]] = [
    ("the repository's prod policy (reference)", the_repositorys_prod_policy, ""),
    (f"largest valid policy (~{MAX_NODES:,} nodes)", lambda: many_functions(MAX_NODES), ""),
    ("4 MB of smoke payload strings (valid)", big_payloads, ""),
    ("YAML alias bomb, 9 levels (700 bytes)", alias_bomb, ""),
    ("50 000-deep nesting, JSON", lambda: deep(True), ""),
    ("50 000-deep nesting, YAML", lambda: deep(False), ""),
    (f"{MAX_NODES - 100:,} wrong types (within the limits)", lambda: wrong_types(MAX_NODES - 100), ""),
    ("4 MB of empty mappings (over the node limit)", empty_mappings, ""),
    ("4 MB of YAML (over the node limit)", yaml_at_the_size_limit, ""),
    ("12 MB of wrong types (over the size limit)", lambda: wrong_types(4_000_000), ""),
    ("deny '^(a|aa)+$' on a 39-char near miss", catastrophic_regex, "a" * 38 + "b"),
    ("deny '^(a|aa)+$' on a 4 KB near miss", catastrophic_regex, "a" * (MAX_MATCHED_CHARS - 1) + "b"),
    ("slowest patterns up to the budget, 4 KB value", patterns_up_to_the_budget, mixed_value()),
]


def run(text: str, value: str, folder: Path) -> dict[str, object]:
    path = folder / "policy"
    path.write_text(text)
    try:
        answer = subprocess.run(
            [sys.executable, "-c", CHILD, str(path), value],
            env=ENV,
            capture_output=True,
            text=True,
            timeout=TIMEOUT_S,
            check=False,
            cwd=ROOT,
        )
    except subprocess.TimeoutExpired:
        return {"outcome": f"did not finish within {TIMEOUT_S} s"}
    if answer.returncode != 0:
        return {"outcome": f"crashed: {answer.stderr.strip().splitlines()[-1:]}"}
    result: dict[str, object] = json.loads(answer.stdout.splitlines()[-1])
    return result


def main() -> None:
    print(f"peak RSS of a fresh interpreter holding a hook's state, per input; goal <= {GOAL_MB} MB\n")
    print(f"{'input':<48} {'bytes':>11} {'time':>8} {'peak':>8} {'/goal':>6}  outcome")
    worst = 0.0
    with tempfile.TemporaryDirectory() as folder:
        for name, make, value in INPUTS:
            text = make()
            result = run(text, value, Path(folder))
            outcome = str(result["outcome"])
            outcome = outcome if len(outcome) <= 110 else outcome[:109] + "…"
            if "peak_mb" not in result:
                print(f"{name:<48} {len(text.encode()):>11,} {'-':>8} {'-':>8} {'-':>6}  {outcome}")
                continue
            peak = float(str(result["peak_mb"]))
            worst = max(worst, peak)
            print(
                f"{name:<48} {len(text.encode()):>11,} {float(str(result['seconds'])):>7.2f}s "
                f"{peak:>5.0f} MB {peak / GOAL_MB:>6.2f}  {outcome}"
            )
    print(f"\nworst peak {worst:.0f} MB = {worst / GOAL_MB:.2f} of the {GOAL_MB} MB goal")


STORE_GOAL_MS = 300.0
STORE_BUCKET = "deployguard-prod-policies-123456789012-us-east-1"

# In a fresh interpreter: the embedded AWS's S3 holding the prod baseline and a ~1 MB application
# document; a PolicyStore as a hook holds it (parser built and S3 client made, as prepare() does).
STORE_CHILD = textwrap.dedent(
    """
    import json, os, sys, time
    from tests.support.aws import FAKE_CREDENTIALS, REAL_AWS_VARIABLES, local_aws
    os.environ.update(FAKE_CREDENTIALS)
    for key in REAL_AWS_VARIABLES:
        os.environ.pop(key, None)
    bucket, functions = sys.argv[1], int(sys.argv[2])
    with local_aws():
        import boto3
        from deployguard.aws import clients
        from deployguard.aws.policy_store import PolicyStore
        from deployguard.policy import application_document, build_parser, effective_policy, load_baseline
        from deployguard.stages import Stage
        from tests.support.policies import PROD_BASELINE, compact, fleet_application

        s3 = boto3.client("s3")
        s3.create_bucket(Bucket=bucket)
        text = compact(fleet_application(functions=functions))
        s3.put_object(Bucket=bucket, Key="prod/baseline.json", Body=compact(PROD_BASELINE).encode())
        s3.put_object(Bucket=bucket, Key="prod/apps/fleet.json", Body=text.encode())
        build_parser()
        clients.s3_client()
        store = PolicyStore(clients.s3_client, bucket, max_age=0)
        target = f"fleet-prod-fn-{functions // 2:03d}"
        started = time.perf_counter()
        store.load(Stage.PROD, "fleet", target)
        miss = (time.perf_counter() - started) * 1000
        warm = []
        for _ in range(5):
            started = time.perf_counter()
            store.load(Stage.PROD, "fleet", target)
            warm.append((time.perf_counter() - started) * 1000)
        started = time.perf_counter()
        baseline = load_baseline(compact(PROD_BASELINE))
        effective_policy(baseline, application_document(text, "s3"), "s3", application="fleet")
        whole = (time.perf_counter() - started) * 1000
        print(json.dumps({"bytes": len(text), "miss_ms": miss, "warm_ms": min(warm), "whole_ms": whole,
                          "parses": store.parses, "not_modified": store.not_modified}))
    """
)


def store(runs: int = 5) -> None:
    """A 1 MB application document loaded by the hook's PolicyStore: cache miss, then warm (304)."""
    results = []
    for _ in range(runs):
        answer = subprocess.run(
            [sys.executable, "-c", STORE_CHILD, STORE_BUCKET, "145"],
            env={**ENV, "PYTHONPATH": str(ROOT)},
            capture_output=True,
            text=True,
            timeout=TIMEOUT_S,
            check=True,
            cwd=ROOT,
        )
        results.append(json.loads(answer.stdout.splitlines()[-1]))
    best = min(results, key=lambda r: float(r["miss_ms"]))
    miss = float(best["miss_ms"])
    print(
        f"policy store, {int(best['bytes']):,}-byte application document (best of {runs} fresh interpreters):"
    )
    print(
        f"  cache miss (GetObject x2, parse, validate the function's entry): {miss:.0f} ms = "
        f"{miss / STORE_GOAL_MS:.2f} of the {STORE_GOAL_MS:.0f} ms goal"
    )
    print(
        f"  warm, max_age passed (GetObject x2 answered 304, nothing parsed): {float(best['warm_ms']):.1f} ms "
        f"({float(best['warm_ms']) / miss:.3f} of a miss; {best['not_modified']} not-modified answers, "
        f"{best['parses']} parse(s))"
    )
    print(f"  every entry validated, as `policy publish` does: {float(best['whole_ms']):.0f} ms")


if __name__ == "__main__":
    if "--store" not in sys.argv:
        main()
    store()
