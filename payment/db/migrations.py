"""Versioned schema migrations: sql/migrations/NNNN_description.sql, applied
in order, each in its own transaction, each recorded in
bc_payment.schema_migrations (version, name, checksum, applied_at).

Instances starting together take turns through a transaction-level advisory
lock, taken first in each migration's transaction; whoever holds it re-reads
the version table before applying anything, so each migration runs once.
Nothing is held between transactions (no session lock, no prepared
statement), so this works through PgBouncer in transaction mode too.

A migration file is plain SQL run in one transaction: it cannot hold
statements that refuse a transaction block (CREATE INDEX CONCURRENTLY,
VACUUM) nor its own BEGIN or COMMIT.

Least privilege: migrations run as the role that owns the schema, and the
service as another that only reads and writes its tables. Given that role
(`app_role`, DB_APP_ROLE), every run ends by granting it exactly that, in
its own transaction under the same lock: usage of the schema, SELECT,
INSERT, UPDATE and DELETE on its tables (the version table: SELECT only)
and its sequences. Every run, so that a table a new migration adds is
covered without a migration naming the role.
"""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
from psycopg import sql
from psycopg.rows import TupleRow

from payment.files import MIGRATIONS_DIR

log = logging.getLogger("payment.migrate")

# Any bigint works; this one is "payment" spelled on a phone keypad. The
# former start-up schema (a session lock) used the same key, so an instance of
# an older release starting alongside still takes turns with this one.
MIGRATION_LOCK = 7_296_368

_FILE_NAME = re.compile(r"(\d{4})_([a-z0-9]+(?:_[a-z0-9]+)*)\.sql")

_VERSION_TABLE = """
CREATE TABLE bc_payment.schema_migrations (
    version    integer     PRIMARY KEY,
    name       text        NOT NULL,
    checksum   text        NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
)"""


# What the service's own role is granted: read and write the schema's tables,
# nothing else (no DDL, no TRUNCATE, no other schema). {role} is quoted as an
# identifier.
APP_GRANTS = (
    "GRANT USAGE ON SCHEMA bc_payment TO {role}",
    "GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA bc_payment TO {role}",
    "REVOKE INSERT, UPDATE, DELETE ON bc_payment.schema_migrations FROM {role}",
    "GRANT USAGE ON ALL SEQUENCES IN SCHEMA bc_payment TO {role}",
)


class MigrationError(RuntimeError):
    """The schema cannot be brought up to date; the message names the
    migration and what to do. Not worth retrying."""


@dataclass(frozen=True)
class Migration:
    version: int
    name: str  # the file name without .sql: 0001_payments_and_outbox
    sql: str = field(repr=False)
    checksum: str


@dataclass(frozen=True)
class Outcome:
    version: int  # the database's version afterwards
    applied: list[Migration]


def checksum(text: str) -> str:
    # Line endings normalised: a checkout that turns \n into \r\n has not
    # changed what the migration does.
    return hashlib.sha256(text.replace("\r\n", "\n").encode()).hexdigest()


def load(directory: Path = MIGRATIONS_DIR) -> list[Migration]:
    """The migrations in `directory`, in order. Every .sql file must be named
    NNNN_description.sql and the versions must run 1, 2, 3 ... without a gap:
    a missing or doubled number is a mistake in the release, not a choice."""
    migrations = []
    for path in sorted(Path(directory).glob("*.sql")):
        match = _FILE_NAME.fullmatch(path.name)
        if not match:
            raise MigrationError(f"migration file {path.name} is not named NNNN_description.sql")
        text = path.read_text()
        migrations.append(Migration(int(match[1]), path.stem, text, checksum(text)))
    for expected, migration in enumerate(migrations, start=1):
        if migration.version != expected:
            raise MigrationError(f"migration {migration.name} is out of sequence: version {expected} expected")
    return migrations


def migrate(conninfo: str, *, directory: Path = MIGRATIONS_DIR, target: int | None = None,
            app_role: str | None = None) -> Outcome:
    """Apply every migration not yet recorded (up to `target`, when given),
    one transaction each, and log one line per migration applied, or that the
    schema was up to date; then grant `app_role`, when given, what the
    service needs."""
    migrations = [m for m in load(directory) if target is None or m.version <= target]
    applied: list[Migration] = []
    with psycopg.connect(conninfo, autocommit=True, connect_timeout=10, prepare_threshold=None) as conn:
        while True:
            with conn.transaction():
                recorded = _lock_and_read(conn)
                _check_recorded(recorded, migrations)
                pending = [m for m in migrations if m.version not in recorded]
                if pending:
                    _apply(conn, pending[0])
            if not pending:
                break
            applied.append(pending[0])
            log.info("applied migration %s", pending[0].name, extra={"schemaVersion": pending[0].version})
        if app_role:
            grant_app_role(conn, app_role)
    version = max(recorded, default=0)
    if not applied:
        log.info("schema up to date at version %d", version, extra={"schemaVersion": version})
    return Outcome(version=version, applied=applied)


