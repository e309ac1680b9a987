"""The policy store: the parser is built ahead on a background thread, and nothing else changes."""

from __future__ import annotations

import json
import threading

import boto3
import pytest

from deployguard import policy as policy_module
from deployguard.aws.policy_store import PolicyStore
from deployguard.errors import PolicyError
from deployguard.stages import Stage

PARAMETER = "/deployguard/prod/policy"
POLICY = {"version": 1, "stage": "prod", "functions": {"orders": {}}}


def store(document: object) -> PolicyStore:
    client = boto3.client("ssm")
    client.put_parameter(Name=PARAMETER, Value=json.dumps(document), Type="String")
    return PolicyStore(client, PARAMETER, max_age=300)


def parser_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "deployguard-policy-parser"]


@pytest.mark.usefixtures("aws")
def test_prepare_starts_one_parser_and_load_waits_for_it() -> None:
    policies = store(POLICY)

    policies.prepare()
    policies.prepare()  # a second invocation, or a second call, starts nothing more
    assert len(parser_threads()) <= 1
    loaded = policies.load(Stage.PROD)

    assert loaded.for_function("orders") is not None
    assert parser_threads() == []  # load() joined it


@pytest.mark.usefixtures("aws")
def test_a_parser_that_fails_to_build_costs_only_the_head_start(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken() -> None:
        raise RuntimeError("simulated")

    monkeypatch.setattr(policy_module, "build_parser", broken)
    policies = store(POLICY)

    policies.prepare()

    assert policies.load(Stage.PROD).stage is Stage.PROD


@pytest.mark.usefixtures("aws")
def test_an_invalid_policy_is_still_a_policy_error_after_prepare() -> None:
    policies = store(
        {**POLICY, "functions": {"orders": {"smoke": [{"name": "q", "expect": [{"eqals": 1}]}]}}}
    )

    policies.prepare()

    with pytest.raises(PolicyError, match="eqals"):
        policies.load(Stage.PROD)
