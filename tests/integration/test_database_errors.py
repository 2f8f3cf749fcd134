"""What the real database refuses, as opposed to being away: a constraint the
outcome's write breaks, a role without the grants it needs. The adapter
translates it (payment/db/pool.py, database_errors): a 500 that names the
payment database and nothing else, no Retry-After (a retry does not mend
it), nothing half-written, nothing published, and a log line with the
SQLSTATE and the constraint, never the row."""

from __future__ import annotations

import logging
import uuid

import pytest
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from payment.config import Config
from tests.support import NO_EVENTS, Database, new_order, payment_body

REFUSED = {"success": False, "errorMessage": "Payment processing error: payment database could not complete the operation",
           "payment": None}
LEAKS = ("bc_payment", "outbox", "constraint", "violat", "permission", "denied", "23514", "42501", "psycopg",
         "SELECT", "INSERT", "UPDATE", "Traceback")
CONSTRAINT = "outbox_refused_for_one_order"


def assert_refused(reply):
    assert (reply.status, reply.body) == (500, REFUSED)
    assert "Retry-After" not in reply.headers
    for word in LEAKS:
        assert word.lower() not in reply.text.lower(), word


@pytest.fixture
def outbox_refusing(database):
    """refuse(order_id): a CHECK constraint the outbox row of that order
    breaks (SQLSTATE 23514), as a constraint added by a migration could;
    dropped afterwards."""
    def refuse(order_id: str) -> None:
        database.execute(sql.SQL("ALTER TABLE bc_payment.outbox ADD CONSTRAINT {} CHECK (event_key <> {}) NOT VALID")
                         .format(sql.Identifier(CONSTRAINT), sql.Literal(order_id)).as_string(None))

    yield refuse
    database.execute(sql.SQL("ALTER TABLE bc_payment.outbox DROP CONSTRAINT IF EXISTS {}")
                     .format(sql.Identifier(CONSTRAINT)).as_string(None))


def test_an_outcome_the_database_refuses_is_a_500_and_the_payment_stays_pending(
        client, sandbox, database, events, outbox_refusing, caplog):
    order_id = new_order(sandbox)
    outbox_refusing(order_id)

    with caplog.at_level(logging.ERROR, logger="payment.db.pool"):
        reply = client.pay(payment_body(order_id))

    assert_refused(reply)
    # The outcome and its event are one statement: neither was written. The
    # charge was taken, so the payment stays pending for the reconciler.
    [row] = database.rows()
    assert row["status"] == "pending" and row["processed_at"] is None
    assert database.rows("outbox") == []
    assert events.all() == NO_EVENTS
    [record] = [r for r in caplog.records if r.name == "payment.db.pool"]
    assert record.getMessage() == "database refused an operation: CheckViolation"
    assert (record.sqlState, record.constraint) == ("23514", CONSTRAINT)
    assert order_id not in record.getMessage()


@pytest.fixture
def role_without_grants(server_url, db_route):
    """A connection string for a role that may log in but not use the
    service's schema: a deployment whose grants were forgotten."""
    if db_route != "direct":
        pytest.skip("the tests' PgBouncer lets in only the users of its auth file")
    params = conninfo_to_dict(server_url)
    name = f"{params.get('dbname', 'payments')}_without_grants"
    admin = Database(server_url)
    admin.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(name)).as_string(None))
    admin.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(name)).as_string(None))
    yield make_conninfo(server_url, user=name)
    admin.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(name)).as_string(None))


def test_reads_and_payments_the_database_refuses_are_a_500_naming_it(
        role_without_grants, database_url, broker, sandbox_url, sandbox, database, events, make_client):
    client = make_client(Config.from_env({
        "DATABASE_URL": role_without_grants, "KAFKA_BOOTSTRAP_SERVERS": broker,
        "ORDERING_SERVICE_URL": sandbox_url, "DB_TIMEOUT_S": "1"}))

    assert_refused(client.get(f"/payments/{uuid.uuid4()}"))
    assert_refused(client.get("/payments", params={"orderId": str(uuid.uuid4())}))
    assert_refused(client.pay(payment_body(new_order(sandbox))))

    assert database.rows() == [] and database.rows("simulator_charges") == []
    assert events.all() == NO_EVENTS
