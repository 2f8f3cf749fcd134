"""Behind a transaction-pooling PgBouncer, as an operator configures it
(`pool_mode = transaction`, `ignore_startup_parameters = extra_float_digits`):
the service keeps no session state, and its settings (statement and lock
timeouts, the connection string's search_path) hold in every transaction,
when DB_ROUTE says so (`transaction-pooler`); on the direct route they are
set once per connection, and statements are prepared.

Two failures were measured before the service was made so: every
connection refused for its startup options (`unsupported startup
parameter: options`), and, with the options dropped by the pooler, a
prepared statement met again on another server connection
(`DuplicatePreparedStatement: prepared statement "_pg3_0" already exists`).
The first tests here show the pooler still does both to a client that
relies on session state, then that the service no longer does.
"""

from __future__ import annotations

import threading
import time
import uuid

import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict
from psycopg.rows import tuple_row

import devstack
from payment.config import Config
from payment.db.pool import open_pool, statement_cursor
from payment.db.store import PaymentStore
from payment.errors import DatabaseUnavailable
from tests.support import DB_ROUTE_SETTING, new_order, payment_body
from tests.timing import ceiling

SETTINGS = "SELECT current_setting('statement_timeout'), current_setting('lock_timeout'), current_setting('search_path')"


@pytest.fixture(scope="module")
def small_pgbouncer(pgbouncer_installed, server_url):
    """Two server connections for the whole test: a client's consecutive
    transactions land on different ones whenever another client is busy."""
    bouncer = devstack.start_pgbouncer(server_url, pool_size=2)
    yield bouncer
    bouncer.stop()


def with_options(url: str, options: str) -> str:
    params = psycopg.conninfo.conninfo_to_dict(url)
    return psycopg.conninfo.make_conninfo(**params, options=options)


def test_the_pooler_reaches_the_run_database(pgbouncer, server_url):
    # Whichever server the run uses: the embedded one the suite starts, or
    # TEST_DATABASE_URL's, over TCP or a Unix socket. A PgBouncer that cannot
    # reach it holds every query for its query_wait_timeout, then refuses it.
    with psycopg.connect(pgbouncer.url_for(server_url), autocommit=True, connect_timeout=10) as conn:
        assert conn.execute("SELECT current_database()").fetchone() == (conninfo_to_dict(server_url)["dbname"],)


def test_the_pooler_refuses_startup_options(pgbouncer, server_url):
    with pytest.raises(psycopg.OperationalError, match="unsupported startup parameter: options"):
        psycopg.connect(with_options(pgbouncer.url_for(server_url), "-c statement_timeout=1000")).close()


def alternate(url: str, prepare_threshold, rounds: int = 30) -> list[str]:
    """One client runs the same query again and again while another keeps
    taking a server connection in between: the errors the first one met."""
    errors = []
    with psycopg.connect(url, autocommit=True, prepare_threshold=prepare_threshold) as client, \
            psycopg.connect(url, autocommit=True, prepare_threshold=None) as other:
        for round_ in range(rounds):
            try:
                client.execute("SELECT count(*) FROM bc_payment.payments WHERE order_id = %s",
                               ("7c9e6679-7425-40de-944b-e07fc1f90ae7",)).fetchone()
            except psycopg.Error as exc:
                errors.append(type(exc).__name__)
            if round_ % 2:
                other.execute("BEGIN")
                other.execute("SELECT 1")
            else:
                other.execute("COMMIT")
    return errors


def test_prepared_statements_break_on_rotating_server_connections(small_pgbouncer, server_url):
    url = small_pgbouncer.url_for(server_url)
    # psycopg's default: prepared on the server after five uses, then met
    # again on a server connection that has it already, or has it not.
    assert {"DuplicatePreparedStatement", "InvalidSqlStatementName"} & set(alternate(url, 5))
    # What the service's pool sets.
    assert alternate(url, None) == []


def test_sixty_payments_through_two_rotating_server_connections(make_client, small_pgbouncer, server_url,
                                                              broker, sandbox, database, events):
    # The connection string as the documented deployment gives it, SearchPath included.
    target = conninfo_to_dict(small_pgbouncer.url_for(server_url))
    connection_string = (f"Host={target['host']};Port={target['port']};Database={target['dbname']};"
                         f"Username={target['user']};SearchPath=bc_payment")
    config = Config.from_env({
        "ConnectionStrings__Default": connection_string, "KAFKA_BOOTSTRAP_SERVERS": broker,
        "ORDERING_SERVICE_URL": sandbox.url, "DB_POOL_MIN": "3", "DB_POOL_MAX": "3", "DB_TIMEOUT_S": "1",
        "DB_ROUTE": "transaction-pooler"})
    assert config.db_search_path == "bc_payment"
    client = make_client(config)
    assert client.app.get("/health/ready").json["status"] == "ready"

    statuses = []
    for _ in range(60):
        reply = client.pay(payment_body(new_order(sandbox)))
        statuses.append(reply.status)
        # A reader on the other server connection in between, as another
        # instance would be.
        with psycopg.connect(small_pgbouncer.url_for(server_url), autocommit=True, prepare_threshold=None) as reader:
            reader.execute("SELECT 1")

    assert statuses == [200] * 60
    assert len(database.rows()) == 60


def test_the_direct_route_behind_a_pooler_fails_at_once_and_says_why(small_pgbouncer, server_url, caplog):
    # DB_ROUTE left at direct behind PgBouncer: every connection is refused
    # for its startup options, so nothing runs with its timeouts missing; the
    # pool's log names the refusal.
    pool = open_pool(small_pgbouncer.url_for(server_url), min_size=1, max_size=1, timeout=1)
    try:
        with pytest.raises(DatabaseUnavailable):
            PaymentStore(pool).ping()
    finally:
        pool.close()
    assert "unsupported startup parameter: options" in caplog.text


