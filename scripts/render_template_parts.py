"""Write the generated part of template.yaml: the CloudWatch dashboard and the saved Logs Insights
queries, built by ``deployguard_cli.dashboard`` from the metric catalogue the code emits.

template.yaml stays the single deployable file: the generated resources sit between two marker
comments, and ``--check`` (run by ``make validate`` and the template test) fails when they differ
from what the code produces, so dashboard, queries and metrics cannot drift apart.

    .venv/bin/python scripts/render_template_parts.py          # rewrite template.yaml
    .venv/bin/python scripts/render_template_parts.py --check  # exit 1 if it is stale
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from deployguard_cli.dashboard import QUERIES, dashboard_json

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE = ROOT / "template.yaml"
BEGIN = "  # BEGIN GENERATED: scripts/render_template_parts.py (do not edit by hand; `make render`)\n"
END = "  # END GENERATED\n"

DASHBOARD_LOGICAL_ID = "DeployGuardDashboard"
# Logical ids of the guard functions' log groups in template.yaml: the saved queries and the
# dashboard's outcome table read them.
GUARD_LOG_GROUPS = (
    "PreTrafficHookLogGroup",
    "PostTrafficHookLogGroup",
    "BakeStepLogGroup",
    "AlarmRollbackLogGroup",
)
# The dashboard as template.yaml embeds it (DashboardBody: !Sub): ${AWS::Region} and ${Stage} are
# resolved by CloudFormation. No function filter: the per-version errors widget shows every
# aliased function of the account and region, i.e. every function a policy may guard.
DASHBOARD_OPTIONS: dict[str, Any] = {
    "region": "${AWS::Region}",
    "functions": (),
    "log_groups": (
        "/aws/lambda/CodeDeployHook_deployguard-${Stage}-pre-traffic",
        "/aws/lambda/CodeDeployHook_deployguard-${Stage}-post-traffic",
        "/aws/lambda/deployguard-${Stage}-bake-step",
        "/aws/lambda/deployguard-${Stage}-alarm-rollback",
    ),
}


def query_logical_id(name: str) -> str:
    """'why-did-deployment-fail' → 'WhyDidDeploymentFailQuery'."""
    return "".join(part.capitalize() for part in re.split(r"[^A-Za-z0-9]+", name) if part) + "Query"


def _block(text: str, indent: int) -> str:
    pad = " " * indent
    return "\n".join(f"{pad}{line}" if line else "" for line in text.splitlines())


def generated_part() -> str:
    """The YAML of the generated resources, indented as resources of template.yaml."""
    body = dashboard_json(indent=2, **DASHBOARD_OPTIONS)
    if "${" in body.replace("${AWS::Region}", "").replace("${Stage}", ""):
        raise SystemExit(
            "the dashboard body holds a ${…} other than ${AWS::Region} / ${Stage}: !Sub would fail"
        )
    log_groups = ", ".join(f"!Ref {logical_id}" for logical_id in GUARD_LOG_GROUPS)
    parts = [
        f"  {DASHBOARD_LOGICAL_ID}:\n"
        "    Type: AWS::CloudWatch::Dashboard\n"
        "    Properties:\n"
        "      DashboardName: !Sub deployguard-${Stage}\n"
        "      DashboardBody: !Sub |-\n"
        f"{_block(body, 8)}\n"
    ]
    for name, query in QUERIES.items():
        parts.append(
            f"  {query_logical_id(name)}:\n"
            "    Type: AWS::Logs::QueryDefinition\n"
            "    Properties:\n"
            f"      Name: !Sub DeployGuard/${{Stage}}/{name}\n"
            f"      LogGroupNames: [{log_groups}]\n"
            "      QueryString: |-\n"
            f"{_block(query, 8)}\n"
        )
    return "\n".join(parts)


def render(template: str) -> str:
    """``template`` with the text between the markers replaced by :func:`generated_part`."""
    start, end = template.find(BEGIN), template.find(END)
    if start < 0 or end < start:
        raise SystemExit(f"template.yaml lacks the markers:\n{BEGIN}{END}")
    return template[: start + len(BEGIN)] + generated_part() + template[end:]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--check", action="store_true", help="exit 1 if template.yaml is not up to date")
    parser.add_argument("--template", type=Path, default=TEMPLATE)
    args = parser.parse_args(argv)
    current = args.template.read_text()
    wanted = render(current)
    if args.check:
        if wanted != current:
            print(
                f"{args.template}: the generated dashboard/queries are stale; run `make render`",
                file=sys.stderr,
            )
            return 1
        print(f"{args.template}: generated dashboard and queries are up to date")
        return 0
    if wanted != current:
        args.template.write_text(wanted)
        print(f"{args.template}: dashboard and queries regenerated")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
