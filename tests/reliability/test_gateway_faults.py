"""Never take money without recording it. A fault after the charge (the
payment row held, PostgreSQL stopped, the worker killed) leaves the payment
pending; the reconciler asks the gateway and settles it as charged. A fault
before the charge settles it as never charged, and the order can be paid
again. Against the real service, PostgreSQL, broker and the simulated
processor's own ledger."""

from __future__ import annotations

import psycopg

from tests.expected_events import INTERRUPTED, assert_event_of
from tests.reliability.gateway_faults import (
    FAST_RECONCILER,
    assert_charged_once_and_succeeded,
    kill_worker,
    post_in_background,
    wait_for,
)
from tests.support import new_order, payment_body

IN_PROGRESS = "A payment for this order is already in progress"
DB_UNAVAILABLE = "Payment processing error: payment database is unavailable"


def test_outcome_blocked_by_a_held_row_is_settled_from_the_gateway(serve, service_env, database, sandbox, events):
    service = serve(service_env, workers=1, SIMULATOR_LATENCY_MS=1500, **FAST_RECONCILER)
    order_id = new_order(sandbox)
    attempt = post_in_background(service, order_id)
    [pending] = wait_for(lambda: database.rows(where="order_id = %s", params=(order_id,)), "the pending row")
    holder = psycopg.connect(database.url)
    try:
        # Hold the payment row: the outcome UPDATE waits past its statement timeout.
        holder.execute("SELECT 1 FROM bc_payment.payments WHERE id = %s FOR UPDATE", (pending["id"],))
        reply = attempt.result()
    finally:
        holder.rollback()
        holder.close()
    assert reply.status_code == 503 and reply.json()["errorMessage"] == DB_UNAVAILABLE
    assert reply.headers["Retry-After"] == "1"
    assert database.rows(where="id = %s", params=(pending["id"],))[0]["status"] == "pending"

    # Until the reconciler has asked the gateway: a 409 that says when to come back.
    early = service.post(payment_body(order_id))
    assert early.status_code == 409 and early.json()["errorMessage"] == IN_PROGRESS
    assert int(early.headers["Retry-After"]) >= 1

    assert_charged_once_and_succeeded(service, database, events, order_id)


def test_database_stopped_after_the_charge(own_postgres, serve, service_env, sandbox, events):
    from tests.support import Database

    database = Database(own_postgres.direct_url)
    service = serve({**service_env, "DATABASE_URL": own_postgres.url}, workers=1, SIMULATOR_LATENCY_MS=2000,
                    **FAST_RECONCILER)
    order_id = new_order(sandbox)
    attempt = post_in_background(service, order_id)
    wait_for(lambda: database.charges(order_id), "the charge in the gateway's ledger")
    own_postgres.stop()
    try:
        reply = attempt.result()
    finally:
        own_postgres.start()
    assert reply.status_code == 503 and reply.json()["errorMessage"] == DB_UNAVAILABLE

    assert_charged_once_and_succeeded(service, database, events, order_id)


def test_worker_killed_after_the_charge(serve, service_env, database, sandbox, events):
    service = serve(service_env, workers=1, SIMULATOR_LATENCY_MS=1500, **FAST_RECONCILER)
    order_id = new_order(sandbox)
    [worker] = service.worker_pids()
    attempt = post_in_background(service, order_id)
    wait_for(lambda: database.charges(order_id), "the charge in the gateway's ledger")
    kill_worker(worker, attempt)
    [stranded] = database.rows(where="order_id = %s", params=(order_id,))
    assert stranded["status"] == "pending"

    service.wait_for(lambda: len(service.worker_pids()) >= 2, "a replacement worker")
    assert_charged_once_and_succeeded(service, database, events, order_id)


def test_worker_killed_before_the_charge(serve, service_env, database, sandbox, events):
    service = serve(service_env, workers=1, SIMULATOR_DELAY_BEFORE_CHARGE_MS=1500, **FAST_RECONCILER)
    order_id = new_order(sandbox)
    [worker] = service.worker_pids()
    attempt = post_in_background(service, order_id)
    [stranded] = wait_for(lambda: database.rows(where="order_id = %s", params=(order_id,)), "the pending row")
    kill_worker(worker, attempt)
    assert database.charges(order_id) == []

    failed = wait_for(lambda: database.rows(where="id = %s AND status = 'failed'", params=(stranded["id"],)),
                      "the reconciler fails the never-charged payment")
    assert failed[0]["error_code"] == "PROCESSING_INTERRUPTED"
    assert [void["payment_id"] for void in database.rows("simulator_voids")] == [stranded["id"]]
    wait_for(lambda: not database.rows("outbox", "sent_at IS NULL"), "the event is sent")
    [event] = events.read("payment-failed")
    assert_event_of(event, database, stranded["id"], payment_body(order_id), failure=INTERRUPTED)
    assert events.read("payment-succeeded") == []

    # The order can be paid again, and is charged exactly once.
    service.wait_for(lambda: len(service.worker_pids()) >= 2, "a replacement worker")
    retry = service.post(payment_body(order_id))
    assert retry.status_code == 200, retry.text
    assert retry.json()["payment"]["id"] != str(stranded["id"])
    [charge] = database.charges(order_id)
    assert charge["succeeded"] and str(charge["payment_id"]) == retry.json()["payment"]["id"]


def test_a_late_charge_after_the_payment_was_found_never_charged_is_refused(
        serve, service_env, database, sandbox, events):
    """A request still on its way to the gateway when the reconciler found no
    charge: the gateway refuses it, so the failed payment took no money."""
    service = serve(service_env, workers=1, SIMULATOR_DELAY_BEFORE_CHARGE_MS=6000, **FAST_RECONCILER)
    order_id = new_order(sandbox)
    attempt = post_in_background(service, order_id)
    [stranded] = wait_for(lambda: database.rows(where="order_id = %s AND status = 'failed'", params=(order_id,)),
                          "the reconciler fails the payment whose charge has not arrived")
    reply = attempt.result()
    assert reply.status_code == 402
    assert reply.json()["payment"]["id"] == str(stranded["id"])
    assert reply.json()["payment"]["errorCode"] == "PROCESSING_INTERRUPTED"
    assert database.charges(order_id) == []
