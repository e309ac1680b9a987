"""The orders example app, in-process: quotes from a temporary SQLite stage database, the
synthetic-traffic contract, configuration errors, and the broken releases a rehearsal builds."""

from __future__ import annotations

import io
import sqlite3
import zipfile
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import Any

import pytest

from deployguard_cli.example_app import BROKEN_RELEASES
from deployguard_cli.localaws.lambda_runner import zip_directory
from tests.support.handlers import ROOT, load_module

ORDERS = ROOT / "functions" / "orders"
QUOTE: dict[str, Any] = {
    "action": "quote",
    "items": [{"sku": "A-1", "qty": 1}, {"sku": "B-2", "qty": 2}],
    "customer_id": "c-1001",
}


def load_app(path: Path) -> ModuleType:
    return load_module(path, f"orders_app_{abs(hash(path))}")


@dataclass
class Context:
    """The one part of Lambda's context the app reads."""

    client_context: Any = None


SYNTHETIC = Context(
    client_context=SimpleNamespace(custom={"deployguard-synthetic": "true"}, env=None, client=None)
)


@pytest.fixture
def app() -> ModuleType:
    return load_app(ORDERS / "app.py")


@pytest.fixture
def database(app: ModuleType, tmp_path: Path) -> Path:
    path: Path = app.create_schema(tmp_path / "staging.db")
    return path


@pytest.fixture
def stage_env(monkeypatch: pytest.MonkeyPatch, database: Path) -> None:
    monkeypatch.setenv("STAGE", "staging")
    monkeypatch.setenv("DATABASE_URL", f"sqlite://{database}")
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_VERSION", "7")


def orders_written(database: Path) -> int:
    with sqlite3.connect(database) as db:
        count: int = db.execute("SELECT COUNT(*) FROM orders").fetchone()[0]
    return count


def release(name: str, tmp_path: Path) -> ModuleType:
    """The broken release ``name`` exactly as a rehearsal deploys it, loaded in-process."""
    folder = tmp_path / name
    with zipfile.ZipFile(io.BytesIO(zip_directory(ORDERS, replacements=BROKEN_RELEASES[name]))) as archive:
        archive.extractall(folder)
    return load_app(folder / "app.py")


@pytest.mark.usefixtures("stage_env")
def test_a_quote_prices_the_basket_as_a_number_and_records_the_order(app: ModuleType, database: Path) -> None:
    # GIVEN the seeded stage database  WHEN real traffic asks for a quote
    answer = app.handler(QUOTE, Context())

    # THEN 5.00 x1 + 3.50 x2 is the number 12 in EUR, and one order row is written
    assert answer["total"] == 12 and isinstance(answer["total"], int)
    assert answer["currency"] == "EUR"
    assert answer["items"] == 2
    assert answer["customer"] == "Ada Lovelace"
    assert answer["order_id"].startswith("ord-")
    assert orders_written(database) == 1


@pytest.mark.usefixtures("stage_env")
def test_a_synthetic_quote_answers_the_same_without_side_effects(app: ModuleType, database: Path) -> None:
    # GIVEN DeployGuard's smoke-test marker in the client context
    # WHEN the same quote is asked
    answer = app.handler(QUOTE, SYNTHETIC)

    # THEN the answer is computed but no order is written
    assert answer["total"] == 12
    assert orders_written(database) == 0


@pytest.mark.usefixtures("stage_env")
def test_ping_reports_the_stage_and_the_running_version(app: ModuleType) -> None:
    assert app.handler({"action": "ping"}, Context()) == {"ok": True, "stage": "staging", "version": "7"}


def test_totals_are_numbers_in_euros(app: ModuleType) -> None:
    # GIVEN lines in cents  WHEN totalled  THEN whole euros are ints, others exact decimals, never strings
    line = app.Line
    assert app.calculate_total([line("A-1", 1, 500), line("B-2", 2, 350)]) == 12
    assert app.calculate_total([line("C-3", 1, 1250)]) == 12.5


