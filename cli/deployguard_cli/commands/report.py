"""``deployguard report DEPLOYMENT_ID`` — why a deployment passed or failed, from its outcome
records in CloudWatch Logs: timeline, every check and its result, the decision, what was rolled back.

Exit 0 the deployment succeeded (or has no decision yet), 1 it failed or was rolled back, 2 no
records found or the logs could not be read.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from deployguard_cli import adapters
from deployguard_cli.exit_codes import EXIT_FINDINGS, EXIT_OK
from deployguard_cli.report import (
    DEFAULT_LOG_GROUP_PREFIXES,
    OutcomeLogs,
    ReportError,
    build_report,
    render_report,
)


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "report", help="print why a deployment passed or failed, from its outcome records in CloudWatch Logs"
    )
    parser.add_argument("deployment_id", metavar="DEPLOYMENT_ID", help="the CodeDeploy deployment (d-…)")
    parser.add_argument(
        "--log-group",
        action="append",
        dest="log_groups",
        metavar="NAME",
        help="a log group to search (repeatable); default: every group named with a --log-group-prefix",
    )
    parser.add_argument(
        "--log-group-prefix",
        action="append",
        dest="log_group_prefixes",
        metavar="PREFIX",
        help=f"search the groups whose names start with PREFIX (repeatable); default: {', '.join(DEFAULT_LOG_GROUP_PREFIXES)}",
    )
    parser.add_argument(
        "--since-days", type=int, default=14, metavar="DAYS", help="how far back (default 14)"
    )
    parser.add_argument("--json", action="store_true", help="print the report (and its records) as JSON")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    return report(
        adapters.outcome_logs(),
        args.deployment_id,
        log_groups=args.log_groups,
        prefixes=args.log_group_prefixes or DEFAULT_LOG_GROUP_PREFIXES,
        since_days=args.since_days,
        as_json=args.json,
    )


def report(
    logs: OutcomeLogs,
    deployment_id: str,
    *,
    log_groups: Sequence[str] | None,
    prefixes: Sequence[str],
    since_days: int,
    as_json: bool,
) -> int:
    """Print the story of ``deployment_id`` from its outcome records in ``log_groups`` (default:
    every group named with one of ``prefixes``)."""
    groups = list(log_groups or logs.log_groups(prefixes))
    if not groups:
        raise ReportError(
            f"no log group starts with {' or '.join(prefixes)}: name them with --log-group or --log-group-prefix"
        )
    since = datetime.now(UTC) - timedelta(days=since_days)
    found = logs.find(deployment_id, groups, start_time=since)
    if found.unreadable:
        print(
            f"deployguard: skipped {found.unreadable} record(s) of another schema version or shape",
            file=sys.stderr,
        )
    if not found.records:
        raise ReportError(
            f"no outcome records for deployment {deployment_id} in the last {since_days} days "
            f"of {len(groups)} log group(s) ({', '.join(groups[:5])}{', …' if len(groups) > 5 else ''})"
        )
    story = build_report(found.records, deployment_id)
    # NOTE: json.dumps escapes every control character (pydantic's JSON keeps C1 ones raw)
    print(json.dumps(story.model_dump(mode="json"), indent=2) if as_json else render_report(story))
    return EXIT_FINDINGS if story.outcome in ("failed", "rolled_back") else EXIT_OK
