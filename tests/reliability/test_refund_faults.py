"""Never give money back without recording it, nor twice. A fault after the
refund left for the gateway (PostgreSQL stopped, the worker killed, Stripe's
answer lost) leaves the refund pending, its amount still counted against the
payment; the reconciler asks the gateway and settles it. Each ends with
exactly one refund at the gateway. Against the real service, PostgreSQL,
broker, the simulated processor's ledger and localstripe."""

from __future__ import annotations

import threading
from concurrent.futures import Future
from decimal import Decimal

import pytest
import requests

from payment import jsonio
from tests.expected_events import REFUND_INTERRUPTED, assert_refund_event_of
from tests.reliability.gateway_faults import FAST_RECONCILER, kill_worker, wait_for
from tests.stripe_support import (  # noqa: F401  (fixtures)
    API_KEY,
    FORWARD,
    LOSE_ANSWER,
    RESET,
    localstripe,
    stripe_proxy,
)
from tests.support import Database, new_order, payment_body

DB_UNAVAILABLE = "Payment processing error: payment database is unavailable"
GATEWAY_UNAVAILABLE = "Payment processing error: payment gateway is unavailable"
IN_FLIGHT = "A refund with this Idempotency-Key is already in progress"
REFUND = {"amount": Decimal("40.00"), "reason": "event_cancelled"}


def refund(service, payment_id: str, key: str, body: dict = REFUND, timeout: float = 30) -> requests.Response:
    return requests.post(f"{service.url}/payments/{payment_id}/refunds", data=jsonio.dumps(body), timeout=timeout,
                         headers={"Content-Type": "application/json", "Idempotency-Key": key})


def refund_in_background(service, payment_id: str, key: str) -> Future:
    """The refund on a thread of its own; its reply, or the error the client saw, in the Future."""
    attempt: Future = Future()

    def send():
        try:
            attempt.set_result(refund(service, payment_id, key))
        except Exception as exc:  # handed to whoever waits on the attempt
            attempt.set_exception(exc)

    threading.Thread(target=send, daemon=True).start()
    return attempt


def a_payment(service, sandbox) -> dict:
    reply = service.post(payment_body(new_order(sandbox)), timeout=30)
    assert reply.status_code == 200, reply.text
    return reply.json()["payment"]


def assert_refunded_once(service, database, events, payment: dict, key: str) -> None:
    """The end state after a fault that struck once the processor had refunded:
    one refund in its ledger, the refund settled to match it, its event, and
    the key answered with it."""
    [given] = database.gateway_refunds(payment["id"])
    assert given["succeeded"]
    wait_for(lambda: database.rows("refunds", "payment_id = %s AND status = 'succeeded'", (payment["id"],)),
             "the reconciler settles the refund")
    [row] = database.refunds(payment["id"])
    assert (row["id"], row["transaction_id"]) == (given["refund_id"], given["transaction_id"])
    wait_for(lambda: not database.rows("outbox", "sent_at IS NULL"), "the event is sent")
    [event] = events.read("payment-refunded")
    assert_refund_event_of(event, database, row["id"], payment, amount="40.00", reason="event_cancelled",
                           amount_refunded="40.00")
    assert events.read("payment-refund-failed") == []

    replay = refund(service, payment["id"], key)
    assert replay.status_code == 200 and replay.headers["Idempotent-Replayed"] == "true"
    assert replay.json()["refund"]["id"] == str(row["id"]) and replay.json()["refund"]["status"] == "succeeded"
    assert len(database.gateway_refunds(payment["id"])) == 1


# The outage through PgBouncer is the payments' test's (test_gateway_faults.py); here the refund's own path.
@pytest.mark.route_independent
def test_database_stopped_after_the_refund(own_postgres, serve, service_env, sandbox, events):
    database = Database(own_postgres.direct_url)
    service = serve({**service_env, "DATABASE_URL": own_postgres.url}, workers=1, SIMULATOR_LATENCY_MS=1500,
                    **FAST_RECONCILER)
    payment = a_payment(service, sandbox)
    attempt = refund_in_background(service, payment["id"], "db-down")
    wait_for(lambda: database.gateway_refunds(payment["id"]), "the refund in the processor's ledger")
    own_postgres.stop()
    try:
        reply = attempt.result(30)
    finally:
        own_postgres.start()
    assert reply.status_code == 503 and reply.json() == {
        "success": False, "errorMessage": DB_UNAVAILABLE, "refund": None}
    assert reply.headers["Retry-After"] == "1"
    [pending] = database.refunds(payment["id"])
    assert pending["status"] == "pending"
    # Still counted against the payment: no other refund may take its money
    # (asked once the database answers again; PgBouncer may need a moment).
    [over] = wait_for(lambda: [r for r in [refund(service, payment["id"], "too-much",
                                                  {"amount": Decimal("110.01")})] if r.status_code != 503],
                      "the database back")
    assert over.status_code == 400 and "refundable amount 110.00" in over.json()["errorMessage"]

    assert_refunded_once(service, database, events, payment, "db-down")


