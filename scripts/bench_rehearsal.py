"""How long `deployguard rehearse` takes, per scenario (the budget: the whole rehearsal in 30 s on a
2-core machine). Printed, never asserted: timing is the machine's.

    .venv/bin/python scripts/bench_rehearsal.py            # every scenario, once
    .venv/bin/python scripts/bench_rehearsal.py --runs 3   # the median of three runs each

For each scenario: real seconds (set-up included), the deployment time it stood for on the virtual
clock, how many invocations ran real code (the example app in a subprocess each: the main cost),
and the speed-up over real time.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BUDGET_SECONDS = 30.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=1, help="runs per scenario (the median is printed)")
    parser.add_argument("--scenario", action="append", dest="scenarios", metavar="NAME")
    args = parser.parse_args()

    began = time.perf_counter()
    from deployguard_cli.localaws import lambda_runner
    from deployguard_cli.rehearsal.clock import human_duration
    from deployguard_cli.rehearsal.runner import run_scenario
    from deployguard_cli.rehearsal.scenarios import by_name

    imported = time.perf_counter() - began
    print(f"cores: {os.cpu_count()}   imports: {imported:.2f} s")
    print(f"{'scenario':<24}{'real s':>8}{'virtual':>10}{'speed-up':>10}{'app invocations':>17}  ended")
    total = imported
    for scenario in by_name(args.scenarios):
        seconds, virtual, invocations, status = [], 0.0, 0, ""
        for _ in range(args.runs):
            before = len(lambda_runner.invocations())
            with contextlib.redirect_stdout(io.StringIO()):
                result = run_scenario(scenario, root=ROOT)
            seconds.append(result.seconds)
            virtual = result.outcome.virtual_duration.total_seconds()
            invocations = len(lambda_runner.invocations()) - before
            status = result.outcome.status + ("" if result.as_expected else " (NOT as expected)")
        median = statistics.median(seconds)
        total += median
        shown = human_duration(virtual)
        speed = f"{virtual / median:.0f}x" if virtual > median else "-"
        print(f"{scenario.name:<24}{median:>8.2f}{shown:>10}{speed:>10}{invocations:>17}  {status}")
    verdict = "within" if total <= BUDGET_SECONDS else "OVER"
    print(f"{'total':<24}{total:>8.2f}   ({verdict} the {BUDGET_SECONDS:.0f} s budget)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
