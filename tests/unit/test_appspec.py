"""AppSpec parsing: the shapes seen in the wild (AppSpec example vs reference, JSON or YAML), validated strictly."""

from __future__ import annotations

import json

import pytest

from deployguard.appspec import DeploymentTarget, parse_appspec, render_appspec
from deployguard.errors import ResolutionError

EXPECTED = DeploymentTarget(function_name="orders", alias="live", current_version="3", target_version="4")

AS_DOCUMENTED = json.dumps(
    {
        "version": 0.0,
        "Resources": [
            {
                "orders": {
                    "Type": "AWS::Lambda::Function",
                    "Properties": {
                        "Name": "orders",
                        "Alias": "live",
                        "CurrentVersion": "3",
                        "TargetVersion": "4",
                    },
                }
            }
        ],
    }
)

LOWER_CASE_YAML = """
version: "0.0"
resources:
  - orders:
      type: AWS::Lambda::Function
      properties:
        name: orders
        alias: live
        currentversion: 3
        targetversion: 4
"""


@pytest.mark.parametrize("content", [AS_DOCUMENTED, LOWER_CASE_YAML, render_appspec(EXPECTED)])
def test_every_documented_shape_yields_the_versions(content: str) -> None:
    assert parse_appspec(content) == EXPECTED


@pytest.mark.parametrize(
    ("content", "words"),
    [
        ("{not json", "neither JSON nor YAML"),
        ("version: 0.0", "no 'Resources'"),
        ("Resources: []", "exactly one"),
        ("Resources: [{a: {Type: 'AWS::ECS::Service', Properties: {}}}]", "not AWS::Lambda::Function"),
        ("Resources: [{a: {Properties: {Name: f}}}]", "'Alias'"),
        (
            "Resources: [{a: {Properties: {Name: f, Alias: live, CurrentVersion: 1}}}]",
            "TargetVersion is missing",
        ),
    ],
)
def test_bad_appspecs_fail_with_a_reason(content: str, words: str) -> None:
    with pytest.raises(ResolutionError, match=words):
        parse_appspec(content)