@pytest.mark.usefixtures("stage_env")
@pytest.mark.parametrize(
    ("event", "message"),
    [
        ({**QUOTE, "items": [{"sku": "Z-9", "qty": 1}]}, "unknown sku 'Z-9'"),
        ({**QUOTE, "customer_id": "c-404"}, "unknown customer 'c-404'"),
        ({**QUOTE, "items": [{"sku": "A-1", "qty": 0}]}, "between 1 and 99"),
        ({**QUOTE, "items": []}, "non-empty list"),
        ({"action": "refund"}, "unknown action 'refund'"),
    ],
)
def test_bad_requests_raise_value_error(
    app: ModuleType, database: Path, event: dict[str, Any], message: str
) -> None:
    # WHEN a request names something the catalogue does not have  THEN ValueError says what, nothing is written
    with pytest.raises(ValueError, match=message):
        app.handler(event, Context())
    assert orders_written(database) == 0


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("STAGE", None, "STAGE must be one of dev, staging, prod"),
        ("STAGE", "production", "STAGE must be one of dev, staging, prod"),
        ("DATABASE_URL", None, "DATABASE_URL is not set"),
        ("DATABASE_URL", "postgres://db.staging.example.com/orders", "not a SQLite file URL"),
        ("DATABASE_URL", "sqlite://relative.db", "not a SQLite file URL"),
        ("DATABASE_URL", "sqlite:////double/slash.db", "absolute file path"),
        ("DATABASE_URL", "sqlite:///nowhere/orders.db", "does not exist"),
        ("AWS_LAMBDA_FUNCTION_VERSION", None, "AWS_LAMBDA_FUNCTION_VERSION is not set"),
    ],
)
@pytest.mark.usefixtures("stage_env")
def test_invalid_configuration_is_refused_naming_the_variable(
    app: ModuleType, monkeypatch: pytest.MonkeyPatch, variable: str, value: str | None, message: str
) -> None:
    # GIVEN one variable missing or wrong
    if value is None:
        monkeypatch.delenv(variable)
    else:
        monkeypatch.setenv(variable, value)

    # WHEN the function is invoked  THEN it refuses to run, naming the variable
    with pytest.raises(app.ConfigError, match=message):
        app.handler({"action": "ping"}, Context())


def test_create_schema_refuses_to_overwrite_a_database(app: ModuleType, database: Path) -> None:
    with pytest.raises(FileExistsError):
        app.create_schema(database)


@pytest.mark.parametrize("name", sorted(BROKEN_RELEASES))
def test_each_broken_release_edits_one_line_that_exists_in_app_py(name: str) -> None:
    # GIVEN the real source  THEN each release's old text is there exactly once (so it cannot drift)
    source = (ORDERS / "app.py").read_text()
    for file, (old, new) in BROKEN_RELEASES[name].items():
        assert file == "app.py"
        assert source.count(old) == 1, f"{name}: {old!r} must occur exactly once in app.py"
        assert new not in source
        assert "\n" not in old.strip("\n") and "\n" not in new.strip("\n")


@pytest.mark.usefixtures("stage_env")
def test_the_missing_column_release_fails_every_quote(tmp_path: Path) -> None:
    broken = release("missing_column", tmp_path)

    with pytest.raises(sqlite3.OperationalError, match="profile_image"):
        broken.handler(QUOTE, SYNTHETIC)


@pytest.mark.usefixtures("stage_env")
def test_the_string_total_release_answers_a_string(tmp_path: Path) -> None:
    broken = release("string_total", tmp_path)

    assert broken.handler(QUOTE, SYNTHETIC)["total"] == "12.00"


@pytest.mark.usefixtures("stage_env")
def test_the_partial_failure_release_passes_the_smoke_basket_but_fails_bulk_orders(tmp_path: Path) -> None:
    broken = release("partial_failure", tmp_path)

    # the smoke basket (qty 1 and 2) still passes ...
    assert broken.handler(QUOTE, SYNTHETIC)["total"] == 12
    # ... but part of real traffic (qty > 3) raises
    with pytest.raises(ValueError, match="between 1 and 3"):
        broken.handler({**QUOTE, "items": [{"sku": "A-1", "qty": 4}]}, Context())


def test_a_missing_database_is_created_only_when_seeding_is_asked_for(tmp_path: Path) -> None:
    app = load_app(ROOT / "functions" / "orders" / "app.py")
    url = f"sqlite://{tmp_path / 'fresh.db'}"
    env = {"STAGE": "dev", "DATABASE_URL": url, "AWS_LAMBDA_FUNCTION_VERSION": "1"}

    with pytest.raises(app.ConfigError, match="does not exist"):
        app.Settings.from_env(env)
    settings = app.Settings.from_env({**env, "SEED_DATABASE": "true"})

    assert settings.database.is_file()
