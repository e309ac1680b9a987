"""The deployment stages a policy and a hook belong to."""

from __future__ import annotations

from enum import StrEnum


class Stage(StrEnum):
    DEV = "dev"
    STAGING = "staging"
    PROD = "prod"


# Where the stage's policy store keeps each document (``deployguard.aws.policy_store``): here, with
# no dependency, so the CLI and the tests' builders name them without importing the hooks' reader.


def baseline_key(stage: Stage | str) -> str:
    """The S3 key of ``stage``'s baseline."""
    return f"{Stage(stage).value}/baseline.json"


def application_key(stage: Stage | str, application: str) -> str:
    """The S3 key of ``application``'s document in ``stage``."""
    return f"{Stage(stage).value}/apps/{application}.json"


def applications_prefix(stage: Stage | str) -> str:
    return f"{Stage(stage).value}/apps/"


APP_TAG = "deployguard:app"
"""The function tag naming the application it belongs to: its policy is that application's
document in the stage's policy store (``<stage>/apps/<application>.json``)."""

STAGE_TAG = "deployguard:stage"
"""The function tag naming the stage whose DeployGuard may guard it (dev, staging or prod): the
guard's scope (``deployguard.guard``), and the tag the guard roles' IAM conditions test."""
