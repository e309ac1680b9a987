"""Orders: quote a basket from the stage's catalogue — the example application DeployGuard guards.

Events:
  ``{"action": "quote", "items": [{"sku": "A-1", "qty": 1}], "customer_id": "c-1001"}`` →
  ``{"order_id": "ord-…", "total": 12, "currency": "EUR", "items": 2, "customer": "Ada Lovelace"}``
  (``total`` is a JSON number in euros; ``items`` counts the basket's lines). An unknown sku or
  customer, or a quantity outside 1..MAX_QTY_PER_LINE, raises ``ValueError``.
  ``{"action": "ping"}`` → ``{"ok": true, "stage": STAGE, "version": AWS_LAMBDA_FUNCTION_VERSION}``.

Configuration (read from the environment and validated once, at the handler's entry; anything
missing or wrong raises ``ConfigError`` naming the variable): ``STAGE`` (dev | staging | prod),
``DATABASE_URL`` (``sqlite:///ABSOLUTE/PATH.db``, an existing file made by ``create_schema``),
``SEED_DATABASE`` (``true``: make a missing file from schema.sql — the deployed example, whose
file lives in /tmp; default ``false``, so a typo never silently creates an empty database),
``AWS_LAMBDA_FUNCTION_VERSION`` (set by Lambda).

Synthetic traffic (the contract with DeployGuard's smoke tests): when the invocation's client
context has ``custom["deployguard-synthetic"] == "true"`` (DeployGuard sets it on every smoke
invocation, see ``deployguard.aws.lambda_functions.SYNTHETIC_MARKER``), the function computes and
returns exactly the answer real traffic would get but has no side effects: it writes an ``orders``
row only for real traffic. So everything a smoke test asserts on is computed before that write.

What is real: the SQLite queries against the stage's database file, the pricing, the order row.
What is simulated: the database itself (a local SQLite file standing in for a stage's database),
and the broken releases — ``cli/deployguard_cli/example_app.py`` makes them by editing single
lines of this file (the customer query, ``calculate_total``'s return, ``MAX_QTY_PER_LINE``);
``tests/unit/test_orders_app.py`` checks those lines still match.
"""

# NOTE: no `from __future__ import annotations`: with string annotations, @dataclass looks its
# module up in sys.modules, and tests load this file by path (spec_from_file_location) unregistered.
import contextlib
import os
import sqlite3
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Self

STAGES = ("dev", "staging", "prod")
SQLITE_URL_PREFIX = "sqlite://"
SYNTHETIC_MARKER = "deployguard-synthetic"
CURRENCY = "EUR"
SCHEMA_FILE = Path(__file__).with_name("schema.sql")

MAX_QTY_PER_LINE = 99
CUSTOMER_QUERY = "SELECT id, name, email FROM customers WHERE id = ?"
PRICE_QUERY = "SELECT price_cents FROM products WHERE sku = ?"
INSERT_ORDER = (
    "INSERT INTO orders (id, customer_id, total_cents, currency, items, created_at) VALUES (?, ?, ?, ?, ?, ?)"
)


class ConfigError(RuntimeError):
    """The function's configuration is missing or wrong; the message names the variable and the fix."""


@dataclass(frozen=True)
class Settings:
    stage: str
    database: Path
    version: str

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Self:
        stage = env.get("STAGE")
        if stage not in STAGES:
            raise ConfigError(f"STAGE must be one of {', '.join(STAGES)}; it is {stage!r}")
        seed = env.get("SEED_DATABASE", "false")
        if seed not in ("true", "false"):
            raise ConfigError(f"SEED_DATABASE must be 'true' or 'false'; it is {seed!r}")
        return cls(
            stage=stage,
            database=database_path(env.get("DATABASE_URL"), seed=seed == "true"),
            version=function_version(env),
        )


def database_path(url: str | None, *, seed: bool = False) -> Path:
    """The database file of ``sqlite:///ABSOLUTE/PATH.db``. It must exist (SQLite would silently
    create an empty one), unless ``seed``: then a missing file is made from schema.sql — what the
    example does when deployed to AWS (SEED_DATABASE=true), where /tmp starts empty."""
    expected = "set DATABASE_URL to sqlite:///ABSOLUTE/PATH.db"
    if not url:
        raise ConfigError(f"DATABASE_URL is not set; {expected}")
    if not url.startswith(SQLITE_URL_PREFIX + "/"):
        raise ConfigError(f"DATABASE_URL {url!r} is not a SQLite file URL; {expected}")
    path = Path(url.removeprefix(SQLITE_URL_PREFIX))
    if "?" in url or not path.is_absolute() or path.as_posix().startswith("//"):
        raise ConfigError(f"DATABASE_URL {url!r} must name an absolute file path; {expected}")
    if seed and not path.exists():
        create_schema(path)
    if not path.is_file():
        raise ConfigError(f"DATABASE_URL names {path}, which does not exist; create it with create_schema()")
    return path


