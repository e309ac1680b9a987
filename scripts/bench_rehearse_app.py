"""How long `deployguard rehearse --template … --faults all` takes on public SAM apps: the release
as it is and one deployment per fault. Printed, never asserted: timing is the machine's.

    .venv/bin/python -m scripts.bench_rehearse_app

The apps (tests/fixtures/sam_apps, each copied into a git repository of its own):

* ``echo`` — adhorn/aws-lambda-sam-application's Python function (Powertools, chaos-lambda, an
  SSM read at every invocation), AllAtOnce with two alarms: the release and all four faults;
* ``safe-lambda`` — aws-samples/aws-safe-lambda-deployments' Node.js function (aws-sdk v2,
  listBuckets), Linear10PercentEvery1Minute: the release and three faults (it has no variable
  to lose), so 10 virtual minutes of traffic per deployment that reaches the new version.

The goal (issue: rehearse your own application): a one-function app with four faults in 30 s or
less on this machine. Requirements and the runtime SDK are installed before timing starts (they
are a once-per-machine cost, cached). Each app also prints the CPU seconds of the process tree,
which other tenants of the machine do not change.
"""

from __future__ import annotations

import contextlib
import io
import os
import resource
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
GOAL_SECONDS = 30.0


def cpu_seconds() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def timed(arguments: list[str]) -> tuple[float, float, dict[str, object]]:
    from tests.support.sam_apps import rehearse

    began, cpu = time.perf_counter(), cpu_seconds()
    with contextlib.redirect_stderr(io.StringIO()):
        _, document = rehearse(*arguments)
    return time.perf_counter() - began, cpu_seconds() - cpu, document


def main() -> int:
    from tests.support.sam_apps import SAFE_LAMBDA_POLICY, echo_app, seed_buckets, team_repository

    print(f"cores: {os.cpu_count()}   load average: {os.getloadavg()[0]:.1f}")
    with tempfile.TemporaryDirectory() as folder:
        echo_path = Path(folder) / "echo"
        echo_path.mkdir()
        _, echo = echo_app(echo_path)
        safe = team_repository(
            Path(folder), "aws-safe-lambda-deployments", {"deployguard-dev.yaml": SAFE_LAMBDA_POLICY}
        )
        apps = {
            "echo (python, 4 faults)": [*echo, "--faults", "all"],
            "safe-lambda (node, 3 faults)": [
                "--template",
                str(safe / "template.yaml"),
                "--setup",
                seed_buckets(3),
                "--faults",
                "all",
            ],
        }
        for arguments in apps.values():  # NOTE: untimed: installs requirements and the SDK once
            timed([*arguments[:-2], "--faults", "wrong-type"])
        print(f"{'app':<30}{'real s':>8}{'cpu s':>8}{'vs goal':>9}  deployments (seconds each)")
        for name, arguments in apps.items():
            seconds, cpu, document = timed(arguments)
            runs = document.get("scenarios")
            runs = runs if isinstance(runs, list) else []
            each = ", ".join(f"{r['scenario']} {r['seconds']:.1f}" for r in runs if isinstance(r, dict))
            ok = "all as expected" if document.get("all_as_expected") else "NOT as expected"
            print(f"{name:<30}{seconds:>8.1f}{cpu:>8.1f}{seconds / GOAL_SECONDS:>8.2f}x  {each}  [{ok}]")
    print(f"goal: ≤ {GOAL_SECONDS:.0f} s for a one-function app with four faults (vs goal ≤ 1.00x)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
