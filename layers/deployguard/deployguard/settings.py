"""Settings of the guard functions: validated once at the handler's edge, never read elsewhere.

NOTE: plain parsing, not pydantic: the settings are read on every cold start, and six variables do
not need a validation framework at init (pydantic is imported only to validate a policy).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from deployguard.errors import DeployGuardError
from deployguard.records import datarecord
from deployguard.stages import Stage

PREFIX = "DEPLOYGUARD_"
BUCKET_NAME = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")  # S3's rule for bucket names
TOPIC_ARN = re.compile(r"^arn:aws[a-z-]*:sns:[a-z0-9-]+:\d{12}:[A-Za-z0-9_-]{1,256}(\.fifo)?$")
TABLE_NAME = re.compile(r"^[A-Za-z0-9_.-]{3,255}$")  # DynamoDB's rule for table names


class SettingsError(DeployGuardError):
    code = "SETTINGS"


@datarecord
class HookSettings:
    """Environment of a DeployGuard hook function (``DEPLOYGUARD_*`` variables)."""

    stage: Stage  # DEPLOYGUARD_STAGE: dev, staging or prod
    policy_bucket: (
        str  # DEPLOYGUARD_POLICY_BUCKET: the policy store (<stage>/baseline.json, <stage>/apps/*.json)
    )
    policy_cache_seconds: int = 300
    time_reserve_seconds: float = 10.0  # time kept to report a status before the Lambda timeout
    bake_state_machine_arn: str | None = None
    alert_topic_arn: str | None = None  # SNS topic for failed or rolled-back deployments; unset: none
    # DynamoDB table of the deployments the pre-traffic hook saw start (deployguard.lookup); unset:
    # none recorded, and the alarm rollback searches the account's deployments
    deployment_table: str | None = None

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> HookSettings:
        """The settings in ``environ``; every invalid or missing variable is named in one SettingsError."""
        values: dict[str, Any] = {}
        problems: list[str] = []
        for name, (parse, required) in _FIELDS.items():
            variable = PREFIX + name.upper()
            raw = environ.get(variable)
            if raw is None or not raw.strip():
                if required:
                    problems.append(f"{variable}: required, but not set")
                continue
            try:
                values[name] = parse(raw.strip())
            except ValueError as exc:
                problems.append(f"{variable}: {exc}")
        if problems:
            raise SettingsError(
                f"the function's environment is invalid ({'; '.join(problems)}); "
                "fix the variables in template.yaml"
            )
        return cls(**values)


def _stage(raw: str) -> Stage:
    try:
        return Stage(raw)
    except ValueError:
        allowed = ", ".join(repr(s.value) for s in Stage)
        raise ValueError(f"must be one of {allowed}, not {raw!r}") from None


def _matching(pattern: re.Pattern[str], what: str) -> Callable[[str], str]:
    def parse(raw: str) -> str:
        if not pattern.match(raw):
            raise ValueError(f"must be {what} (matching {pattern.pattern})")
        return raw

    return parse


def _number(kind: type[int] | type[float], low: float, high: float) -> Callable[[str], float]:
    def parse(raw: str) -> float:
        try:
            value = kind(raw)
        except ValueError:
            raise ValueError(f"must be a{'n integer' if kind is int else ' number'}, not {raw!r}") from None
        if not low <= value <= high:
            raise ValueError(f"must be between {low} and {high}, not {value}")
        return value

    return parse


# name → (parse, required). Unset or empty optional variables keep their defaults: templates pass
# "" when a condition leaves a value out (!If [HasTopic, !Ref Topic, ""]).
_FIELDS: dict[str, tuple[Callable[[str], Any], bool]] = {
    "stage": (_stage, True),
    "policy_bucket": (_matching(BUCKET_NAME, "an S3 bucket name"), True),
    "policy_cache_seconds": (_number(int, 0, 3600), False),
    "time_reserve_seconds": (_number(float, 1, 120), False),
    "bake_state_machine_arn": (str, False),
    "alert_topic_arn": (_matching(TOPIC_ARN, "an SNS topic ARN"), False),
    "deployment_table": (_matching(TABLE_NAME, "a DynamoDB table name"), False),
}