def grant_app_role(conn: psycopg.Connection[TupleRow], role: str) -> None:
    """APP_GRANTS to `role`, in one transaction under the migration lock:
    concurrent GRANTs on one object can fail ("tuple concurrently updated")."""
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
        if conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)).fetchone() is None:
            raise MigrationError(f"the service's role {role} does not exist: create it first "
                                 f"(docs: least privilege)")
        for statement in APP_GRANTS:
            conn.execute(sql.SQL(statement).format(role=sql.Identifier(role)))
    log.info("granted %s what the service needs on bc_payment", role, extra={"appRole": role})


def recorded_version(conninfo: str) -> int:
    """The highest migration recorded in the database; 0 for none."""
    with psycopg.connect(conninfo, autocommit=True, connect_timeout=10, prepare_threshold=None) as conn:
        if not _has_version_table(conn):
            return 0
        version: int = _only_row(conn.execute("SELECT coalesce(max(version), 0) FROM bc_payment.schema_migrations"))[0]
        return version


def _lock_and_read(conn: psycopg.Connection[TupleRow]) -> dict[int, tuple[str, str]]:
    """Under the lock (held to the end of the transaction): the version
    table, created when missing, as {version: (name, checksum)}."""
    conn.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
    if not _has_version_table(conn):
        _create_version_table(conn)
    rows = conn.execute("SELECT version, name, checksum FROM bc_payment.schema_migrations").fetchall()
    return {version: (name, digest) for version, name, digest in rows}


def _has_version_table(conn: psycopg.Connection[TupleRow]) -> bool:
    exists: bool = _only_row(conn.execute("SELECT to_regclass('bc_payment.schema_migrations') IS NOT NULL"))[0]
    return exists


def _create_version_table(conn: psycopg.Connection[TupleRow]) -> None:
    existing = _only_row(conn.execute("SELECT to_regclass('bc_payment.payments') IS NOT NULL"))[0]
    if existing:
        # Created by the former sql/schema.sql, applied at every start-up.
        # 0001 and 0002 are written to run over any state it left, so they
        # are applied (filling in what is missing) and recorded as usual.
        log.info("adopting the tables of a database that predates versioned migrations")
    schema_exists = _only_row(conn.execute(
        "SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = 'bc_payment')"))[0]
    if not schema_exists:
        conn.execute("CREATE SCHEMA bc_payment")
    conn.execute(_VERSION_TABLE)


def _check_recorded(recorded: dict[int, tuple[str, str]], migrations: list[Migration]) -> None:
    for migration in migrations:
        if migration.version in recorded and recorded[migration.version][1] != migration.checksum:
            raise MigrationError(
                f"migration {migration.name} was changed after it was applied (its checksum differs from the "
                f"one recorded in bc_payment.schema_migrations): restore the file and put the change in a new "
                f"migration")
    newest = max(recorded, default=0)
    if migrations and newest > migrations[-1].version:
        log.warning("database schema is at version %d, newer than this release's %d",
                    newest, migrations[-1].version, extra={"schemaVersion": newest})


def _apply(conn: psycopg.Connection[TupleRow], migration: Migration) -> None:
    try:
        conn.execute(migration.sql)
    except psycopg.Error as exc:
        if conn.broken:
            raise  # the connection, not the migration: worth another try
        # Raised inside the transaction block, so all of it is rolled back.
        raise MigrationError(f"migration {migration.name} failed and was rolled back: "
                             f"{_describe(exc)}") from None
    conn.execute("INSERT INTO bc_payment.schema_migrations (version, name, checksum) VALUES (%s, %s, %s)",
                 (migration.version, migration.name, migration.checksum))


def _only_row(cur: psycopg.Cursor[TupleRow]) -> TupleRow:
    """The row of a query that always returns one."""
    row = cur.fetchone()
    if row is None:
        raise MigrationError("a catalogue query returned no row")
    return row


def _describe(exc: psycopg.Error) -> str:
    # The server's one-line message and SQLSTATE: they name the object at
    # fault. Never the connection string.
    diag = exc.diag
    return f"{diag.message_primary or type(exc).__name__} (SQLSTATE {diag.sqlstate or 'unknown'})"
