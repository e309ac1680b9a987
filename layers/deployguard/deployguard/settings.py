"""Settings of the guard functions: validated once at the handler's edge, never read elsewhere."""

from __future__ import annotations

from collections.abc import Mapping

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from deployguard.errors import DeployGuardError
from deployguard.policy import Stage, format_location

PREFIX = "DEPLOYGUARD_"


class SettingsError(DeployGuardError):
    code = "SETTINGS"


class HookSettings(BaseModel):
    """Environment of a DeployGuard hook function (``DEPLOYGUARD_*`` variables)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    stage: Stage = Field(description="DEPLOYGUARD_STAGE: dev, staging or prod")
    policy_parameter: str = Field(
        pattern=r"^/[A-Za-z0-9_.\-/]+$",
        description="DEPLOYGUARD_POLICY_PARAMETER: SSM parameter holding this stage's policy",
    )
    policy_cache_seconds: int = Field(300, ge=0, le=3600)
    time_reserve_seconds: float = Field(
        10.0, ge=1, le=120, description="Time kept to report a status before the Lambda timeout."
    )
    bake_state_machine_arn: str | None = Field(None, description="DEPLOYGUARD_BAKE_STATE_MACHINE_ARN")
    alert_topic_arn: str | None = Field(
        None,
        pattern=r"^arn:aws[a-z-]*:sns:[a-z0-9-]+:\d{12}:[A-Za-z0-9_-]{1,256}(\.fifo)?$",
        description=(
            "DEPLOYGUARD_ALERT_TOPIC_ARN: SNS topic for a summary of each failed or rolled-back "
            "deployment; unset or empty: no alerts"
        ),
    )

    @field_validator("alert_topic_arn", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        # NOTE: templates pass "" when a condition leaves the topic out (!If [HasTopic, !Ref T, ""]).
        return None if isinstance(value, str) and not value.strip() else value

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> HookSettings:
        values = {key.removeprefix(PREFIX).lower(): v for key, v in environ.items() if key.startswith(PREFIX)}
        try:
            return cls.model_validate(values)
        except ValidationError as exc:
            problems = "; ".join(
                f"{PREFIX}{format_location(e['loc']).upper()}: {e['msg']}"
                for e in exc.errors(include_url=False, include_input=False)
            )
            raise SettingsError(
                f"the function's environment is invalid ({problems}); fix the variables in template.yaml"
            ) from exc
