"""Print DeployGuard's CloudWatch dashboard body (JSON), built from the metrics the code emits.

For template.yaml (``AWS::CloudWatch::Dashboard``, ``DashboardBody: !Sub |``):

    .venv/bin/python scripts/render_dashboard.py \\
        --function '${OrdersFunction}' --log-group '/aws/lambda/${PreTrafficHook}'

``--queries`` prints the saved Logs Insights queries instead (name → query string).
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence

from deployguard_cli.dashboard import DEFAULT_REGION, QUERIES, dashboard_json


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--function", action="append", default=[], help="a guarded function (repeatable)")
    parser.add_argument(
        "--log-group", action="append", default=[], help="a DeployGuard log group (repeatable)"
    )
    parser.add_argument("--region", default=DEFAULT_REGION, help=f"default {DEFAULT_REGION}")
    parser.add_argument("--period", type=int, default=300, help="seconds per data point (default 300)")
    parser.add_argument("--compact", action="store_true", help="one line, no indentation")
    parser.add_argument("--queries", action="store_true", help="print the Logs Insights queries instead")
    args = parser.parse_args(argv)
    if args.queries:
        print(json.dumps(QUERIES, indent=2))
        return 0
    print(
        dashboard_json(
            indent=None if args.compact else 2,
            region=args.region,
            functions=args.function,
            log_groups=args.log_group,
            period=args.period,
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
