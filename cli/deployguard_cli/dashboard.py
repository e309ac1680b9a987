"""The CloudWatch dashboard and the saved Logs Insights queries, built from ``METRICS``.

The dashboard body is generated, never hand-written: every DeployGuard metric widget is a SEARCH
over the exact dimension set the code emits (``METRICS`` + ``COMMON_DIMENSIONS``), so a renamed
metric or an added dimension changes the dashboard with it. ``scripts/render_dashboard.py`` prints
the body for template.yaml (``AWS::CloudWatch::Dashboard`` ``DashboardBody: !Sub |``): the only
``${…}`` it contains are the region and the names passed in (for example ``${OrdersFunction}``).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from deployguard.observability import COMMON_DIMENSIONS, METRICS, NAMESPACE
from deployguard.outcome import LOG_MESSAGE, RECORD_TYPE

DEFAULT_REGION = "${AWS::Region}"
DEPLOYMENT_ID_PLACEHOLDER = "d-XXXXXXXXX"

# Logs Insights (AWS::Logs::QueryDefinition QueryString). Fields are the outcome record's keys.
# JSON booleans are 1 / 0 in Logs Insights. Run the rollbacks query over the last week (1w).
WHY_DID_DEPLOYMENT_FAIL_QUERY = f"""\
fields @timestamp, hook, role, decision, reason, function_name, alias, current_version, target_version, rolled_back, duration_ms
| filter record_type = "{RECORD_TYPE}" and message = "{LOG_MESSAGE}" and deployment_id = "{DEPLOYMENT_ID_PLACEHOLDER}"
| sort @timestamp asc"""

ALL_ROLLBACKS_THIS_WEEK_QUERY = f"""\
fields @timestamp, deployment_id, stage, function_name, alias, target_version, current_version, hook, role, alarm_name, alarm_to_restore_ms, reason
| filter record_type = "{RECORD_TYPE}" and message = "{LOG_MESSAGE}" and rolled_back = 1
| sort @timestamp desc
| limit 1000"""

QUERIES: dict[str, str] = {
    "why-did-deployment-fail": WHY_DID_DEPLOYMENT_FAIL_QUERY,
    "all-rollbacks-this-week": ALL_ROLLBACKS_THIS_WEEK_QUERY,
}

RECENT_OUTCOMES_QUERY = f"""\
fields @timestamp, deployment_id, stage, function_name, hook, decision, rolled_back, reason
| filter record_type = "{RECORD_TYPE}" and message = "{LOG_MESSAGE}"
| sort @timestamp desc
| limit 50"""


def why_did_deployment_fail(deployment_id: str) -> str:
    """The 'why did deployment X fail' query for one deployment."""
    return WHY_DID_DEPLOYMENT_FAIL_QUERY.replace(DEPLOYMENT_ID_PLACEHOLDER, deployment_id)


def search(metric: str, stat: str, period: int, **filters: str) -> str:
    """A SEARCH over exactly the dimension set DeployGuard emits ``metric`` with."""
    dimensions = sorted({*METRICS[metric][1], *COMMON_DIMENSIONS})
    terms = [f'MetricName="{metric}"', *(f'{key}="{value}"' for key, value in sorted(filters.items()))]
    return f"SEARCH('{{{NAMESPACE},{','.join(dimensions)}}} {' '.join(terms)}', '{stat}', {period})"


def _lambda_errors_search(functions: Sequence[str], period: int) -> str:
    names = ""
    if functions:
        names = " (" + " OR ".join(f'FunctionName="{name}"' for name in functions) + ")"
    return (
        f"SEARCH('{{AWS/Lambda,ExecutedVersion,FunctionName,Resource}} MetricName=\"Errors\"{names}', "
        f"'Sum', {period})"
    )


def _metric_widget(
    title: str, expressions: list[dict[str, Any]], region: str, *, x: int, y: int, stacked: bool = False
) -> dict[str, Any]:
    return {
        "type": "metric",
        "x": x,
        "y": y,
        "width": 12,
        "height": 6,
        "properties": {
            "title": title,
            "region": region,
            "view": "timeSeries",
            "stacked": stacked,
            "metrics": [[expression] for expression in expressions],
        },
    }


def _expression(
    expression: str, expression_id: str, label: str | None = None, *, right_axis: bool = False
) -> dict[str, Any]:
    return {
        "expression": expression,
        "id": expression_id,
        **({"label": label} if label else {}),
        **({"yAxis": "right"} if right_axis else {}),
    }


def dashboard_body(
    *,
    region: str = DEFAULT_REGION,
    functions: Sequence[str] = (),
    log_groups: Sequence[str] = (),
    period: int = 300,
) -> dict[str, Any]:
    """The dashboard: decisions over time, failed checks by code, rollbacks and time to restore,
    hook durations, and per-version errors (AWS/Lambda Errors by ExecutedVersion) of ``functions``
    (all aliased functions when empty). With ``log_groups``, a table of the latest outcome records.
    """
    decisions = [
        _expression(f"SUM({search('Decisions', 'Sum', period, Result='Failed')})", "failed", "Failed"),
        _expression(
            f"SUM({search('Decisions', 'Sum', period, Result='Succeeded')})", "succeeded", "Succeeded"
        ),
        _expression(
            f"SUM({search('ObservedFailures', 'Sum', period)})",
            "observed",
            "Would have failed (observe mode)",
        ),
    ]
    failures = [_expression(search("FailedChecks", "Sum", period), "failedchecks")]
    rollbacks = [
        _expression(f"SUM({search('Rollbacks', 'Sum', period)})", "rollbacks", "Rollbacks"),
        _expression(search("AlarmToRestoreTime", "Maximum", period), "restore", right_axis=True),
    ]
    durations = [
        _expression(search("HookDuration", "Average", period), "average"),
        _expression(search("HookDuration", "Maximum", period), "maximum"),
    ]
    errors = [_expression(_lambda_errors_search(functions, 60), "errors")]
    widgets = [
        _metric_widget("DeployGuard decisions", decisions, region, x=0, y=0),
        _metric_widget("Failed checks by code", failures, region, x=12, y=0),
        _metric_widget("Rollbacks, and time from alarm to alias restored (ms)", rollbacks, region, x=0, y=6),
        _metric_widget("Hook duration (ms)", durations, region, x=12, y=6),
        _metric_widget("Errors of guarded functions by executed version", errors, region, x=0, y=12),
    ]
    if log_groups:
        sources = " | ".join(f"SOURCE '{name}'" for name in log_groups)
        widgets.append(
            {
                "type": "log",
                "x": 12,
                "y": 12,
                "width": 12,
                "height": 6,
                "properties": {
                    "title": "Latest DeployGuard outcomes",
                    "region": region,
                    "view": "table",
                    "query": f"{sources} | {RECENT_OUTCOMES_QUERY}",
                },
            }
        )
    return {"widgets": widgets}


def dashboard_json(*, indent: int | None = 2, **options: Any) -> str:
    return json.dumps(dashboard_body(**options), indent=indent)
