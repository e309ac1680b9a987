"""The deployment stages a policy and a hook belong to."""

from __future__ import annotations

from enum import StrEnum


class Stage(StrEnum):
    DEV = "dev"
    STAGING = "staging"
    PROD = "prod"
