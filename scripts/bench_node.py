"""Node.js invocations on the local Lambda runner: a fresh `node` process per invocation (fresh
mode) against warm execution environments (pool mode, the default). Printed, never asserted:
timing is the machine's.

    .venv/bin/python -m scripts.bench_node              # 50 invocations per handler and mode
    .venv/bin/python -m scripts.bench_node --count 100

Two handlers: a plain one, and one that loads the AWS SDK v2 its runtime ships at init (nodejs16.x,
``require('aws-sdk')`` and an S3 client; installed with npm once per machine, see
``deployguard_cli.localaws.node_sdk``). Each invocation goes through moto's Invoke, as the
rehearsal's traffic does. For each: the median and 90th percentile wall time of one invocation in
each mode (the modes alternate in rounds, so that noise from other tenants hits both alike; the
warm environment's first, cold invocation is left out and printed apart), and the ratio of the
medians. Then 4 invocations at a time (the rehearsal's traffic concurrency), wall time per
invocation in each mode.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import statistics
import sys
import time
import zipfile
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mypy_boto3_lambda import LambdaClient

HANDLERS = {
    "plain": ("nodejs20.x", "exports.handler = async (event) => ({ ok: true, n: event.n });\n"),
    "aws-sdk v2": (
        "nodejs16.x",
        "const AWS = require('aws-sdk');\n"
        "const s3 = new AWS.S3();\n"
        "exports.handler = async (event) => ({ ok: typeof s3.listBuckets === 'function', n: event.n });\n",
    ),
}
ROUNDS = 5
CONCURRENCY = 4


def zip_of(source: str) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("index.js", source)
    return buffer.getvalue()


def timed_invoke(lam: LambdaClient, name: str) -> float:
    began = time.perf_counter()
    answer = lam.invoke(FunctionName=name, Payload=json.dumps({"n": 1}).encode())
    seconds = time.perf_counter() - began
    payload = json.loads(answer["Payload"].read())
    if answer.get("FunctionError") or payload.get("ok") is not True:
        raise SystemExit(f"{name}: the invocation failed: {payload}")
    return seconds


def per_invocation(lam: LambdaClient, name: str, count: int) -> dict[str, Any]:
    """Wall seconds of single invocations per mode, alternating; the warm mode's cold start apart."""
    from deployguard_cli.localaws import lambda_runner

    seconds: dict[str, list[float]] = {"fresh": [], "pool": []}
    first_pool = 0.0
    for round_number in range(ROUNDS):
        for mode, measured in seconds.items():
            lambda_runner.set_mode(mode)
            if mode == "pool" and round_number == 0:
                first_pool = timed_invoke(lam, name)  # the environment's init
            measured += [timed_invoke(lam, name) for _ in range(count // ROUNDS)]
    return {"first_pool": first_pool, **seconds}


def concurrent(lam: LambdaClient, name: str, count: int) -> dict[str, float]:
    """Wall seconds per invocation with CONCURRENCY invocations at a time, per mode."""
    from deployguard_cli.localaws import lambda_runner

    per: dict[str, float] = {}
    for mode in ("fresh", "pool"):
        lambda_runner.set_mode(mode)
        with ThreadPoolExecutor(max_workers=CONCURRENCY) as pool:
            list(pool.map(lambda _: timed_invoke(lam, name), range(CONCURRENCY)))  # warm the pool
            began = time.perf_counter()
            list(pool.map(lambda _: timed_invoke(lam, name), range(count)))
            per[mode] = (time.perf_counter() - began) / count
    lambda_runner.shutdown()
    return per


def p90(values: list[float]) -> float:
    return statistics.quantiles(values, n=10)[-1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=50, help="invocations per handler and mode")
    args = parser.parse_args()
    if shutil.which("node") is None:
        print("node is not on PATH: nothing to measure")
        return 0

    import boto3
    from tests.support.aws import FAKE_CREDENTIALS, ROLE_POLICY, local_aws

    from deployguard_cli.localaws import lambda_runner

    print(f"cores: {os.cpu_count()}   load average: {os.getloadavg()[0]:.1f}   {args.count} invocations each")
    print(
        f"{'handler':<12}{'fresh ms':>10}{'p90':>8}{'warm ms':>10}{'p90':>8}{'ratio':>8}"
        f"{'warm cold':>11}{'fresh x4':>10}{'warm x4':>9}{'ratio':>8}"
    )
    saved = dict(os.environ)
    os.environ.update(FAKE_CREDENTIALS)
    previous = lambda_runner.set_mode("pool")
    try:
        with local_aws():
            role = boto3.client("iam").create_role(RoleName="bench", AssumeRolePolicyDocument=ROLE_POLICY)
            lam: LambdaClient = boto3.client("lambda")
            for label, (runtime, source) in HANDLERS.items():
                name = "bench-" + label.replace(" ", "-").replace(".", "")
                lam.create_function(
                    FunctionName=name,
                    Runtime=runtime,  # type: ignore[arg-type]
                    Role=role["Role"]["Arn"],
                    Handler="index.handler",
                    Code={"ZipFile": zip_of(source)},
                    Timeout=30,
                )
                single = per_invocation(lam, name, args.count)
                together = concurrent(lam, name, args.count)
                fresh, warm = (statistics.median(single[mode]) * 1000 for mode in ("fresh", "pool"))
                print(
                    f"{label:<12}{fresh:>10.1f}{p90(single['fresh']) * 1000:>8.1f}{warm:>10.1f}"
                    f"{p90(single['pool']) * 1000:>8.1f}{fresh / warm:>7.1f}x{single['first_pool'] * 1000:>11.1f}"
                    f"{together['fresh'] * 1000:>10.1f}{together['pool'] * 1000:>9.1f}"
                    f"{together['fresh'] / together['pool']:>7.1f}x"
                )
    finally:
        lambda_runner.set_mode(previous)
        os.environ.clear()
        os.environ.update(saved)
    return 0


if __name__ == "__main__":
    sys.exit(main())
