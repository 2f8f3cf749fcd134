"""The files in sql/migrations/, read without a database: named and numbered
as the runner expects, each free of what cannot run in its transaction."""

from __future__ import annotations

import re

from payment.db import migrations


def test_migrations_are_numbered_from_one_without_a_gap():
    loaded = migrations.load()
    assert [m.version for m in loaded] == list(range(1, len(loaded) + 1))
    assert loaded[0].name == "0001_payments_and_outbox"
    assert loaded[1].name == "0002_gateway_reference_and_ledgers"


# A dollar-quoted body ($$ ... $$, $body$ ... $body$): a DO block's PL/pgSQL.
_DOLLAR_QUOTED = re.compile(r"(\$\w*\$).*?\1", re.DOTALL)
_TRANSACTION_CONTROL = r"\b(BEGIN|COMMIT|ROLLBACK|CONCURRENTLY|VACUUM)\b"


def transaction_control(sql: str) -> list[str]:
    """What in `sql` would manage a transaction or refuse to run in one.
    In a PL/pgSQL body BEGIN opens a block, not a transaction: there only
    the others count."""
    code = "\n".join(line.split("--")[0] for line in sql.splitlines()).upper()
    bodies = [match[0] for match in _DOLLAR_QUOTED.finditer(code)]
    outside = _DOLLAR_QUOTED.sub(" ", code)
    return (re.findall(_TRANSACTION_CONTROL, outside)
            + [word for body in bodies for word in re.findall(_TRANSACTION_CONTROL, body) if word != "BEGIN"])


def test_no_migration_manages_its_own_transaction():
    # The runner wraps each file in one transaction with the lock; a COMMIT
    # inside would end both early, CONCURRENTLY cannot run inside one.
    for migration in migrations.load():
        assert transaction_control(migration.sql) == [], migration.name


def test_transaction_control_is_found_outside_and_inside_a_do_block():
    assert transaction_control("BEGIN;\nCREATE TABLE t (id int);\nCOMMIT;") == ["BEGIN", "COMMIT"]
    assert transaction_control("CREATE INDEX CONCURRENTLY i ON t (id);\nVACUUM t;") == ["CONCURRENTLY", "VACUUM"]
    assert transaction_control("DO $$\nBEGIN\n  PERFORM 1;\n  COMMIT;\nEND\n$$;\nbegin;") == ["BEGIN", "COMMIT"]
    assert transaction_control("DO $body$ BEGIN PERFORM 1; END $body$;\n-- COMMIT in a comment") == []


def test_the_checksum_is_the_content_whatever_the_line_endings():
    assert migrations.checksum("SELECT 1;\nSELECT 2;\n") == migrations.checksum("SELECT 1;\r\nSELECT 2;\r\n")
    assert migrations.checksum("SELECT 1;\n") != migrations.checksum("SELECT 2;\n")
    first = migrations.load()[0]
    assert first.checksum == migrations.checksum((migrations.MIGRATIONS_DIR / f"{first.name}.sql").read_text())
