"""Policy documents of a large fleet, as the policy store holds them (the tests and
scripts/bench_policy.py): one application with many functions, each with many smoke cases."""

from __future__ import annotations

import json
from typing import Any

FLEET_FUNCTIONS = 200
FLEET_CASES = 20


def fleet_entry(index: int, cases: int, stage: str = "prod") -> dict[str, Any]:
    """A function entry like policies/prod/apps/orders.yaml's, with ``cases`` smoke cases."""
    name = f"fleet-{stage}-fn-{index:03d}"
    return {
        "match": name,
        "config": {
            "required": ["STAGE", "DATABASE_URL"],
            "rules": [
                {
                    "variable": "DATABASE_URL",
                    "part": "host",
                    "allow": [rf"\.{stage}\.example\.com$"],
                    "deny": ["staging", "dev", "test"],
                }
            ],
            "settings": {"timeout": {"min_seconds": 3, "max_seconds": 15}},
        },
        "smoke": [
            {
                "name": f"case-{case:02d}",
                "payload": {
                    "action": "quote",
                    "customer_id": f"c-{1000 + case}",
                    "items": [{"sku": "A-1", "qty": 1}, {"sku": "B-2", "qty": 2}],
                },
                "expect": [
                    {"path": "$.total", "equals": 12},
                    {"path": "$.currency", "equals": "EUR"},
                    {"path": "$.items", "equals": 2},
                    {"path": "$.order_id", "regex": "^ord-[0-9a-f]{12}$"},
                ],
                "max_latency_ms": 1000,
                "timeout_ms": 5000,
            }
            for case in range(cases)
        ],
        "alarms": {"select": {"names": [f"{name}-errors"], "tags": {"deployguard:function": name}}},
    }


def fleet_application(
    application: str = "fleet",
    stage: str = "prod",
    *,
    functions: int = FLEET_FUNCTIONS,
    cases: int = FLEET_CASES,
) -> dict[str, Any]:
    """An application document of ``functions`` functions x ``cases`` smoke cases (200 x 20 is
    about 1.4 MB of compact JSON)."""
    return {
        "version": 1,
        "stage": stage,
        "application": application,
        "functions": {f"fn-{i:03d}": fleet_entry(i, cases, stage) for i in range(functions)},
    }


def compact(document: Any) -> str:
    """The document as ``deployguard policy publish`` stores it."""
    return json.dumps(document, separators=(",", ":"))


PROD_BASELINE: dict[str, Any] = {
    "version": 1,
    "stage": "prod",
    "unguarded": "fail",
    "defaults": {
        "config": {"plaintext_secrets": "error", "settings": {"deprecated_runtime": "error"}},
        "version_health": {"max_error_rate": 0.01, "min_invocations": 50, "inconclusive": "fail"},
        "bake": {"minutes": 15},
    },
    "floors": {
        "config.plaintext_secrets": "error",
        "bake.minutes": 10,
        "version_health.max_error_rate": 0.05,
        "version_health.inconclusive": "fail",
    },
}
"""A prod baseline with floors (the tests' and the benchmark's)."""
