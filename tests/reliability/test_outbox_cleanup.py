"""The outbox stays small at any rate: a million sent events past retention
are deleted by the relays in bounded batches while payments go on, and no
payment waits longer than its configured budget meanwhile."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import psycopg
import pytest

from tests.support import new_order, payment_body
from tests.timing import ceiling

ROWS = 1_000_000
# The pool wait and statement timeout, a quarter of the default: one
# statement deleting the million rows cannot finish within it (about 2 s on
# this machine), as one deleting four million could not within the default.
DB_TIMEOUT_S = 0.5
DELIVERY_TIMEOUT_S = 1.0
# A payment may wait at most one database timeout (for a pooled connection;
# a statement cancelled by it would be a 503, not a 200) and one delivery wait.
ANSWER_BOUND_S = ceiling(DB_TIMEOUT_S + DELIVERY_TIMEOUT_S)
# A relay pass every 0.1 s instead of every second: each worker's relay
# then spends most of its time in its 0.5 s cleanup budgets, which is what
# the payments must stay within budget against, and the rows go sooner.
RELAY_INTERVAL_S = 0.1
GONE_WITHIN_S = 60
OLD = "sent_at < now() - interval '1 hour'"


def insert_old_sent_events(database) -> float:
    """ROWS sent events from two days ago, tied to four payments (the outbox's
    foreign key), in one statement; returns the seconds it took. The foreign
    key's check is skipped for it (replica mode, as a restore loads data):
    the four payments are there, and checking them a million times over
    only slows the set-up down."""
    started = time.monotonic()
    database.execute(
        "INSERT INTO bc_payment.payments (id, order_id, customer_id, amount, currency, payment_method, status,"
        " is_simulated, processed_at) SELECT gen_random_uuid(), gen_random_uuid(), gen_random_uuid(), 150, 'USD',"
        " 'credit_card', 'succeeded', true, now() FROM generate_series(1, 4)")
    # Event ids in ascending order: the unique index is filled at its end.
    with psycopg.connect(database.url, autocommit=True) as conn:
        conn.execute("SET session_replication_role = replica")
        conn.execute(
            "INSERT INTO bc_payment.outbox (event_id, payment_id, topic, event_key, event_type, payload, created_at,"
            " sent_at) SELECT ('00000000-0000-4000-8000-' || lpad(to_hex(g * 4 + p.n), 12, '0'))::uuid, p.id,"
            " 'payment-succeeded', p.order_id::text, 'payment-succeeded', '{}', now() - interval '3 days',"
            " now() - interval '2 days' FROM generate_series(0, %s) g"
            " CROSS JOIN (SELECT id, order_id, row_number() OVER () - 1 AS n FROM bc_payment.payments) p",
            (ROWS // 4 - 1,))
    return time.monotonic() - started


def old_rows_left(database_url) -> bool:
    with psycopg.connect(database_url) as conn:
        return conn.execute(f"SELECT EXISTS (SELECT 1 FROM bc_payment.outbox WHERE {OLD})").fetchone()[0]


# Inserting the rows, then up to GONE_WITHIN_S of deleting them.
@pytest.mark.timeout(300)
def test_a_million_sent_events_go_while_payments_stay_within_budget(serve, service_env, database, sandbox):
    insert_old_sent_events(database)
    assert old_rows_left(database.url)

    service = serve(service_env, workers=2, OUTBOX_RETENTION_S=3600, DB_TIMEOUT_S=DB_TIMEOUT_S,
                    KAFKA_DELIVERY_TIMEOUT_S=DELIVERY_TIMEOUT_S, OUTBOX_RELAY_INTERVAL_S=RELAY_INTERVAL_S)
    started = time.monotonic()
    done = threading.Event()
    answers: list[tuple[int, float, bool]] = []  # status, seconds, old rows still there when answered

    def pay_until_done(_):
        while not done.is_set():
            order_id = new_order(sandbox)
            sent = time.monotonic()
            reply = service.post(payment_body(order_id))
            answers.append((reply.status_code, time.monotonic() - sent, not done.is_set()))

    with ThreadPoolExecutor(max_workers=4) as pool:
        clients = [pool.submit(pay_until_done, n) for n in range(4)]
        try:
            while old_rows_left(database.url) and time.monotonic() - started < GONE_WITHIN_S:
                time.sleep(0.1)
            gone_after = time.monotonic() - started
        finally:
            done.set()
        for client in clients:
            client.result()

    assert not old_rows_left(database.url), f"old sent events still there after {GONE_WITHIN_S} s"
    print(f"\n{ROWS} rows gone in {gone_after:.1f} s; {len(answers)} payments meanwhile,"
          f" slowest {max(a[1] for a in answers):.3f} s")
    assert [status for status, _, _ in answers] == [200] * len(answers)
    assert max(seconds for _, seconds, _ in answers) < ANSWER_BOUND_S
    # The payments really ran while the rows were being deleted.
    assert sum(1 for _, _, during in answers if during) >= 20
    # Only the old rows went: each payment's own event stays (sent, within retention).
    assert len(database.rows("outbox")) == len(answers)
    assert "outbox cleanup failed" not in service.log()
