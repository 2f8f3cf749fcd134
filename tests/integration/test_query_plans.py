"""Every named query of sql/queries.sql, and of the simulator's
sql/simulator.sql, finds its rows through an index, never by reading the
whole payments or outbox table, so that a payment costs the same with a
million rows behind it as with none.

The tables hold enough rows, with fresh statistics (ANALYZE), that the planner
takes an index whenever one can serve the query. Each query is planned twice:
as a custom plan (its first executions) and as the generic plan that a
prepared statement settles on after five (psycopg prepares a query that a
connection runs that often).
"""

from __future__ import annotations

import json
import re
import uuid
from datetime import datetime, timezone
from decimal import Decimal

import psycopg
import pytest

from payment.db.queries import QUERIES
from payment.gateways.simulator import LEDGER_QUERIES

# The queries of POST /payments; the test below covers them with the others,
# and fails if one of these is renamed away.
REQUEST_PATH = ("find_succeeded_payment", "insert_pending_payment", "find_live_payment",
                "settle_payment", "mark_outbox_sent")

ROWS = 20_000

# A value for every parameter name the queries use.
SAMPLE = {
    "id": uuid.uuid4(), "order_id": uuid.uuid4(), "customer_id": uuid.uuid4(),
    "reservation_id": uuid.uuid4(), "payment_id": uuid.uuid4(), "event_id": uuid.uuid4(),
    "event_ids": [uuid.uuid4(), uuid.uuid4()], "amount": Decimal("150.00"), "currency": "USD",
    "payment_method": "credit_card", "is_simulated": True, "status": "succeeded",
    "transaction_id": "txn_0123456789abcdef", "error_code": None, "error_message": None,
    "failure_reason": None, "simulated_response": "Success - TransactionId: txn_0123456789abcdef",
    "topic": "payment-succeeded", "event_key": str(uuid.uuid4()), "event_type": "payment-succeeded",
    "payload": "{}", "grace_s": 15.0, "limit": 200, "retention_s": 7 * 24 * 3600.0,
    "older_than_s": 60.0, "lease_s": 60.0, "after_s": 5.0, "ids": [uuid.uuid4(), uuid.uuid4()],
    "processed_at": datetime(2026, 3, 4, 15, 30, 2, 123456, tzinfo=timezone.utc),
    "reference": "pi_0123456789", "succeeded": True, "response": "Success - TransactionId: txn_0123456789abcdef",
    "refund_id": uuid.uuid4(), "reason": "event_cancelled", "idempotency_key": "refund-checkout-1",
    "fingerprint": "0" * 64,
}

PLACEHOLDER = re.compile(r"%\((\w+)\)s")


@pytest.fixture(scope="module")
def filled(server_url):
    """ROWS payments of the last week (mostly settled, a few pending), each
    with its outbox row (mostly sent), and fresh statistics."""
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute("TRUNCATE bc_payment.outbox, bc_payment.payment_checks, bc_payment.refund_checks,"
                     " bc_payment.refunds, bc_payment.payments")
        conn.execute("""
            WITH made AS (
                INSERT INTO bc_payment.payments (
                    id, order_id, customer_id, amount, currency, payment_method, status,
                    created_at, processed_at, is_simulated)
                SELECT gen_random_uuid(), gen_random_uuid(), gen_random_uuid(), 150, 'USD',
                       'credit_card', s.status, t, CASE WHEN s.status <> 'pending' THEN t END, true
                  FROM generate_series(1, %(rows)s) AS n,
                       LATERAL (SELECT now() - interval '7 days' * n / %(rows)s AS t) AS at,
                       LATERAL (SELECT CASE WHEN n %% 100 = 0 THEN 'pending'
                                            WHEN n %% 10 = 0 THEN 'failed'
                                            ELSE 'succeeded' END AS status) AS s
                RETURNING id, order_id, status, created_at
            )
            INSERT INTO bc_payment.outbox (event_id, payment_id, topic, event_key, event_type,
                                           payload, created_at, sent_at)
            SELECT gen_random_uuid(), id, 'payment-succeeded', order_id::text, 'payment-succeeded',
                   '{}', created_at,
                   CASE WHEN random() > 0.01 THEN created_at + interval '5 ms' END
              FROM made WHERE status <> 'pending'
        """, {"rows": ROWS})
        conn.execute("ANALYZE bc_payment.payments")
        conn.execute("ANALYZE bc_payment.outbox")
    yield server_url
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute("TRUNCATE bc_payment.outbox, bc_payment.payment_checks, bc_payment.refund_checks,"
                     " bc_payment.refunds, bc_payment.payments")


def plan(url: str, query: str, mode: str) -> dict:
    """The plan PostgreSQL makes for `query` with the SAMPLE parameters, in
    plan_cache_mode `mode`, from a prepared statement as the service runs it."""
    names: list[str] = []
    for name in PLACEHOLDER.findall(query):
        if name not in names:
            names.append(name)
    missing = [name for name in names if name not in SAMPLE]
    assert not missing, f"give SAMPLE a value for {missing}"
    numbered = PLACEHOLDER.sub(lambda m: f"${names.index(m.group(1)) + 1}", query)
    with psycopg.connect(url) as conn:  # one transaction, rolled back: nothing is written
        conn.execute(f"SET LOCAL plan_cache_mode = {mode}")
        conn.execute(f"PREPARE plan_check AS {numbered}")
        arguments = ", ".join(["%s"] * len(names))
        execute = f"EXECUTE plan_check({arguments})" if names else "EXECUTE plan_check"
        # EXPLAIN takes no bound parameters: the values are quoted in by the client.
        [(document,)] = psycopg.ClientCursor(conn).execute(
            f"EXPLAIN (FORMAT JSON) {execute}", [SAMPLE[name] for name in names]).fetchall()
        conn.rollback()
    document = json.loads(document) if isinstance(document, str) else document
    return document[0]["Plan"]


def nodes(node: dict):
    yield node
    for child in node.get("Plans", []):
        yield from nodes(child)


def test_the_request_path_queries_exist():
    assert set(REQUEST_PATH) <= set(QUERIES)


def statements(query: str) -> list[str]:
    """The statements of a named query (the simulator's run several in one round trip)."""
    return [part.strip() for part in query.split(";\n") if part.strip()]


@pytest.mark.parametrize("mode", ["force_custom_plan", "force_generic_plan"])
@pytest.mark.parametrize("name", sorted({**QUERIES, **LEDGER_QUERIES}))
def test_no_query_reads_a_whole_table(filled, name, mode):
    scans = []
    for statement in statements({**QUERIES, **LEDGER_QUERIES}[name]):
        root = plan(filled, statement.rstrip(";"), mode)
        scans += [(n["Node Type"], n.get("Relation Name"), n.get("Index Name")) for n in nodes(root)
                  if "Relation Name" in n]
    whole = [s for s in scans if s[0] == "Seq Scan" and s[1] in ("payments", "outbox")]
    assert not whole, f"{name}: {scans}"
