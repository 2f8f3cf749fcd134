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


def test_no_migration_manages_its_own_transaction():
    # The runner wraps each file in one transaction with the lock; a COMMIT
    # inside would end both early, CONCURRENTLY cannot run inside one.
    for migration in migrations.load():
        code = "\n".join(line.split("--")[0] for line in migration.sql.splitlines()).upper()
        assert not re.search(r"\b(BEGIN|COMMIT|ROLLBACK|CONCURRENTLY|VACUUM)\b", code), migration.name


def test_the_checksum_is_the_content_whatever_the_line_endings():
    assert migrations.checksum("SELECT 1;\nSELECT 2;\n") == migrations.checksum("SELECT 1;\r\nSELECT 2;\r\n")
    assert migrations.checksum("SELECT 1;\n") != migrations.checksum("SELECT 2;\n")
    first = migrations.load()[0]
    assert first.checksum == migrations.checksum((migrations.MIGRATIONS_DIR / f"{first.name}.sql").read_text())
