-- A stage's orders database (SQLite): the catalogue, one customer, and where real orders go.
-- Made by app.create_schema(path). Seed prices are chosen so that the smoke-test basket
-- ("A-1" x1 + "B-2" x2) costs exactly 12 EUR. Deliberately no customers.profile_image column:
-- the "missing_column" broken release (cli/deployguard_cli/example_app.py) selects it.

CREATE TABLE products (
    sku         TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    price_cents INTEGER NOT NULL CHECK (price_cents >= 0)
);

CREATE TABLE customers (
    id    TEXT PRIMARY KEY,
    name  TEXT NOT NULL,
    email TEXT NOT NULL
);

CREATE TABLE orders (
    id          TEXT PRIMARY KEY,
    customer_id TEXT NOT NULL REFERENCES customers (id),
    total_cents INTEGER NOT NULL,
    currency    TEXT NOT NULL,
    items       INTEGER NOT NULL,
    created_at  TEXT NOT NULL
);

INSERT INTO products (sku, name, price_cents) VALUES
    ('A-1', 'Espresso beans 250 g', 500),
    ('B-2', 'Oat milk 1 l', 350),
    ('C-3', 'Ceramic cup', 1250);

INSERT INTO customers (id, name, email) VALUES
    ('c-1001', 'Ada Lovelace', 'ada@example.com');
