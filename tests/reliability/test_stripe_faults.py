"""The gateway faults again, with the service charging through the Stripe
adapter against a real localstripe process, behind a real TCP proxy that
holds, loses or refuses Stripe's answers while localstripe keeps its state."""

from __future__ import annotations

import psycopg
import pytest

from tests.expected_events import INTERRUPTED, assert_event_of
from tests.reliability.gateway_faults import (
    FAST_RECONCILER,
    kill_worker,
    post_in_background,
    wait_for,
)
from tests.stripe_support import (  # noqa: F401  (fixtures)
    API_KEY,
    BLACKHOLE,
    FORWARD,
    HOLD_ANSWER,
    LOSE_ANSWER,
    RESET,
    expected_transaction_id,
    localstripe,
    stripe_proxy,
)
from tests.support import new_order, payment_body

DB_UNAVAILABLE = "Payment processing error: payment database is unavailable"
GATEWAY_UNAVAILABLE = "Payment processing error: payment gateway is unavailable"
DECLINING_CARD = "4000000000000341"


@pytest.fixture
def stripe_service(serve, service_env, stripe_proxy, localstripe):
    localstripe.reset()

    def start(**extra):
        # A test PaymentMethod for requests without a paymentToken, as a test deployment may name one.
        return serve(service_env, workers=1, PAYMENT_GATEWAY="stripe", STRIPE_API_KEY=API_KEY,
                     STRIPE_API_BASE=stripe_proxy.url, GATEWAY_TIMEOUT_S=2,
                     **{**FAST_RECONCILER, "STRIPE_PAYMENT_METHOD": "pm_card_visa", **extra})
    return start


def the_payment(database, order_id):
    return wait_for(lambda: database.rows(where="order_id = %s AND gateway_reference IS NOT NULL",
                                          params=(order_id,)), "the payment with its intent id")[0]


def assert_stripe_charged_once_and_succeeded(service, database, events, localstripe, order_id, intent_id):
    assert [c["status"] for c in localstripe.charges(intent_id)] == ["succeeded"]
    settled = wait_for(lambda: database.rows(where="order_id = %s AND status = 'succeeded'", params=(order_id,)),
                       "the reconciler settles the payment")
    [payment] = database.rows(where="order_id = %s", params=(order_id,))
    assert localstripe.charged_intent(payment["id"]) == intent_id
    assert payment["id"] == settled[0]["id"] and payment["transaction_id"] == expected_transaction_id(intent_id)
    assert payment["is_simulated"] is False
    wait_for(lambda: not database.rows("outbox", "sent_at IS NULL"), "the event is sent")
    [event] = events.read("payment-succeeded")
    assert_event_of(event, database, payment["id"], payment_body(order_id))
    assert events.read("payment-failed") == []
    replay = service.post(payment_body(order_id))
    assert replay.status_code == 200 and replay.headers["Idempotent-Replayed"] == "true"
    assert replay.json()["payment"]["id"] == str(payment["id"])
    assert [i["id"] for i in localstripe.intents() if i["metadata"].get("orderId") == order_id] == [intent_id]


def test_stripe_success_and_decline_through_the_service(stripe_service, database, sandbox, events, localstripe):
    service = stripe_service()
    order_id = new_order(sandbox)
    paid = service.post(payment_body(order_id))
    assert paid.status_code == 200, paid.text
    payment = paid.json()["payment"]
    assert payment["isSimulated"] is False and payment["status"] == "succeeded"
    [row] = database.rows(where="order_id = %s", params=(order_id,))
    assert [c["status"] for c in localstripe.charges(row["gateway_reference"])] == ["succeeded"]

    declining = stripe_service(STRIPE_PAYMENT_METHOD=localstripe.payment_method(DECLINING_CARD))
    declined_order = new_order(sandbox)
    declined = declining.post(payment_body(declined_order))
    assert declined.status_code == 402
    assert declined.json()["errorMessage"] == "Payment failed: Card declined"
    assert declined.json()["payment"]["errorCode"] == "CARD_DECLINED"
    [failed] = [m for m in events.read("payment-failed") if m["key"] == declined_order]
    assert_event_of(failed, database, declined.json()["payment"]["id"], payment_body(declined_order),
                    failure=("CARD_DECLINED", "Card declined", "Stripe declined the charge: card_declined"))