@pytest.mark.route_independent
def test_worker_killed_after_the_refund(serve, service_env, database, sandbox, events):
    service = serve(service_env, workers=1, SIMULATOR_LATENCY_MS=800, **FAST_RECONCILER)
    payment = a_payment(service, sandbox)
    [worker] = service.worker_pids()
    attempt = refund_in_background(service, payment["id"], "killed")
    wait_for(lambda: database.gateway_refunds(payment["id"]), "the refund in the processor's ledger")
    kill_worker(worker, attempt)
    [stranded] = database.refunds(payment["id"])
    assert stranded["status"] == "pending"

    service.wait_for(lambda: len(service.worker_pids()) >= 2, "a replacement worker")
    # Until the reconciler has asked the gateway, the key says when to come back.
    early = refund(service, payment["id"], "killed")
    assert early.status_code == 409 and early.json()["errorMessage"] == IN_FLIGHT
    assert int(early.headers["Retry-After"]) >= 1
    assert_refunded_once(service, database, events, payment, "killed")


@pytest.mark.route_independent
def test_worker_killed_before_the_refund_reached_the_gateway(serve, service_env, database, sandbox, events):
    service = serve(service_env, workers=1, SIMULATOR_DELAY_BEFORE_CHARGE_MS=800, **FAST_RECONCILER)
    payment = a_payment(service, sandbox)
    [worker] = service.worker_pids()
    attempt = refund_in_background(service, payment["id"], "never-sent")
    [stranded] = wait_for(lambda: database.refunds(payment["id"]), "the pending refund")
    kill_worker(worker, attempt)
    assert database.gateway_refunds(payment["id"]) == []

    failed = wait_for(lambda: database.rows("refunds", "id = %s AND status = 'failed'", (stranded["id"],)),
                      "the reconciler fails the refund the gateway never received")
    assert failed[0]["error_code"] == "REFUND_INTERRUPTED"
    assert [v["refund_id"] for v in database.rows("simulator_refund_voids")] == [stranded["id"]]
    wait_for(lambda: not database.rows("outbox", "sent_at IS NULL"), "the event is sent")
    [event] = events.read("payment-refund-failed")
    assert_refund_event_of(event, database, stranded["id"], payment, amount="40.00", reason="event_cancelled",
                           failure=REFUND_INTERRUPTED)
    assert events.read("payment-refunded") == []

    # The key's answer is the failure; a new key refunds, exactly once.
    service.wait_for(lambda: len(service.worker_pids()) >= 2, "a replacement worker")
    assert refund(service, payment["id"], "never-sent").status_code == 402
    retry = refund(service, payment["id"], "again")
    assert retry.status_code == 200, retry.text
    [given] = database.gateway_refunds(payment["id"])
    assert str(given["refund_id"]) == retry.json()["refund"]["id"] and given["succeeded"]


@pytest.mark.route_independent
def test_stripes_answer_lost_then_stripe_away_then_back(serve, service_env, database, sandbox, events,
                                                        stripe_proxy, localstripe):
    localstripe.reset()
    # A test PaymentMethod for requests without a paymentToken, as a test deployment may name one.
    service = serve(service_env, workers=1, PAYMENT_GATEWAY="stripe", STRIPE_API_KEY=API_KEY,
                    STRIPE_API_BASE=stripe_proxy.url, STRIPE_PAYMENT_METHOD="pm_card_visa", GATEWAY_TIMEOUT_S=2,
                    **FAST_RECONCILER)
    payment = a_payment(service, sandbox)
    [paid] = database.rows(where="id = %s", params=(payment["id"],))
    intent = paid["gateway_reference"]
    stripe_proxy.switch(LOSE_ANSWER, "/v1/refunds")  # Stripe refunds; its answer never comes back

    reply = refund(service, payment["id"], "lost")

    assert reply.status_code == 502 and reply.json()["errorMessage"] == GATEWAY_UNAVAILABLE
    assert [r["amount"] for r in localstripe.refunds(intent)] == [4000]
    [pending] = database.refunds(payment["id"])
    assert pending["status"] == "pending"

    stripe_proxy.switch(RESET)  # Stripe unreachable: the reconciler cannot tell, the refund waits
    wait_for(lambda: database.rows("refund_checks", "refund_id = %s AND attempts >= 2", (pending["id"],)),
             "the reconciler asks again, with backoff")
    assert database.refunds(payment["id"])[0]["status"] == "pending"
    metrics = requests.get(f"{service.url}/metrics", timeout=5).text
    assert 'payment_refund_reconciliations_total{result="unknown"}' in metrics
    assert any(r["message"].startswith("gateway cannot say what became of a pending refund")
               and r.get("refundId") == str(pending["id"]) for r in service.records())
    retry = refund(service, payment["id"], "lost")
    assert retry.status_code == 409 and "Retry-After" in retry.headers

    stripe_proxy.switch(FORWARD)
    settled = wait_for(lambda: database.rows("refunds", "id = %s AND status = 'succeeded'", (pending["id"],)),
                       "the reconciler settles the refund from Stripe's answer")
    [made] = localstripe.refunds(intent)
    assert settled[0]["transaction_id"] == made["id"] and made["metadata"]["refundId"] == str(pending["id"])
    wait_for(lambda: not database.rows("outbox", "sent_at IS NULL"), "the event is sent")
    [event] = events.read("payment-refunded")
    assert_refund_event_of(event, database, pending["id"], payment, amount="40.00", reason="event_cancelled",
                           amount_refunded="40.00")
    assert refund(service, payment["id"], "lost").json()["refund"]["status"] == "succeeded"
    assert len(localstripe.refunds(intent)) == 1
