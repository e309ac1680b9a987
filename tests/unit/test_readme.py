"""The README is part of the product: its commands and its policy examples must stay true."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from deployguard.policy import load_policy

README = (Path(__file__).resolve().parents[2] / "README.md").read_text()
POLICY_BLOCKS = [b for b in re.findall(r"```yaml\n(.*?)```", README, re.DOTALL) if b.startswith("version: 1")]


def test_the_first_lines_give_the_two_commands() -> None:
    head = README.splitlines()[:6]
    assert any(line.startswith("make rehearse") for line in head)
    assert any(line.startswith("make test") for line in head)


def test_the_readme_shows_a_policy_for_every_stage() -> None:
    stages = {load_policy(block).stage.value for block in POLICY_BLOCKS}
    assert stages == {"dev", "staging", "prod"}


@pytest.mark.parametrize("block", POLICY_BLOCKS, ids=lambda b: b.split("\n")[1])
def test_every_policy_example_is_valid(block: str) -> None:
    load_policy(block, "README.md")