def test_stripe_outcome_blocked_by_a_held_row_is_settled_from_stripe(
        stripe_service, stripe_proxy, database, sandbox, events, localstripe):
    service = stripe_service()
    stripe_proxy.switch(HOLD_ANSWER, "/confirm")
    order_id = new_order(sandbox)
    attempt = post_in_background(service, order_id)
    try:
        payment = the_payment(database, order_id)
        intent_id = payment["gateway_reference"]
        wait_for(lambda: localstripe.intent(intent_id)["status"] == "succeeded", "Stripe charged")
        holder = psycopg.connect(database.url)
        try:
            holder.execute("SELECT 1 FROM bc_payment.payments WHERE id = %s FOR UPDATE", (payment["id"],))
            stripe_proxy.switch(FORWARD)  # Stripe's answer arrives; the outcome cannot be written
            reply = attempt.result()
        finally:
            holder.rollback()
            holder.close()
    finally:
        stripe_proxy.switch(FORWARD)
    assert reply.status_code == 503 and reply.json()["errorMessage"] == DB_UNAVAILABLE

    assert_stripe_charged_once_and_succeeded(service, database, events, localstripe, order_id, intent_id)


def test_stripe_unreachable_then_back_settles_the_charge_it_took(
        stripe_service, stripe_proxy, database, sandbox, events, localstripe):
    service = stripe_service()
    stripe_proxy.switch(LOSE_ANSWER, "/confirm")  # Stripe charges; the answer never comes back
    order_id = new_order(sandbox)
    reply = service.post(payment_body(order_id))
    assert reply.status_code == 502 and reply.json()["errorMessage"] == GATEWAY_UNAVAILABLE
    payment = the_payment(database, order_id)

    stripe_proxy.switch(RESET)  # Stripe unreachable: the reconciler cannot tell, the payment waits
    wait_for(lambda: database.rows("payment_checks", "payment_id = %s AND attempts >= 2", (payment["id"],)),
             "the reconciler asks again, with backoff")
    assert database.rows(where="id = %s", params=(payment["id"],))[0]["status"] == "pending"
    retry = service.post(payment_body(order_id))
    assert retry.status_code == 409 and "Retry-After" in retry.headers

    stripe_proxy.switch(FORWARD)
    assert_stripe_charged_once_and_succeeded(service, database, events, localstripe, order_id,
                                             payment["gateway_reference"])


def test_stripe_worker_killed_before_the_confirm(stripe_service, stripe_proxy, database, sandbox, events,
                                                 localstripe):
    service = stripe_service()
    [worker] = service.worker_pids()
    stripe_proxy.switch(BLACKHOLE, "/confirm")  # the confirm never reaches Stripe
    order_id = new_order(sandbox)
    attempt = post_in_background(service, order_id)
    try:
        stranded = the_payment(database, order_id)
        kill_worker(worker, attempt)
    finally:
        stripe_proxy.switch(FORWARD)
    intent_id = stranded["gateway_reference"]
    assert localstripe.charges(intent_id) == []

    failed = wait_for(lambda: database.rows(where="id = %s AND status = 'failed'", params=(stranded["id"],)),
                      "the reconciler fails the never-charged payment")
    assert failed[0]["error_code"] == "PROCESSING_INTERRUPTED"
    # Stripe's intent is cancelled: a confirm still on its way cannot charge.
    assert localstripe.intent(intent_id)["status"] == "canceled"
    assert localstripe.confirm(intent_id).status_code >= 400
    wait_for(lambda: not database.rows("outbox", "sent_at IS NULL"), "the event is sent")
    [event] = events.read("payment-failed")
    assert_event_of(event, database, stranded["id"], payment_body(order_id), failure=INTERRUPTED)

    service.wait_for(lambda: len(service.worker_pids()) >= 2, "a replacement worker")
    retry = service.post(payment_body(order_id))
    assert retry.status_code == 200, retry.text
    [again] = database.rows(where="order_id = %s AND status = 'succeeded'", params=(order_id,))
    charges = [c for i in localstripe.intents() if i["metadata"].get("orderId") == order_id
               for c in localstripe.charges(i["id"])]
    assert [c["payment_intent"] for c in charges] == [again["gateway_reference"]]
