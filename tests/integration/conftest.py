"""Fixtures of the integration tier: an embedded AWS (moto with DeployGuard's extensions) that no
real account can be reached from, and a Lambda context for the handlers."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from deployguard import entrypoints
from tests.support.aws import FAKE_CREDENTIALS, REAL_AWS_VARIABLES, local_aws
from tests.support.handlers import FakeLambdaContext


@pytest.fixture
def lambda_context() -> FakeLambdaContext:
    return FakeLambdaContext()


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fake credentials and region so nothing can reach a real account."""
    for key, value in {**FAKE_CREDENTIALS, "POWERTOOLS_METRICS_NAMESPACE": "DeployGuard"}.items():
        monkeypatch.setenv(key, value)
    for key in REAL_AWS_VARIABLES:
        monkeypatch.delenv(key, raising=False)


@pytest.fixture
def aws(aws_env: None) -> Iterator[None]:
    """moto for every service, Lambda without Docker, with DeployGuard's moto extensions; DeployGuard's
    cached clients and adapters are made anew inside it and dropped after."""
    with local_aws():
        entrypoints.reset()
        yield
    entrypoints.reset()
