"""Stripe's webhook closing the gap before the reconciler does: the service
served by gunicorn, charging through a real localstripe process behind a
real TCP proxy that loses the confirm's answer, and localstripe delivering
its own signed events to the service's POST /webhooks/stripe (one second
after each event, as it does).

PENDING_TIMEOUT_S is ten minutes here: whatever settles a payment within
the test's seconds is the webhook, not the reconciler."""

from __future__ import annotations

import uuid

import pytest
import requests

from payment.gateways.stripe_gateway import transaction_id
from tests.expected_events import assert_event_of
from tests.integration.test_stripe_gateway import DECLINING_CARD, FAILING_IBAN
from tests.reliability.gateway_faults import wait_for
from tests.stripe_support import (  # noqa: F401  (fixtures)
    API_KEY,
    FORWARD,
    LOSE_ANSWER,
    localstripe,
    stripe_proxy,
)
from tests.support import new_order, payment_body
from tests.timing import ceiling

pytestmark = pytest.mark.route_independent

SECRET = "whsec_" + uuid.uuid4().hex
EVENTS = ["payment_intent.succeeded", "payment_intent.payment_failed", "payment_intent.canceled"]
# localstripe delivers an event a second after it; a few more for a busy machine.
WEBHOOK_BOUND_S = 8
GATEWAY_UNAVAILABLE = "Payment processing error: payment gateway is unavailable"


@pytest.fixture
def webhooked_service(serve, service_env, stripe_proxy, localstripe):
    """start(**extra): one worker charging through localstripe behind the
    proxy, with the endpoint's secret, and localstripe delivering the
    PaymentIntent events to it (`copies` registrations: each event delivered
    that many times)."""
    localstripe.reset()
    registered = []

    def start(copies: int = 1, **extra):
        served = serve(service_env, workers=1, PAYMENT_GATEWAY="stripe", STRIPE_API_KEY=API_KEY,
                       STRIPE_API_BASE=stripe_proxy.url, STRIPE_WEBHOOK_SECRET=SECRET, GATEWAY_TIMEOUT_S=2,
                       PENDING_TIMEOUT_S=600, OUTBOX_RELAY_INTERVAL_S=0.3, **extra)
        for copy in range(copies):
            localstripe.register_webhook(f"{served.url}/webhooks/stripe", SECRET, EVENTS, webhook_id=f"copy{copy}")
            registered.append(f"copy{copy}")
        return served

    yield start
    # localstripe keeps its webhooks for the session: later tests' events go nowhere.
    for webhook_id in registered:
        localstripe.register_webhook("http://127.0.0.1:9/", SECRET, EVENTS, webhook_id=webhook_id)


def lost_confirm(service, stripe_proxy, database, sandbox, **fields):
    """POST a payment whose confirm Stripe does but whose answer is lost."""
    stripe_proxy.switch(LOSE_ANSWER, "/confirm")
    body = payment_body(new_order(sandbox), **fields)
    try:
        reply = service.post(body)
    finally:
        stripe_proxy.switch(FORWARD)
    assert (reply.status_code, reply.json()["errorMessage"]) == (502, GATEWAY_UNAVAILABLE)
    [row] = database.rows(where="order_id = %s", params=(body["orderId"],))
    assert row["status"] == "pending" and row["gateway_reference"]
    return body, row


def settled(database, row, status: str) -> dict:
    return wait_for(lambda: database.rows(where="id = %s AND status = %s", params=(row["id"], status)),
                    f"the webhook settles the payment {status}", timeout_s=WEBHOOK_BOUND_S)[0]


def webhook_results(service) -> dict[str, float]:
    results = {}
    for line in requests.get(f"{service.url}/metrics", timeout=5).text.splitlines():
        if line.startswith("payment_gateway_webhooks_total{"):
            name, value = line.rsplit(" ", 1)
            results[name.split('result="')[1].split('"')[0]] = float(value)
    return results


def test_a_lost_confirm_answer_is_settled_by_payment_intent_succeeded(
        webhooked_service, stripe_proxy, localstripe, database, sandbox, events):
    service = webhooked_service()
    token = localstripe.payment_method("4242424242424242")
    body, row = lost_confirm(service, stripe_proxy, database, sandbox, paymentToken=token)

    payment = settled(database, row, "succeeded")

    intent_id = row["gateway_reference"]
    assert payment["transaction_id"] == transaction_id(intent_id)
    assert database.rows("payment_checks") == []   # never claimed by the reconciler
    assert [c["status"] for c in localstripe.charges(intent_id)] == ["succeeded"]
    wait_for(lambda: events.read("payment-succeeded"), "the event", timeout_s=5)
    [event] = events.read("payment-succeeded")
    assert_event_of(event, database, row["id"], body)
    replay = service.post(body)
    assert replay.status_code == 200 and replay.headers["Idempotent-Replayed"] == "true"
    assert replay.json()["payment"]["id"] == str(row["id"])
    assert len(localstripe.charges(intent_id)) == 1 and events.read("payment-failed", settle_s=0.3) == []
    assert webhook_results(service) == {"settled": 1.0}