def function_version(env: Mapping[str, str]) -> str:
    version = env.get("AWS_LAMBDA_FUNCTION_VERSION")
    if not version:
        raise ConfigError("AWS_LAMBDA_FUNCTION_VERSION is not set (Lambda sets it; set it when testing)")
    return version


@dataclass(frozen=True)
class Line:
    sku: str
    qty: int
    price_cents: int


@dataclass(frozen=True)
class Customer:
    id: str
    name: str
    email: str


def handler(event: Mapping[str, Any], context: object) -> dict[str, Any]:
    settings = Settings.from_env(os.environ)
    return handle(event, settings, synthetic=is_synthetic(context))


def is_synthetic(context: object) -> bool:
    """True for DeployGuard's smoke invocations (client context ``custom`` marker)."""
    custom = getattr(getattr(context, "client_context", None), "custom", None)
    return isinstance(custom, Mapping) and custom.get(SYNTHETIC_MARKER) == "true"


def handle(event: Mapping[str, Any], settings: Settings, *, synthetic: bool) -> dict[str, Any]:
    action = event.get("action")
    if action == "ping":
        return {"ok": True, "stage": settings.stage, "version": settings.version}
    if action == "quote":
        with contextlib.closing(sqlite3.connect(settings.database)) as db, db:
            return quote(db, event, synthetic=synthetic)
    raise ValueError(f"unknown action {action!r}; expected 'quote' or 'ping'")


def quote(db: sqlite3.Connection, event: Mapping[str, Any], *, synthetic: bool) -> dict[str, Any]:
    customer = find_customer(db, event.get("customer_id"))
    lines = [price_line(db, item) for item in basket(event.get("items"))]
    total = calculate_total(lines)
    order_id = f"ord-{uuid.uuid4().hex[:12]}"
    if not synthetic:
        record_order(db, order_id, customer, lines)
    return {
        "order_id": order_id,
        "total": total,
        "currency": CURRENCY,
        "items": len(lines),
        "customer": customer.name,
    }


def basket(items: object) -> list[tuple[str, int]]:
    if not isinstance(items, list) or not items:
        raise ValueError("items must be a non-empty list of {'sku': str, 'qty': int}")
    lines = []
    for item in items:
        sku = item.get("sku") if isinstance(item, dict) else None
        qty = item.get("qty") if isinstance(item, dict) else None
        if not isinstance(sku, str) or not isinstance(qty, int) or isinstance(qty, bool):
            raise ValueError(f"each item needs a string sku and an integer qty; got {item!r}")
        if not 1 <= qty <= MAX_QTY_PER_LINE:
            raise ValueError(f"qty of {sku} must be between 1 and {MAX_QTY_PER_LINE}; it is {qty}")
        lines.append((sku, qty))
    return lines


def find_customer(db: sqlite3.Connection, customer_id: object) -> Customer:
    if not isinstance(customer_id, str) or not customer_id:
        raise ValueError("customer_id must be a non-empty string")
    row = db.execute(CUSTOMER_QUERY, (customer_id,)).fetchone()
    if row is None:
        raise ValueError(f"unknown customer {customer_id!r}")
    return Customer(id=row[0], name=row[1], email=row[2])


def price_line(db: sqlite3.Connection, item: tuple[str, int]) -> Line:
    sku, qty = item
    row = db.execute(PRICE_QUERY, (sku,)).fetchone()
    if row is None:
        raise ValueError(f"unknown sku {sku!r}")
    return Line(sku=sku, qty=qty, price_cents=int(row[0]))


def total_cents(lines: Sequence[Line]) -> int:
    return sum(line.price_cents * line.qty for line in lines)


def calculate_total(lines: Sequence[Line]) -> int | float:
    """The total in euros as a JSON number: 12 for 1200 cents, 12.5 for 1250 — never a string."""
    cents = total_cents(lines)
    total: int | float = cents // 100 if cents % 100 == 0 else cents / 100
    return total


def record_order(db: sqlite3.Connection, order_id: str, customer: Customer, lines: Sequence[Line]) -> None:
    """The side effect synthetic calls skip."""
    created_at = datetime.now(UTC).isoformat(timespec="seconds")
    db.execute(INSERT_ORDER, (order_id, customer.id, total_cents(lines), CURRENCY, len(lines), created_at))


def create_schema(path: Path | str) -> Path:
    """Make a stage's database file at ``path`` (which must not exist) from ``schema.sql``."""
    database = Path(path)
    if database.exists():
        raise FileExistsError(f"{database} exists; create_schema makes a new database")
    with contextlib.closing(sqlite3.connect(database)) as db:
        db.executescript(SCHEMA_FILE.read_text(encoding="utf-8"))
    return database
