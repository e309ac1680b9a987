"""How long `deployguard rehearse` takes, per scenario, with the example app's invocations in the
worker pool (the default) against a fresh interpreter per invocation. Printed, never asserted:
timing is the machine's.

    .venv/bin/python -m scripts.bench_rehearsal            # every scenario, once in each mode
    .venv/bin/python -m scripts.bench_rehearsal --runs 3   # the median of three runs each
    .venv/bin/python -m scripts.bench_rehearsal --mode pool

For each scenario: real seconds in each mode (set-up included; the modes alternate, so noise from
other tenants hits both alike), their ratio, the deployment time it stood for on the virtual clock,
how many invocations ran real code (the example app) and how it ended; and the CPU seconds of the
whole process tree, which other tenants of the machine do not change. The goal: the
five scenarios in 12 s or less on a 2-core machine (the budget: 30 s). One unmeasured run of the
first scenario comes first; the totals add the imports.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import resource
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
GOAL_SECONDS = 12.0
BUDGET_SECONDS = 30.0


def per_invocation(count: int = 30) -> None:
    """One invocation of the example app (a ping, through moto's Invoke), in each mode: medians."""
    import importlib.util
    import json
    import tempfile

    import boto3
    from tests.support.aws import FAKE_CREDENTIALS, ROLE_POLICY, local_aws

    from deployguard_cli.localaws import lambda_runner

    orders = ROOT / "functions" / "orders"
    spec = importlib.util.spec_from_file_location("orders_app_for_bench", orders / "app.py")
    assert spec is not None and spec.loader is not None
    app = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(app)
    saved = dict(os.environ)
    os.environ.update(FAKE_CREDENTIALS)
    with tempfile.TemporaryDirectory() as scratch, local_aws():
        database = app.create_schema(Path(scratch) / "orders.db")
        role = boto3.client("iam").create_role(RoleName="bench", AssumeRolePolicyDocument=ROLE_POLICY)["Role"]
        lam = boto3.client("lambda")
        lam.create_function(
            FunctionName="orders",
            Runtime="python3.12",
            Role=role["Arn"],
            Handler="app.handler",
            Code={"ZipFile": lambda_runner.zip_directory(orders)},
            Environment={"Variables": {"STAGE": "staging", "DATABASE_URL": f"sqlite://{database}"}},
        )
        ping = json.dumps({"action": "ping"}).encode()
        seconds: dict[str, list[float]] = {"fresh": [], "pool": []}
        for _ in range(3):  # alternate, so that noise from other tenants hits both alike
            for mode, measured in seconds.items():
                lambda_runner.set_mode(mode)
                lam.invoke(FunctionName="orders", Payload=ping)  # pool: the server's init
                for _ in range(count // 3):
                    began = time.perf_counter()
                    lam.invoke(FunctionName="orders", Payload=ping)
                    measured.append(time.perf_counter() - began)
        lambda_runner.set_mode("pool")
    os.environ.clear()
    os.environ.update(saved)
    fresh, pool = (statistics.median(seconds[mode]) * 1000 for mode in ("fresh", "pool"))
    print(
        f"one example-app invocation: fresh interpreter {fresh:.1f} ms, pool {pool:.1f} ms ({fresh / pool:.1f}x)"
    )


def cpu_seconds() -> float:
    """CPU time of this process and every descendant reaped so far (the pool's servers report
    their workers' time once they exit: stop them before reading this)."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--runs", type=int, default=1, help="runs per scenario and mode (the median is printed)"
    )
    parser.add_argument("--scenario", action="append", dest="scenarios", metavar="NAME")
    parser.add_argument("--mode", choices=("both", "pool", "fresh"), default="both")
    args = parser.parse_args()
    modes = ("fresh", "pool") if args.mode == "both" else (args.mode,)

    began = time.perf_counter()
    from deployguard_cli.localaws import lambda_runner
    from deployguard_cli.rehearsal.clock import human_duration
    from deployguard_cli.rehearsal.runner import run_scenario
    from deployguard_cli.rehearsal.scenarios import by_name

    imported = time.perf_counter() - began
    print(f"cores: {os.cpu_count()}   load average: {os.getloadavg()[0]:.1f}   imports: {imported:.2f} s")
    if len(modes) == 2:
        per_invocation()
    header = "".join(f"{mode + ' s':>9}{mode + ' cpu':>10}" for mode in modes)
    print(
        f"{'scenario':<24}{header}{'ratio' if len(modes) == 2 else '':>7}{'virtual':>12}{'invocations':>13}  ended"
    )
    totals = {mode: [imported, 0.0] for mode in modes}
    scenarios = by_name(args.scenarios)
    # NOTE: one unmeasured run first, so that neither mode pays the one-time lazy imports
    with contextlib.redirect_stdout(io.StringIO()):
        run_scenario(scenarios[0], root=ROOT)
    for scenario in scenarios:
        seconds: dict[str, list[tuple[float, float]]] = {mode: [] for mode in modes}
        virtual, invocations, ended = 0.0, 0, set()
        for _ in range(args.runs):
            for mode in modes:
                lambda_runner.set_mode(mode)
                before, cpu = len(lambda_runner.invocations()), cpu_seconds()
                with contextlib.redirect_stdout(io.StringIO()):
                    result = run_scenario(scenario, root=ROOT)
                lambda_runner.shutdown()  # its servers exit: their CPU time is counted
                seconds[mode].append((result.seconds, cpu_seconds() - cpu))
                virtual = result.outcome.virtual_duration.total_seconds()
                invocations = len(lambda_runner.invocations()) - before
                ended.add(result.outcome.status + ("" if result.as_expected else " (NOT as expected)"))
        medians = {
            mode: [statistics.median(run[i] for run in seconds[mode]) for i in (0, 1)] for mode in modes
        }
        shown = ""
        for mode in modes:
            totals[mode][0] += medians[mode][0]
            totals[mode][1] += medians[mode][1]
            shown += f"{medians[mode][0]:>9.2f}{medians[mode][1]:>10.2f}"
        if len(modes) == 2:
            shown += f"{medians['fresh'][0] / medians['pool'][0]:>6.2f}x"
        print(
            f"{scenario.name:<24}{shown}{human_duration(virtual):>12}{invocations:>13}  {' / '.join(sorted(ended))}"
        )
    lambda_runner.set_mode("pool")
    shown = "".join(f"{totals[mode][0]:>9.2f}{totals[mode][1]:>10.2f}" for mode in modes)
    if len(modes) == 2:
        shown += f"{totals['fresh'][0] / totals['pool'][0]:>6.2f}x"
        shown += f"  (CPU {totals['fresh'][1] / totals['pool'][1]:.2f}x)"
    print(f"{'total (+ imports)':<24}{shown}")
    final = totals[modes[-1]][0]
    verdict = "within" if final <= GOAL_SECONDS else "OVER"
    print(
        f"{modes[-1]} mode: {final:.2f} s ({verdict} the {GOAL_SECONDS:.0f} s goal; budget {BUDGET_SECONDS:.0f} s)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
