"""The example application's broken releases: one-line edits of ``functions/orders/app.py``.

Each entry is a ``replacements`` argument for
``deployguard_cli.localaws.lambda_runner.zip_directory(functions/orders, replacements=...)``, which
builds the real code with that single edit, so a rehearsal deploys the classic bad releases:

* ``missing_column`` — the customer query selects ``profile_image``, a column the stage
  database lacks: every quote fails with ``sqlite3.OperationalError`` (smoke tests catch it).
* ``string_total`` — ``calculate_total`` returns ``"12.00"`` instead of the number ``12``: no
  error, a wrong answer type (a smoke test that asserts ``total equals 12`` catches it).
* ``partial_failure`` — the per-line quantity limit drops from 99 to 3: orders with qty > 3
  raise ``ValueError`` while the smoke basket (qty 1 and 2) still passes, so only the alarms on
  real traffic during the canary catch it.

``tests/unit/test_orders_app.py`` asserts each old text occurs exactly once in app.py.
"""

from __future__ import annotations

from typing import Final

Replacements = dict[str, tuple[str, str]]

BROKEN_RELEASES: Final[dict[str, Replacements]] = {
    "missing_column": {
        "app.py": (
            "SELECT id, name, email FROM customers",
            "SELECT id, name, email, profile_image FROM customers",
        )
    },
    "string_total": {"app.py": ("    return total\n", '    return f"{total:.2f}"\n')},
    "partial_failure": {"app.py": ("MAX_QTY_PER_LINE = 99", "MAX_QTY_PER_LINE = 3")},
}