def test_a_lost_decline_is_settled_by_payment_intent_payment_failed(
        webhooked_service, stripe_proxy, localstripe, database, sandbox, events):
    service = webhooked_service()
    body, row = lost_confirm(service, stripe_proxy, database, sandbox,
                             paymentToken=localstripe.payment_method(DECLINING_CARD))

    payment = settled(database, row, "failed")

    assert (payment["error_code"], payment["failure_reason"]) == (
        "CARD_DECLINED", "Stripe declined the charge: card_declined")
    assert database.rows("payment_checks") == []
    wait_for(lambda: events.read("payment-failed"), "the event", timeout_s=5)
    [event] = events.read("payment-failed")
    assert_event_of(event, database, row["id"], body,
                    failure=("CARD_DECLINED", "Card declined", "Stripe declined the charge: card_declined"))
    assert [c["status"] for c in localstripe.charges(row["gateway_reference"])] == ["failed"]
    # The order may be paid again, with another card.
    again = service.post({**body, "paymentToken": localstripe.payment_method("4242424242424242")})
    assert again.status_code == 200, again.text


def test_each_event_delivered_twice_is_acted_on_once(webhooked_service, stripe_proxy, localstripe, database,
                                                     sandbox, events):
    service = webhooked_service(copies=2)
    body, row = lost_confirm(service, stripe_proxy, database, sandbox, paymentToken="pm_card_visa")

    settled(database, row, "succeeded")
    wait_for(lambda: sum(webhook_results(service).values()) >= 2, "both deliveries", timeout_s=WEBHOOK_BOUND_S)

    assert webhook_results(service) == {"settled": 1.0, "duplicate": 1.0}
    [remembered] = database.rows("webhook_events")
    assert remembered["event_id"].startswith("evt_")
    [event] = events.read("payment-succeeded", settle_s=0.5)
    assert_event_of(event, database, row["id"], body)


def test_a_processing_charge_stays_pending_until_its_webhook_settles_it(
        webhooked_service, localstripe, database, sandbox, events):
    service = webhooked_service()
    # localstripe's one way to `processing`: a SEPA debit, which it settles
    # (this IBAN: fails) half a second after the confirm.
    body = payment_body(new_order(sandbox), paymentToken=localstripe.sepa_payment_method(FAILING_IBAN))

    reply = service.post(body)

    assert (reply.status_code, reply.json()["errorMessage"]) == (
        502, "Payment processing error: payment gateway is still processing the payment")
    [row] = database.rows(where="order_id = %s", params=(body["orderId"],))
    assert row["status"] == "pending"
    retry = service.post(body)
    assert retry.status_code == 409 and int(retry.headers["Retry-After"]) >= 1
    payment = settled(database, row, "failed")
    assert payment["error_code"] == "CARD_DECLINED" and database.rows("payment_checks") == []


def test_the_webhook_is_answered_at_once_and_its_body_and_the_token_never_logged(webhooked_service, stripe_proxy, localstripe,
                                                                   database, sandbox):
    service = webhooked_service(LOG_LEVEL="DEBUG")
    token = localstripe.payment_method("4242424242424242")
    _, row = lost_confirm(service, stripe_proxy, database, sandbox, paymentToken=token)
    settled(database, row, "succeeded")
    wait_for(lambda: any(r.get("eventType") == "payment_intent.succeeded" for r in service.records()),
             "the webhook's line", timeout_s=5)

    log = service.log()
    [intent] = [i for i in localstripe.intents() if i["id"] == row["gateway_reference"]]
    for secret in (token, intent["client_secret"], SECRET, API_KEY[len("sk_test_"):]):
        assert secret not in log
    webhook_lines = [r for r in service.records() if r.get("route") == "/webhooks/stripe"]
    assert webhook_lines and all(r["status"] == 200 for r in webhook_lines)
    # Answered at once (a lookup and one statement), far inside Stripe's 10 s.
    assert all(r["durationMs"] < ceiling(0.1) * 1000 for r in webhook_lines)


def test_a_revoked_key_is_one_error_line_a_minute_a_failing_readiness_and_a_count(
        serve, service_env, localstripe, sandbox):
    # localstripe refuses any key but an sk_ one (401), as Stripe a revoked key.
    revoked = "rk_test_" + uuid.uuid4().hex
    service = serve(service_env, workers=1, PAYMENT_GATEWAY="stripe", STRIPE_API_KEY=revoked,
                    STRIPE_API_BASE=localstripe.url, PENDING_TIMEOUT_S=600)

    ready = requests.get(f"{service.url}/health/ready", timeout=5)
    assert ready.status_code == 503 and ready.json()["checks"]["gateway"] == "unavailable"
    for _ in range(3):
        reply = service.post(payment_body(new_order(sandbox), paymentToken="pm_card_visa"))
        assert (reply.status_code, reply.json()["errorMessage"]) == (502, GATEWAY_UNAVAILABLE)

    alarms = [r for r in service.records() if r["level"] == "ERROR"]
    assert [(r["logger"], r["gatewayErrorKind"]) for r in alarms] == [("payment.gateways.stripe_health", "auth")]
    assert revoked[len("rk_test_"):] not in service.log()
    metrics = requests.get(f"{service.url}/metrics", timeout=5).text
    assert 'payment_gateway_errors_total{kind="auth"} 4.0' in metrics   # the start-up probe and three creates
