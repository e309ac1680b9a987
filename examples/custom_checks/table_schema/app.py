"""A DeployGuard custom check: the DynamoDB table the new version expects exists, is usable, and has
the key schema the code was written for.

DeployGuard invokes it with the deployment's context (``target_version_arn`` among it); it reads the
table's name from the new version's own environment (``TABLE_VARIABLE``, default ``TABLE_NAME``),
describes the table, and answers ``{"result": "pass" | "fail", "findings": [...]}``.

Settings (the check function's environment):
  EXPECTED_KEYS   the key schema, e.g. ``pk:HASH,sk:RANGE`` (required)
  TABLE_VARIABLE  the variable of the guarded function holding the table name (default TABLE_NAME)
"""

from __future__ import annotations

import os
from functools import cache
from typing import Any

import boto3
from botocore.exceptions import ClientError


@cache
def _lambda() -> Any:
    return boto3.client("lambda")


@cache
def _dynamodb() -> Any:
    return boto3.client("dynamodb")


def _finding(code: str, message: str, level: str = "error") -> dict[str, str]:
    return {"code": code, "level": level, "message": message}


def expected_keys(setting: str) -> list[tuple[str, str]]:
    """``pk:HASH,sk:RANGE`` as [("pk", "HASH"), ("sk", "RANGE")]."""
    keys = [tuple(part.strip().split(":", 1)) for part in setting.split(",") if part.strip()]
    if not keys or any(len(k) != 2 or k[1] not in ("HASH", "RANGE") for k in keys):
        raise ValueError("EXPECTED_KEYS must look like 'pk:HASH' or 'pk:HASH,sk:RANGE'")
    return [(k[0], k[1]) for k in keys]


def check(event: dict[str, Any], expected: list[tuple[str, str]], variable: str) -> dict[str, Any]:
    target = event.get("target_version_arn") or f"{event['function_name']}:{event['target_version']}"
    config = _lambda().get_function_configuration(FunctionName=target)
    table = config.get("Environment", {}).get("Variables", {}).get(variable)
    if not table:
        return {"result": "fail", "findings": [_finding("TABLE001", f"the new version sets no {variable}")]}
    try:
        described = _dynamodb().describe_table(TableName=table)["Table"]
    except ClientError as exc:
        if exc.response["Error"]["Code"] != "ResourceNotFoundException":
            raise
        return {
            "result": "fail",
            "findings": [_finding("TABLE002", f"table {table} ({variable}) does not exist")],
        }
    found = [(k["AttributeName"], k["KeyType"]) for k in described["KeySchema"]]
    findings = []
    if found != expected:
        shown = ", ".join(f"{name}:{kind}" for name, kind in found)
        wanted = ", ".join(f"{name}:{kind}" for name, kind in expected)
        findings.append(
            _finding("TABLE003", f"table {table} has keys ({shown}) but the release expects ({wanted})")
        )
    if described.get("TableStatus") not in ("ACTIVE", "UPDATING"):
        findings.append(_finding("TABLE004", f"table {table} is {described.get('TableStatus')}", "warning"))
    return {
        "result": "fail" if any(f["level"] == "error" for f in findings) else "pass",
        "findings": findings,
    }


def handler(event: dict[str, Any], _context: Any) -> dict[str, Any]:
    expected = expected_keys(os.environ["EXPECTED_KEYS"])
    return check(event, expected, os.environ.get("TABLE_VARIABLE", "TABLE_NAME"))
