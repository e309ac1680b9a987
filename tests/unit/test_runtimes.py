"""The layer's runtime table is the pinned cfn-lint's runtime lifecycle data, entry for entry: the
deprecated-runtime rule (SET001) and the upgrade rule of drift follow a maintained source."""

from __future__ import annotations

import importlib.metadata
from datetime import date
from pathlib import Path

from deployguard.config_check import is_deprecated
from deployguard.runtimes import RUNTIMES, SOURCE, RuntimeLifecycle
from scripts.generate_runtimes import render, source_data


def _date(value: str | None) -> date | None:
    return date.fromisoformat(value) if value else None


def test_the_layer_table_equals_the_installed_cfn_lint_data() -> None:
    expected = {
        runtime: RuntimeLifecycle(
            deprecated=date.fromisoformat(entry["deprecated"]),
            successor=entry["successor"],
            create_block=_date(entry["create-block"]),
            update_block=_date(entry["update-block"]),
        )
        for runtime, entry in source_data().items()
    }

    assert expected == RUNTIMES, "stale: run `make runtimes` (cfn-lint was upgraded)"
    assert importlib.metadata.version("cfn-lint") in SOURCE


def test_the_generated_module_is_what_the_script_writes() -> None:
    from deployguard import runtimes

    assert runtimes.__file__ is not None
    written = Path(runtimes.__file__).read_text(encoding="utf-8")
    assert written == render(source_data(), importlib.metadata.version("cfn-lint")), "run `make runtimes`"


def test_a_runtime_is_deprecated_from_its_date_on_not_before() -> None:
    deprecated_on = RUNTIMES["nodejs20.x"].deprecated  # 2026-04-30 in cfn-lint 1.58.0

    assert not is_deprecated("nodejs20.x", date.fromordinal(deprecated_on.toordinal() - 1))
    assert is_deprecated("nodejs20.x", deprecated_on)
    assert not is_deprecated("python3.14", deprecated_on)
    assert not is_deprecated("provided.al2023-custom", deprecated_on)  # unknown: not judged


def test_runtimes_the_old_hand_written_list_missed_are_known() -> None:
    assert {"nodejs6.10", "nodejs8.10", "nodejs10.x", "nodejs20.x"} <= set(RUNTIMES)