def test_statements_are_prepared_on_the_direct_route_only(db_route, database_url):
    pool = open_pool(database_url, min_size=1, max_size=1, timeout=2, route=DB_ROUTE_SETTING[db_route])
    try:
        store = PaymentStore(pool)
        for _ in range(8):  # past psycopg's threshold of five uses
            assert store.find(uuid.uuid4()) is None
        with pool.connection() as conn:
            prepared = [row[0] for row in conn.execute(
                "SELECT statement FROM pg_prepared_statements WHERE NOT from_sql", prepare=False).fetchall()]
    finally:
        pool.close()
    if db_route == "direct":
        assert any("FROM bc_payment.payments" in statement for statement in prepared), prepared
    else:
        # Through the pooler: on no server connection.
        assert prepared == []


@pytest.mark.parametrize("block", ["statement", "transaction"])
def test_the_statement_timeout_holds_on_either_route(db_route, database_url, block):
    pool = open_pool(database_url, min_size=1, max_size=1, timeout=1, route=DB_ROUTE_SETTING[db_route])
    try:
        store = PaymentStore(pool)
        store.ping()
        opened = store._statement(tuple_row) if block == "statement" else store._transaction(tuple_row)
        started = time.monotonic()
        with pytest.raises(DatabaseUnavailable):
            with opened as cur:
                cur.execute("SELECT pg_sleep(10)")
        assert time.monotonic() - started < ceiling(1)
        assert store.ping()  # the connection serves on
    finally:
        pool.close()


def test_settings_hold_in_every_transaction_on_any_server_connection(db_route, database_url, sandbox):
    pool = open_pool(with_options(database_url, "-c search_path=bc_payment,public"),
                     min_size=1, max_size=2, timeout=1.5, route=DB_ROUTE_SETTING[db_route])
    try:
        store = PaymentStore(pool)
        for _ in range(5):
            with store._statement(tuple_row) as cur:
                # The settings and an unqualified name, in one statement's transaction.
                assert cur.execute(SETTINGS).fetchone() == ("1500ms", "1500ms", "bc_payment,public")
                cur.execute("SELECT count(*) FROM payments").fetchone()
            with store._transaction(tuple_row) as cur:
                assert cur.execute(SETTINGS).fetchone() == ("1500ms", "1500ms", "bc_payment,public")
                assert cur.execute(SETTINGS).fetchone() == ("1500ms", "1500ms", "bc_payment,public")
        with pool.connection() as conn:
            left = conn.execute(SETTINGS).fetchone()[:2]
        if db_route == "direct":
            # Set once, when the connection was made.
            assert left == ("1500ms", "1500ms")
        else:
            # Nothing stays on the connection once the transaction is over.
            assert left == ("0", "0")
    finally:
        pool.close()


def test_a_statement_blocked_by_a_held_lock_times_out_as_503(client, config, database, sandbox):
    order_id = new_order(sandbox)
    # Another transaction has a payment for the order in flight and does not
    # commit: the service's insert waits on it.
    holder = psycopg.connect(database.url)
    holder.execute(
        "INSERT INTO bc_payment.payments (id, order_id, customer_id, amount, currency, payment_method,"
        " status, is_simulated) VALUES (gen_random_uuid(), %s, %s, 150, 'USD', 'credit_card', 'pending', true)",
        (order_id, payment_body(order_id)["customerId"]))
    # Should the timeout not hold, the holder gives way after a while and
    # the payment goes through: the test fails rather than hangs.
    release = threading.Timer(8, holder.rollback)
    release.start()
    try:
        started = time.monotonic()
        reply = client.pay(payment_body(order_id))
        elapsed = time.monotonic() - started
    finally:
        release.cancel()
        holder.rollback()
        holder.close()

    assert reply.status == 503
    assert reply.body["errorMessage"] == "Payment processing error: payment database is unavailable"
    assert config.db_timeout <= elapsed < ceiling(config.db_timeout)
    assert database.rows() == []


def test_a_prepared_statement_outlives_a_migration_that_changes_its_result(server_url):
    # Both connections prepare the statement; after the column is widened,
    # psycopg's own cursor fails on the stale statement (once: psycopg then
    # forgets it), the store's runs it again, prepared anew.
    query = "SELECT * FROM bc_payment.widened WHERE code <> %s"
    pool = open_pool(server_url, min_size=1, max_size=1, timeout=2)
    with psycopg.connect(server_url, autocommit=True) as admin, psycopg.connect(server_url, autocommit=True) as other:
        admin.execute("DROP TABLE IF EXISTS bc_payment.widened; CREATE TABLE bc_payment.widened (code varchar(10))")
        admin.execute("INSERT INTO bc_payment.widened VALUES ('abc')")
        try:
            with pool.connection() as conn:
                ours = statement_cursor(pool, conn, tuple_row)
                for _ in range(6):  # prepared from the fifth use
                    assert ours.execute(query, ("x",)).fetchall() == [("abc",)]
                    assert other.execute(query, ("x",)).fetchall() == [("abc",)]
                admin.execute("ALTER TABLE bc_payment.widened ALTER COLUMN code TYPE varchar(20)")
                with pytest.raises(psycopg.errors.FeatureNotSupported, match="cached plan"):
                    other.execute(query, ("x",))
                assert ours.execute(query, ("x",)).fetchall() == [("abc",)]
        finally:
            pool.close()
            admin.execute("DROP TABLE IF EXISTS bc_payment.widened")
