"""The versioned migrations against real PostgreSQL, each test in databases
of its own (created beside the test database, dropped afterwards): what they
build equals sql/schema.sql, a database of the former idempotent schema is
adopted, an upgrade loses nothing, a failing or changed migration stops
start-up, and ten instances migrating at once apply each migration once."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path

import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from psycopg.rows import dict_row

from payment import jsonio
from payment.db import migrations
from payment.db.pool import open_pool
from payment.db.queries import QUERIES, SQL_DIR
from payment.gateways.port import Found
from payment.gateways.simulator import SimulatedGateway
from payment.model import Payment, Refund
from tests.conftest import PGBOUNCER_SERVER_CONNECTIONS
from tests.support import DB_ROUTE_SETTING

ROOT = Path(__file__).resolve().parents[2]
LEGACY = sorted((ROOT / "tests" / "legacy_schema").glob("*.sql"))
LATEST = migrations.load()[-1].version


# --- databases of the test's own ----------------------------------------------


class Server:
    """The test database's server, where the tests make databases of their own."""

    def __init__(self, url: str):
        self.params = conninfo_to_dict(url)
        self.base = self.params.get("dbname") or "postgres"
        self.created: list[str] = []

    def url(self, name: str) -> str:
        return make_conninfo(**{**self.params, "dbname": name})

    def create(self, suffix: str) -> str:
        name = f"{self.base}_{suffix}"
        self._admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)', f'CREATE DATABASE "{name}"')
        self.created.append(name)
        return self.url(name)

    def drop_all(self) -> None:
        self._admin(*(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)' for name in self.created))

    def _admin(self, *statements: str) -> None:
        with psycopg.connect(self.url("postgres"), autocommit=True) as conn:
            for statement in statements:
                conn.execute(statement)


@pytest.fixture
def server(database_url):
    server = Server(database_url)
    yield server
    server.drop_all()


def execute(url: str, sql: str, params=None):
    with psycopg.connect(url, autocommit=True, row_factory=dict_row) as conn:
        cursor = conn.execute(sql, params)
        return cursor.fetchall() if cursor.description else None


def catalog(url: str) -> dict[str, list]:
    """Everything the schema bc_payment consists of, as the catalog tells it:
    relations with their options, columns (of tables and views) in order with
    type, default, nullability and identity, constraints and indexes with
    their definitions, views' queries, sequences."""
    queries = {
        "relations": """
            SELECT relname, relkind, reloptions FROM pg_class
            WHERE relnamespace = 'bc_payment'::regnamespace ORDER BY relname""",
        "columns": """
            SELECT c.relname, a.attname, format_type(a.atttypid, a.atttypmod) AS type,
                   a.attnotnull, pg_get_expr(d.adbin, d.adrelid) AS default, a.attidentity,
                   row_number() OVER (PARTITION BY c.oid ORDER BY a.attnum) AS position
            FROM pg_attribute a
            JOIN pg_class c ON c.oid = a.attrelid
            LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
            WHERE c.relnamespace = 'bc_payment'::regnamespace AND c.relkind IN ('r', 'p', 'v')
              AND a.attnum > 0 AND NOT a.attisdropped
            ORDER BY c.relname, position""",
        "constraints": """
            SELECT conrelid::regclass::text AS "table", conname, contype, pg_get_constraintdef(oid) AS definition
            FROM pg_constraint WHERE connamespace = 'bc_payment'::regnamespace
            ORDER BY 1, 2""",
        "indexes": """
            SELECT tablename, indexname, indexdef FROM pg_indexes
            WHERE schemaname = 'bc_payment' ORDER BY 1, 2""",
        "views": """
            SELECT viewname, definition FROM pg_views
            WHERE schemaname = 'bc_payment' ORDER BY 1""",
        "sequences": """
            SELECT sequencename, data_type::text, start_value, increment_by, max_value, cycle
            FROM pg_sequences WHERE schemaname = 'bc_payment' ORDER BY 1""",
    }
    return {part: execute(url, sql) for part, sql in queries.items()}


def recorded(url: str) -> list[tuple]:
    return [(r["version"], r["name"], r["checksum"]) for r in
            execute(url, "SELECT version, name, checksum FROM bc_payment.schema_migrations ORDER BY version")]


def the_migrations() -> list[tuple]:
    return [(m.version, m.name, m.checksum) for m in migrations.load()]


# --- what the migrations build ----------------------------------------------


def test_schema_sql_is_what_the_migrations_build(server):
    documented, migrated = server.create("documented"), server.create("migrated")
    execute(documented, (SQL_DIR / "schema.sql").read_text())
    migrations.migrate(migrated)

    expected = catalog(documented)
    assert catalog(migrated) == expected
    # Not two empty lists that happen to agree:
    tables = {r["relname"] for r in expected["relations"] if r["relkind"] == "r"}
    assert tables == {"payments", "outbox", "payment_checks", "simulator_ledger",
                      "webhook_events", "refunds", "refund_checks", "simulator_refunds", "simulator_refund_voids",
                      "schema_migrations"}
    views = {r["relname"] for r in expected["relations"] if r["relkind"] == "v"}
    assert views == {"simulator_charges", "simulator_voids"} == {r["viewname"] for r in expected["views"]}
    assert {"payments_one_live_payment_per_order", "outbox_unsent_by_key", "webhook_events_by_age",
            "refunds_by_payment", "refunds_idempotency_key_key"} <= {r["indexname"] for r in expected["indexes"]}
    assert ("payments", "gateway_reference") in {(r["relname"], r["attname"]) for r in expected["columns"]}


def test_a_fresh_database_gets_each_migration_once_and_records_it(server, caplog):
    url = server.create("fresh")
    caplog.set_level("INFO", logger="payment.migrate")

    first = migrations.migrate(url)
    second = migrations.migrate(url)

    assert [m.version for m in first.applied] == list(range(1, LATEST + 1)) and first.version == LATEST
    assert second.applied == [] and second.version == LATEST
    assert recorded(url) == the_migrations()
    assert [r.getMessage() for r in caplog.records] == [
        *(f"applied migration {m.name}" for m in migrations.load()),
        f"schema up to date at version {LATEST}",
    ]
    assert migrations.recorded_version(url) == LATEST


def test_the_first_migration_is_the_schema_before_the_gateway_work(server):
    url, before = server.create("target"), server.create("before")
    outcome = migrations.migrate(url, target=1)
    assert outcome.version == 1 and recorded(url) == the_migrations()[:1]

    execute(before, (ROOT / "tests" / "legacy_schema" / "4e79aab_schema.sql").read_text())
    execute(url, "DROP TABLE bc_payment.schema_migrations")
    assert catalog(url) == catalog(before)
    assert execute(url, "SELECT to_regclass('bc_payment.payment_checks') AS t") == [{"t": None}]


# --- a database of the former start-up schema -------------------------------


@pytest.mark.parametrize("legacy", LEGACY, ids=lambda path: path.stem)
def test_a_database_of_the_former_schema_is_adopted(server, legacy, caplog):
    """sql/schema.sql as each earlier release applied it at start-up (no
    version table): migrate succeeds, fills in what that release lacked,
    records every version, and keeps the rows."""
    reference, url = server.create("reference"), server.create("legacy")
    migrations.migrate(reference)
    execute(url, legacy.read_text())
    payment_id = insert_payment(url, status="succeeded")
    caplog.set_level("INFO", logger="payment.migrate")

    outcome = migrations.migrate(url)

    assert outcome.version == LATEST and recorded(url) == the_migrations()
    assert "adopting the tables of a database that predates versioned migrations" in caplog.messages
    assert catalog(url) == catalog(reference)
    assert [r["id"] for r in execute(url, "SELECT id FROM bc_payment.payments")] == [payment_id]
    assert migrations.migrate(url).applied == []


# --- an upgrade keeps the data -----------------------------------------------


def insert_payment(url: str, *, status: str, order_id: uuid.UUID | None = None,
                   amount: Decimal = Decimal("150.0000")) -> uuid.UUID:
    payment_id = uuid.uuid4()
    execute(url, """
        INSERT INTO bc_payment.payments (id, order_id, customer_id, reservation_id, amount, currency,
            payment_method, status, error_code, error_message, transaction_id, created_at, processed_at,
            is_simulated, simulated_response)
        VALUES (%(id)s, %(order_id)s, %(customer_id)s, NULL, %(amount)s, 'USD', 'credit_card', %(status)s,
            %(code)s, %(message)s, %(txn)s, '2025-01-02T03:04:05.123456Z',
            CASE WHEN %(status)s = 'pending' THEN NULL ELSE '2025-01-02T03:04:06Z'::timestamptz END,
            true, %(response)s)""", {
        "id": payment_id, "order_id": order_id or uuid.uuid4(), "customer_id": uuid.uuid4(),
        "amount": amount, "status": status,
        "code": "CARD_DECLINED" if status == "failed" else None,
        "message": "Card declined" if status == "failed" else None,
        "txn": f"txn_{payment_id.hex[:12]}" if status == "succeeded" else None,
        "response": jsonio.dumps({"status": status}),
    })
    return payment_id


def insert_event(url: str, payment_id: uuid.UUID, *, sent: bool) -> None:
    execute(url, """
        INSERT INTO bc_payment.outbox (event_id, payment_id, topic, event_key, event_type, payload, sent_at)
        VALUES (%s, %s, 'payment-succeeded', 'key', 'PaymentSucceeded', '{"amount": 150.00}',
                CASE WHEN %s THEN now() END)""", (uuid.uuid4(), payment_id, sent))


def table(url: str, name: str, order: str) -> list[dict]:
    return execute(url, f"SELECT * FROM bc_payment.{name} ORDER BY {order}")


def test_an_upgrade_from_the_first_version_loses_nothing(server):
    url = server.create("upgrade")
    migrations.migrate(url, target=1)
    live_order = uuid.uuid4()
    insert_payment(url, status="failed", order_id=live_order)
    succeeded = insert_payment(url, status="succeeded", order_id=live_order, amount=Decimal("0.0001"))
    pending = insert_payment(url, status="pending", amount=Decimal("9999999999999999.9999"))
    insert_event(url, succeeded, sent=True)
    insert_event(url, succeeded, sent=False)
    payments_before, outbox_before = table(url, "payments", "id"), table(url, "outbox", "seq")

    assert [m.version for m in migrations.migrate(url).applied] == list(range(2, LATEST + 1))

    payments_after = table(url, "payments", "id")
    assert [r.pop("gateway_reference") for r in payments_after] == [None] * 3
    assert payments_after == payments_before and len(payments_after) == 3
    assert table(url, "outbox", "seq") == outbox_before and len(outbox_before) == 2
    assert {r["amount"] for r in payments_after} >= {Decimal("0.0001"), Decimal("9999999999999999.9999")}

    # The guard still guards: no second live payment for either order, and the
    # service's own INSERT ... ON CONFLICT still names the index's predicate.
    for order_id in (live_order, execute(url, "SELECT order_id FROM bc_payment.payments WHERE id = %s",
                                         (pending,))[0]["order_id"]):
        with pytest.raises(psycopg.errors.UniqueViolation):
            insert_payment(url, status="pending", order_id=order_id)
        assert execute(url, QUERIES["insert_pending_payment"], {
            "id": uuid.uuid4(), "order_id": order_id, "customer_id": uuid.uuid4(), "reservation_id": None,
            "amount": Decimal("1"), "currency": "USD", "payment_method": "credit_card",
            "is_simulated": True}) == []
    # The new column and tables are there to be used.
    execute(url, "UPDATE bc_payment.payments SET gateway_reference = 'pi_1' WHERE id = %s", (pending,))
    execute(url, "INSERT INTO bc_payment.payment_checks VALUES (%s, 1, now())", (pending,))


def test_an_upgrade_to_refunds_keeps_the_payments_and_refunds_them(server):
    """From the release before refunds with its payments, events and ledger:
    the refunds' migration adds their tables and touches nothing else, and a
    payment taken before it can be refunded, within its amount, by the
    service's own guard."""
    [refunds] = [m.version for m in migrations.load() if m.name.endswith("_refunds")]
    url = server.create("refunds")
    migrations.migrate(url, target=refunds - 1)
    paid = insert_payment(url, status="succeeded", amount=Decimal("150.0000"))
    pending = insert_payment(url, status="pending")
    insert_event(url, paid, sent=True)
    execute(url, """INSERT INTO bc_payment.simulator_charges (payment_id, order_id, amount, currency, succeeded,
                        transaction_id, response) SELECT id, order_id, amount, currency, true, transaction_id, 'ok'
                      FROM bc_payment.payments WHERE id = %s""", (paid,))
    before = {name: table(url, name, order) for name, order in
              (("payments", "id"), ("outbox", "seq"), ("simulator_charges", "payment_id"))}

    assert [m.version for m in migrations.migrate(url).applied] == list(range(refunds, LATEST + 1))

    assert {name: table(url, name, order) for name, order in
            (("payments", "id"), ("outbox", "seq"), ("simulator_charges", "payment_id"))} == before
    assert len(before["payments"]) == 2 and len(before["outbox"]) == 1
    guard = QUERIES["insert_pending_refund"]

    def refund(payment_id, amount, key):
        """(payment status, refundable before, inserted) as the guard answers."""
        with psycopg.connect(url, autocommit=True) as conn:
            # Its two statements in one round trip, as the service sends them.
            cur = psycopg.ClientCursor(conn, row_factory=dict_row)
            cur.execute(guard, {"payment_id": payment_id, "amount": amount, "id": uuid.uuid4(),
                                "reason": "event_cancelled", "is_simulated": True, "idempotency_key": key,
                                "fingerprint": key})
            cur.nextset()  # past the lock, to the guard's row
            row = cur.fetchone()
        return row["payment_status"], row["refundable"], row["id"] is not None

    assert refund(paid, Decimal("100.00"), "a") == ("succeeded", Decimal("150.0000"), True)
    assert refund(paid, Decimal("60.00"), "b") == ("succeeded", Decimal("50.0000"), False)
    assert refund(paid, None, "c") == ("succeeded", Decimal("50.0000"), True)
    assert refund(pending, Decimal("1.00"), "d") == ("pending", Decimal("150.0000"), False)
    assert [r["amount"] for r in table(url, "refunds", "created_at")] == [Decimal("100.0000"),
                                                                         Decimal("50.0000")]


LEDGER_CHARGES = """
    INSERT INTO bc_payment.simulator_charges (payment_id, order_id, amount, currency, succeeded, transaction_id,
        error_code, error_message, failure_reason, response, charged_at)
    VALUES (%(charged)s, %(order)s, 150.0000, 'USD', true, 'txn_00000000000000aa', NULL, NULL, NULL,
            'Success - TransactionId: txn_00000000000000aa', '2025-01-02T03:04:05.123456Z'),
           (%(declined)s, %(order)s, 10.1300, 'EUR', false, NULL, 'CARD_DECLINED', 'Card declined',
            'Issuing bank rejected the transaction', 'Declined - ErrorCode: CARD_DECLINED', '2025-01-02T03:04:06Z')"""


def simulator_payment(payment_id: uuid.UUID, amount: str = "150.00") -> Payment:
    return Payment(
        id=payment_id, order_id=uuid.uuid4(), customer_id=uuid.uuid4(), reservation_id=None,
        amount=Decimal(amount), currency="USD", payment_method="credit_card", status="pending", error_code=None,
        error_message=None, failure_reason=None, transaction_id=None, created_at=datetime.now(timezone.utc),
        processed_at=None, is_simulated=True, simulated_response=None)


def privileges(url: str, role: str, relations: tuple[str, ...]) -> set[tuple[str, str]]:
    return {(relation, privilege) for relation in relations for privilege in ("SELECT", "INSERT", "UPDATE", "DELETE")
            if execute(url, "SELECT has_table_privilege(%s, %s, %s) AS has",
                       (role, f"bc_payment.{relation}", privilege))[0]["has"]}


def test_an_upgrade_to_the_simulator_ledger_keeps_its_charges_voids_and_grants(server, db_route):
    """From the release before the ledger, with a succeeded and a declined
    charge, a void, and a role granted the old tables: the ledger's migration
    moves every row into simulator_ledger, the views of the old names show
    them as the tables did, the role keeps what it was granted, and the
    simulator carries on from those rows."""
    [ledger] = [m.version for m in migrations.load() if m.name.endswith("_simulator_ledger")]
    url = server.create("ledger")
    migrations.migrate(url, target=ledger - 1)
    charged, declined, voided = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    execute(url, LEDGER_CHARGES, {"charged": charged, "declined": declined, "order": uuid.uuid4()})
    execute(url, "INSERT INTO bc_payment.simulator_voids VALUES (%s, '2025-01-02T03:04:07Z')", (voided,))
    old = ("simulator_charges", "simulator_voids")
    before = {name: table(url, name, "payment_id") for name in old}
    reader = f"ledger_reader_{uuid.uuid4().hex[:8]}"
    execute(url, f'CREATE ROLE "{reader}"')
    try:
        execute(url, f'GRANT SELECT ON bc_payment.simulator_charges, bc_payment.simulator_voids TO "{reader}"')
        execute(url, f'GRANT INSERT ON bc_payment.simulator_charges TO "{reader}"')

        assert [m.version for m in migrations.migrate(url).applied] == list(range(ledger, LATEST + 1))

        assert {name: table(url, name, "payment_id") for name in old} == before
        assert [len(before[name]) for name in old] == [2, 1]
        assert {r["payment_id"]: r["voided"] for r in table(url, "simulator_ledger", "payment_id")} == {
            charged: False, declined: False, voided: True}
        assert privileges(url, reader, (*old, "simulator_ledger")) == {
            ("simulator_charges", "SELECT"), ("simulator_charges", "INSERT"), ("simulator_voids", "SELECT"),
            ("simulator_ledger", "SELECT"), ("simulator_ledger", "INSERT")}
    finally:
        execute(url, f'DROP OWNED BY "{reader}"')
        execute(url, f'DROP ROLE "{reader}"')

    pool = open_pool(url, min_size=1, max_size=1, timeout=5, route=DB_ROUTE_SETTING[db_route])
    try:
        pool.wait(10)
        simulator = SimulatedGateway(pool, latency_ms=0, delay_before_charge_ms=0, ledger_path=None)
        # A charge again gets the first result; a voided payment id stays refused.
        again = simulator.charge(simulator_payment(charged))
        assert (again.succeeded, again.transaction_id) == (True, "txn_00000000000000aa")
        assert simulator.charge(simulator_payment(voided)).error_code == "PAYMENT_VOIDED"
        assert simulator.lookup(simulator_payment(declined)).result.error_code == "CARD_DECLINED"
        assert simulator.lookup(simulator_payment(voided)).found is Found.NEVER_CHARGED
        # The charge taken before the upgrade is refunded, within its amount.
        payment = simulator_payment(charged)
        assert simulator.refund(payment, a_refund(payment, "150.00")).succeeded
        assert simulator.refund(payment, a_refund(payment, "0.01")).error_code == "AMOUNT_EXCEEDS_CHARGE"
    finally:
        pool.close()
    assert {name: table(url, name, "payment_id") for name in old} == before


def a_refund(payment: Payment, amount: str) -> Refund:
    return Refund(
        id=uuid.uuid4(), payment_id=payment.id, order_id=payment.order_id, customer_id=payment.customer_id,
        amount=Decimal(amount), currency=payment.currency, reason="event_cancelled", status="pending",
        error_code=None, error_message=None, transaction_id=None, created_at=datetime.now(timezone.utc),
        processed_at=None, is_simulated=True, idempotency_key=str(uuid.uuid4()), request_fingerprint="0" * 64)


# --- a migration that fails, a migration that changed --------------------------


def migrations_dir(tmp_path: Path, **extra: str) -> Path:
    directory = tmp_path / "migrations"
    shutil.copytree(migrations.MIGRATIONS_DIR, directory)
    for name, sql in extra.items():
        (directory / f"{name}.sql").write_text(sql)
    return directory


def test_a_failing_migration_rolls_back_whole_and_is_named(server, tmp_path):
    url = server.create("failing")
    broken = f"{LATEST + 1:04d}_add_chargebacks"
    directory = migrations_dir(tmp_path, **{broken: """
        CREATE TABLE bc_payment.chargebacks (id uuid PRIMARY KEY);
        ALTER TABLE bc_payment.payments ADD COLUMN disputed_amount numeric(20, 4);
        ALTER TABLE bc_payment.payments ADD COLUMN dispute_state no_such_type;
    """})

    with pytest.raises(migrations.MigrationError) as failed:
        migrations.migrate(url, directory=directory)

    message = str(failed.value)
    assert message.startswith(f"migration {broken} failed and was rolled back: ")
    assert 'type "no_such_type" does not exist' in message and "SQLSTATE 42704" in message
    # The ones before it were applied and kept; nothing of it was.
    assert recorded(url) == the_migrations()
    assert execute(url, "SELECT to_regclass('bc_payment.chargebacks') AS t") == [{"t": None}]
    assert "disputed_amount" not in {r["attname"] for r in catalog(url)["columns"]}

    # Mended, it applies.
    (directory / f"{broken}.sql").write_text("CREATE TABLE bc_payment.chargebacks (id uuid PRIMARY KEY);\n")
    assert [m.name for m in migrations.migrate(url, directory=directory).applied] == [broken]


def migrate_command(url: str, *args: str, **env: str) -> subprocess.Popen:
    environment = {**os.environ, "DATABASE_URL": url, "KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:1", **env}
    environment.pop("ConnectionStrings__Default", None)
    return subprocess.Popen([sys.executable, "-m", "payment", "migrate", *args], cwd=ROOT, env=environment,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_a_changed_migration_stops_start_up_at_once(server, processes):
    url = server.create("changed")
    migrations.migrate(url, target=1)
    first = migrations.load()[0]
    execute(url, "UPDATE bc_payment.schema_migrations SET checksum = %s WHERE version = 1", ("0" * 64,))

    started = time.monotonic()
    process = processes.add(migrate_command(url, "--wait", "30"))
    out, err = process.communicate(timeout=60)

    assert process.returncode != 0
    assert time.monotonic() - started < 15  # refused, not retried for --wait
    # One JSON line, the last: the log's own format, so the platform's log pipeline reads it.
    assert err == ""
    failure = json.loads(out.splitlines()[-1])
    assert (failure["level"], failure["logger"]) == ("ERROR", "payment.startup")
    assert failure["message"] == (
        f"start-up failed: migration {first.name} was changed after it was applied (its "
        f"checksum differs from the one recorded in bc_payment.schema_migrations): restore the file and put "
        f"the change in a new migration")
    assert recorded(url) == [(1, first.name, "0" * 64)]  # and nothing after it applied


def test_misnamed_or_missing_migration_files_are_refused(tmp_path):
    gap = migrations_dir(tmp_path / "gap", **{f"{LATEST + 2:04d}_later": "SELECT 1;"})
    with pytest.raises(migrations.MigrationError, match=f"out of sequence: version {LATEST + 1} expected"):
        migrations.load(gap)
    misnamed = migrations_dir(tmp_path / "misnamed", **{"add-chargebacks": "SELECT 1;"})
    with pytest.raises(migrations.MigrationError, match="add-chargebacks.sql is not named NNNN_description.sql"):
        migrations.load(misnamed)


# --- ten instances at once ---------------------------------------------------


def test_ten_instances_migrating_at_once_apply_each_migration_once(server, broker, db_route, server_url,
                                                                  processes):
    """Ten `python -m payment migrate` against one empty database. The test
    holds the migration lock until all ten wait on it (behind PgBouncer, as
    many as its server connections let through; the others queue in it), so
    they all contend; then each migration is applied by exactly one of them."""
    url = server.create("concurrent")
    # The test watches the server itself, not through the pooler it fills.
    watch = make_conninfo(**{**conninfo_to_dict(server_url), "dbname": conninfo_to_dict(url)["dbname"]})
    expected = 10 if db_route == "direct" else PGBOUNCER_SERVER_CONNECTIONS - 1
    with psycopg.connect(url) as holder:
        holder.execute("SELECT pg_advisory_xact_lock(%s)", (migrations.MIGRATION_LOCK,))
        instances = [processes.add(migrate_command(url, KAFKA_BOOTSTRAP_SERVERS=broker)) for _ in range(10)]
        waiting = wait_for_waiters(watch, expected, timeout=30)
        holder.rollback()  # releases the lock: all ten race for it
        outputs = [process.communicate(timeout=120) for process in instances]

    assert [p.returncode for p in instances] == [0] * 10, [err for _, err in outputs]
    messages = [record["message"] for out, _ in outputs for line in out.splitlines()
                if line.startswith("{") for record in [jsonio.loads(line)]]
    for migration in migrations.load():
        assert messages.count(f"applied migration {migration.name}") == 1, messages
    assert messages.count(f"schema up to date at version {LATEST}") >= 10 - LATEST
    assert messages.count("schema applied; topics ready") == 10
    assert recorded(url) == the_migrations()
    assert waiting == expected
    # Nothing is left holding the lock: no session lock outlives a migration.
    # (In this database: the server's other databases belong to other tests.)
    assert execute(watch, "SELECT count(*) AS n FROM pg_locks WHERE locktype = 'advisory' AND database = "
                          "(SELECT oid FROM pg_database WHERE datname = current_database())") == [{"n": 0}]


def wait_for_waiters(url: str, expected: int, timeout: float) -> int:
    deadline = time.monotonic() + timeout
    with psycopg.connect(url, autocommit=True, prepare_threshold=None) as observer:
        while True:
            waiting = observer.execute(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted "
                "AND database = (SELECT oid FROM pg_database WHERE datname = current_database())").fetchone()[0]
            if waiting >= expected or time.monotonic() > deadline:
                return waiting
            time.sleep(0.1)


# --- start-up under gunicorn ----------------------------------------------------


def test_the_service_migrates_at_start_unless_told_not_to(server, serve):
    """`python -m payment serve`: by default its master migrates before any
    worker starts (make run, a single instance); with MIGRATE_ON_START=false
    (a release step has done it) it leaves the database alone."""
    url = server.create("serve")

    served = serve(DATABASE_URL=url, MIGRATE_ON_START="false", workers=1)
    assert served.stop() == 0
    assert migrations.recorded_version(url) == 0
    assert not any(r["logger"] == "payment.migrate" for r in served.records())

    served = serve(DATABASE_URL=url, workers=1)
    assert served.stop() == 0
    assert migrations.recorded_version(url) == LATEST
    assert [r["message"] for r in served.records() if r["logger"] == "payment.migrate"] == [
        *(f"applied migration {m.name}" for m in migrations.load()), "schema applied; topics ready"]
