"""POST /payments through the Stripe adapter against a real localstripe
process: the customer's own PaymentMethod (`paymentToken`) charged, declined
at the confirm or refused at the create, and the requests refused before
anything is called or written; and POST /webhooks/stripe, its signature,
its repeats and the events it ignores, delivered here by hand as Stripe
signs them (tests/reliability/test_stripe_webhooks.py has localstripe
deliver them to a served instance)."""

from __future__ import annotations

import json
import logging
import time
import uuid
from pathlib import Path

import psycopg
import pytest
from jsonschema import Draft202012Validator
from prometheus_client.parser import text_string_to_metric_families

from payment import schemas

from tests.expected_events import assert_event_of
from tests.integration.test_stripe_gateway import DECLINING_CARD
from tests.stripe_support import (  # noqa: F401  (fixtures)
    API_KEY,
    FORWARD,
    LOSE_ANSWER,
    localstripe,
    signed_delivery,
    stripe_proxy,
)
from tests.support import NO_EVENTS, new_order, payment_body
from tests.timing import ceiling, eventually
from tests.tokens import HS256_SECRET, bearer, claims, hs256

# None of this depends on how the service reaches PostgreSQL.
pytestmark = pytest.mark.route_independent

ROOT = Path(__file__).resolve().parents[2]
SECRET = "whsec_" + uuid.uuid4().hex
WEBHOOK = "/webhooks/stripe"


@pytest.fixture
def stripe_client(make_client, config, localstripe, stripe_proxy, database, sandbox, events):
    """make(**overrides): the service charging through localstripe (behind
    the proxy), with its webhook secret and no STRIPE_PAYMENT_METHOD."""
    localstripe.reset()

    def make(**overrides):
        settings = dict(payment_gateway="stripe", stripe_api_key=API_KEY, stripe_api_base=stripe_proxy.url,
                        stripe_payment_method=None, stripe_webhook_secrets=(SECRET,), gateway_timeout=2.0)
        return make_client(config, **{**settings, **overrides})
    return make


def scrape(client) -> dict:
    samples = {}
    for family in text_string_to_metric_families(client.app.get("/metrics").text):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples


# --- a customer's own card ---------------------------------------------------------


def test_a_customers_own_card_is_charged(stripe_client, sandbox, localstripe, database, events, caplog):
    caplog.set_level(logging.DEBUG)
    client = stripe_client()
    token = localstripe.payment_method("4242424242424242")
    body = payment_body(new_order(sandbox), paymentToken=token)

    reply = client.pay(body)

    assert reply.status == 200, reply.text
    payment = reply.body["payment"]
    assert (payment["status"], payment["isSimulated"], payment["simulatedResponse"]) == ("succeeded", False, None)
    [row] = database.rows()
    intent = localstripe.intent(row["gateway_reference"])
    assert (intent["payment_method"], intent["status"], intent["capture_method"]) == (
        token, "succeeded", "automatic")
    [event] = events.read("payment-succeeded")
    assert_event_of(event, database, row["id"], body)
    # The token went to Stripe and nowhere else: not stored, logged or answered.
    stored = repr(database.rows()) + repr(database.rows("outbox"))
    logged = "".join(r.getMessage() + repr(vars(r)) for r in caplog.records)
    assert any(r.name == "payment.access" for r in caplog.records)   # the logs are there to look at
    assert token not in stored + logged + reply.text + event["raw"]


def test_a_card_declined_at_the_charge_is_a_402_with_the_mapped_code_and_its_event(
        stripe_client, sandbox, localstripe, database, events):
    client = stripe_client()
    body = payment_body(new_order(sandbox), paymentToken=localstripe.payment_method(DECLINING_CARD))

    reply = client.pay(body)

    assert reply.status == 402
    assert reply.body["errorMessage"] == "Payment failed: Card declined"
    assert (reply.body["payment"]["status"], reply.body["payment"]["errorCode"]) == ("failed", "CARD_DECLINED")
    [row] = database.rows()
    assert [c["status"] for c in localstripe.charges(row["gateway_reference"])] == ["failed"]
    [event] = events.read("payment-failed")
    assert_event_of(event, database, row["id"], body,
                    failure=("CARD_DECLINED", "Card declined", "Stripe declined the charge: card_declined"))


@pytest.mark.parametrize("token", ["pm_1NoSuchMethod0000000000", "tok_visa", "card_1NoSuchCard000"])
def test_a_token_stripe_does_not_know_is_a_402_with_nothing_left_pending(
        stripe_client, sandbox, localstripe, database, events, token):
    client = stripe_client()
    body = payment_body(new_order(sandbox), paymentToken=token)

    reply = client.pay(body)

    assert reply.status == 402
    assert reply.body["errorMessage"] == "Payment failed: Payment method not usable"
    assert reply.body["payment"]["errorCode"] == "INVALID_PAYMENT_METHOD"
    [row] = database.rows()
    assert (row["status"], row["gateway_reference"]) == ("failed", None)
    assert localstripe.intents() == []
    [event] = events.read("payment-failed")
    assert_event_of(event, database, row["id"], body, failure=(
        "INVALID_PAYMENT_METHOD", "Payment method not usable",
        "Stripe refused the payment before charging: resource_missing"))
    assert database.rows(where="status = 'pending'") == []


@pytest.mark.parametrize("fields, message", [
    ({}, "Invalid request: paymentToken is required"),
    ({"paymentMethod": "paypal"}, "Invalid request: paymentMethod paypal is not supported by the stripe gateway"),
    ({"paymentMethod": "paypal", "paymentToken": "pm_card_visa"},
     "Invalid request: paymentMethod paypal is not supported by the stripe gateway"),
])
def test_what_stripe_could_never_charge_is_a_400_before_anything_is_called_or_written(
        stripe_client, sandbox, localstripe, stripe_proxy, nothing_happened, fields, message):
    client = stripe_client()
    order_id = new_order(sandbox)
    calls_before = len(sandbox.calls())

    reply = client.pay(payment_body(order_id, **fields))

    assert (reply.status, reply.body) == (400, {"success": False, "errorMessage": message, "payment": None})
    assert len(sandbox.calls()) == calls_before
    assert [s.path for s in stripe_proxy.seen if not s.path.startswith("/v1/payment_intents?limit=1")] == []


def test_the_configured_test_payment_method_serves_a_request_without_a_token(stripe_client, sandbox, localstripe):
    client = stripe_client(stripe_payment_method="pm_card_visa")
    reply = client.pay(payment_body(new_order(sandbox)))
    assert reply.status == 200 and reply.body["payment"]["isSimulated"] is False


@pytest.mark.parametrize("token", ["pm_1\n", "", "pm 1", "a" * 256, 42, None])
def test_a_malformed_token_is_a_400_that_does_not_echo_it(stripe_client, sandbox, nothing_happened, token):
    client = stripe_client()
    reply = client.pay(payment_body(new_order(sandbox), paymentToken=token))
    assert reply.status == 400
    assert reply.body["errorMessage"] == \
        "Invalid request: paymentToken must be 1 to 255 letters, digits, underscores or hyphens"


# --- a refused key -------------------------------------------------------------------


def test_a_revoked_key_fails_readiness_is_counted_and_is_a_502(stripe_client, sandbox, localstripe, database):
    # localstripe refuses any key but an sk_ one (401): a key revoked.
    client = stripe_client(stripe_api_key="rk_test_" + uuid.uuid4().hex)
    ready = client.app.get("/health/ready", expect_errors=True)
    assert ready.status_int == 503
    assert ready.json == {"status": "not ready",
                          "checks": {"database": "ok", "broker": "ok", "gateway": "unavailable"}}

    reply = client.pay(payment_body(new_order(sandbox), paymentToken="pm_card_visa"))
    assert (reply.status, reply.body["errorMessage"]) == (
        502, "Payment processing error: payment gateway is unavailable")
    # The start-up probe and the create.
    assert scrape(client)[("payment_gateway_errors_total", frozenset({("kind", "auth")}))] == 2


def test_a_working_key_is_ready(stripe_client):
    ready = stripe_client().app.get("/health/ready")
    assert ready.json["checks"] == {"database": "ok", "broker": "ok", "gateway": "ok"}


# --- POST /webhooks/stripe -----------------------------------------------------------


def pending_with_its_charge_taken(client, stripe_proxy, database, sandbox, **fields):
    """A payment whose confirm Stripe did but whose answer was lost: pending,
    with its intent id, and localstripe's own events about that intent."""
    stripe_proxy.switch(LOSE_ANSWER, "/confirm")
    body = payment_body(new_order(sandbox), **fields)
    try:
        reply = client.pay(body)
    finally:
        stripe_proxy.switch(FORWARD)
    assert reply.status == 502
    [row] = database.rows()
    assert row["status"] == "pending" and row["gateway_reference"]
    return body, row


def produced(events, topic: str) -> dict:
    """The one event on the topic: a webhook's settle produces it without
    waiting for the broker's report, so it may land just after the answer."""
    eventually(lambda: events.read(topic), f"an event on {topic}")
    [message] = events.read(topic)
    return message


def deliver(client, event: dict, secret: str = SECRET, at: float | None = None, headers=None):
    body, signed = signed_delivery(event, secret, at)
    return documented(client.app.post(WEBHOOK, params=body, headers={**signed, **(headers or {})},
                                      expect_errors=True))


WEBHOOK_ANSWERS = json.loads((ROOT / "openapi.json").read_text())["paths"][WEBHOOK]["post"]["responses"]


def documented(answer):
    """The answer, once its status and body are the ones openapi.json describes."""
    assert str(answer.status_int) in WEBHOOK_ANSWERS, answer.status_int
    schema = WEBHOOK_ANSWERS[str(answer.status_int)]["content"]["application/json"]["schema"]
    if "$ref" in schema:
        schemas.validator(schema["$ref"].removeprefix("schemas/")).validate(answer.json)
    else:
        Draft202012Validator(schema).validate(answer.json)
    assert answer.headers["X-Request-ID"]
    return answer


def test_a_signed_event_settles_the_pending_payment_once(stripe_client, sandbox, localstripe, stripe_proxy, database,
                                                         events):
    client = stripe_client()
    body, row = pending_with_its_charge_taken(client, stripe_proxy, database, sandbox,
                                              paymentToken=localstripe.payment_method("4242424242424242"))
    [event] = localstripe.events(row["gateway_reference"], "payment_intent.succeeded")

    started = time.monotonic()
    answer = deliver(client, event)
    took = time.monotonic() - started

    assert (answer.status_int, answer.json) == (200, {"received": True, "result": "settled"})
    assert took < ceiling(0.2)
    [settled] = database.rows()
    assert (settled["status"], settled["transaction_id"]) == ("succeeded", "txn_" + row["gateway_reference"][3:])
    assert database.rows("payment_checks") == []   # the reconciler played no part
    message = produced(events, "payment-succeeded")
    assert_event_of(message, database, row["id"], body)

    again = deliver(client, event)
    assert (again.status_int, again.json["result"]) == (200, "duplicate")
    replay = client.pay(body)
    assert replay.status == 200 and replay.headers["Idempotent-Replayed"] == "true"
    assert len(localstripe.charges(row["gateway_reference"])) == 1
    assert events.read("payment-succeeded", settle_s=0.3) == [message] and events.read("payment-failed") == []


@pytest.mark.parametrize("how", ["forged", "stale", "missing", "other body", "not utf-8"])
def test_a_delivery_not_signed_now_by_the_endpoints_secret_is_a_400_that_changes_nothing(
        stripe_client, localstripe, stripe_proxy, database, sandbox, events, how):
    client = stripe_client()
    _, row = pending_with_its_charge_taken(client, stripe_proxy, database, sandbox, paymentToken="pm_card_visa")
    [event] = localstripe.events(row["gateway_reference"], "payment_intent.succeeded")
    body, headers = signed_delivery(event, SECRET)
    message = "Invalid webhook: signature does not match"
    if how == "forged":
        body, headers = signed_delivery(event, "whsec_forged")
    elif how == "stale":
        body, headers = signed_delivery(event, SECRET, at=time.time() - 301)
        message = "Invalid webhook: signature is more than 300 seconds old"
    elif how == "missing":
        del headers["Stripe-Signature"]
        message = "Invalid webhook: Stripe-Signature header is missing"
    elif how == "other body":
        body = body.replace(b'"succeeded"', b'"canceled"', 1)
    else:
        body = b"\xff" + body
        message = "Invalid webhook: body is not UTF-8"

    answer = documented(client.app.post(WEBHOOK, params=body, headers=headers, expect_errors=True))

    assert (answer.status_int, answer.json) == (400, {"success": False, "errorMessage": message, "payment": None})
    assert database.rows()[0]["status"] == "pending"
    assert database.rows("webhook_events") == [] and database.rows("outbox") == []
    samples = scrape(client)
    assert samples[("payment_gateway_webhooks_total", frozenset({("result", "refused")}))] == 1
    assert samples[("payment_http_refusals_total",
                    frozenset({("route", "/webhooks/stripe"), ("kind", "webhook_signature")}))] == 1
    # The genuine delivery still settles it: nothing was spent on the refused one.
    assert deliver(client, event).json["result"] == "settled"


def test_events_not_about_a_payment_of_ours_are_ignored_with_a_200(stripe_client, sandbox, localstripe, stripe_proxy,
                                                                   database, events):
    client = stripe_client()
    _, row = pending_with_its_charge_taken(client, stripe_proxy, database, sandbox, paymentToken="pm_card_visa")
    [ours] = localstripe.events(row["gateway_reference"], "payment_intent.succeeded")
    # Another intent of the account, with no paymentId: an integration of someone else's.
    other = localstripe._request("POST", "/v1/payment_intents", data={
        "amount": "500", "currency": "usd", "payment_method": "pm_card_visa"})["id"]
    localstripe.confirm(other).raise_for_status()
    [foreign] = localstripe.events(other, "payment_intent.succeeded")
    not_ours = [
        foreign,
        # Our payment's id on another intent.
        {**ours, "id": "evt_" + uuid.uuid4().hex, "data": {"object": {**ours["data"]["object"], "id": "pi_other"}}},
        # A payment this service does not have.
        {**ours, "id": "evt_" + uuid.uuid4().hex, "data": {"object": {
            **ours["data"]["object"], "metadata": {"paymentId": str(uuid.uuid4())}}}},
        # A kind of event the endpoint does not act on.
        {**ours, "id": "evt_" + uuid.uuid4().hex, "type": "payment_intent.created"},
    ]
    for event in not_ours:
        answer = deliver(client, event)
        assert (answer.status_int, answer.json["result"]) == (200, "ignored")
    assert database.rows()[0]["status"] == "pending" and database.rows("outbox") == []
    assert events.all(settle_s=0.3) == NO_EVENTS


def test_a_failed_and_a_canceled_intent_settle_the_payment_failed(stripe_client, sandbox, localstripe, stripe_proxy,
                                                                 database, events):
    client = stripe_client()
    body, row = pending_with_its_charge_taken(client, stripe_proxy, database, sandbox,
                                              paymentToken=localstripe.payment_method(DECLINING_CARD))
    [failed] = localstripe.events(row["gateway_reference"], "payment_intent.payment_failed")
    assert deliver(client, failed).json["result"] == "settled"
    message = produced(events, "payment-failed")
    assert_event_of(message, database, row["id"], body,
                    failure=("CARD_DECLINED", "Card declined", "Stripe declined the charge: card_declined"))

    # Canceled: never charged, as the reconciler settles it.
    database.truncate()
    events.mark()
    body, row = pending_with_its_charge_taken(client, stripe_proxy, database, sandbox, paymentToken="pm_card_visa")
    intent = localstripe.intent(row["gateway_reference"])
    canceled = {"id": "evt_" + uuid.uuid4().hex, "object": "event", "type": "payment_intent.canceled",
                "created": int(time.time()), "data": {"object": {**intent, "status": "canceled"}}}
    assert deliver(client, canceled).json["result"] == "settled"
    message = produced(events, "payment-failed")
    assert_event_of(message, database, row["id"], body, failure=(
        "PROCESSING_INTERRUPTED", "Payment processing was interrupted",
        "The payment gateway has no charge for this payment: processing stopped before it was charged"))


def test_an_event_for_a_payment_already_settled_changes_nothing(stripe_client, sandbox, localstripe, database, events):
    client = stripe_client()
    body = payment_body(new_order(sandbox), paymentToken="pm_card_visa")
    assert client.pay(body).status == 200
    [row] = database.rows()
    [event] = localstripe.events(row["gateway_reference"], "payment_intent.succeeded")
    [message] = events.read("payment-succeeded")
    # Even an event that says otherwise: the payment keeps what was recorded.
    contrary = {**event, "id": "evt_" + uuid.uuid4().hex, "type": "payment_intent.canceled",
                "data": {"object": {**event["data"]["object"], "status": "canceled"}}}
    for delivered in (event, contrary):
        assert deliver(client, delivered).json["result"] == "already_settled"
    assert database.rows() == [row] and len(database.rows("outbox")) == 1
    assert events.read("payment-succeeded", settle_s=0.3) == [message] and events.read("payment-failed") == []


def test_the_signature_is_the_webhooks_authorization_not_a_bearer_token(stripe_client, localstripe, stripe_proxy,
                                                                         database, sandbox):
    client = stripe_client(auth_hs256_secret=HS256_SECRET)
    body = payment_body(new_order(sandbox), paymentToken="pm_card_visa")
    stripe_proxy.switch(LOSE_ANSWER, "/confirm")
    try:
        assert client.pay(body, headers=bearer(hs256(claims()))).status == 502
    finally:
        stripe_proxy.switch(FORWARD)
    [row] = database.rows()
    [event] = localstripe.events(row["gateway_reference"], "payment_intent.succeeded")
    assert deliver(client, event).json["result"] == "settled"
    # A token is no substitute for the signature.
    body, _ = signed_delivery(event, SECRET)
    refused = client.app.post(WEBHOOK, params=body, headers=bearer(hs256(claims())), expect_errors=True)
    assert refused.status_int == 400


def test_the_route_exists_only_with_a_webhook_secret(stripe_client, localstripe):
    client = stripe_client(stripe_webhook_secrets=())
    answer = client.app.post(WEBHOOK, params=b"{}", headers={"Stripe-Signature": "t=1,v1=00"}, expect_errors=True)
    assert answer.status_int == 404
    assert answer.json == {"success": False, "payment": None,
                           "errorMessage": "Not found: no such resource (GET /openapi.json lists the service's endpoints)"}
    assert stripe_client().app.post(WEBHOOK, params=b"{}", expect_errors=True).status_int == 400


def test_a_webhook_whose_settling_fails_midway_is_acted_on_when_delivered_again(
        stripe_client, sandbox, localstripe, stripe_proxy, database, events):
    client = stripe_client()
    _, row = pending_with_its_charge_taken(client, stripe_proxy, database, sandbox, paymentToken="pm_card_visa")
    [event] = localstripe.events(row["gateway_reference"], "payment_intent.succeeded")
    # The payment row held by another transaction: the settle cannot be written.
    with psycopg.connect(database.url) as holder:
        holder.execute("SELECT 1 FROM bc_payment.payments WHERE id = %s FOR UPDATE", (row["id"],))
        answer = deliver(client, event)
        assert answer.status_int == 503
        assert answer.json["errorMessage"] == "Payment processing error: payment database is unavailable"
        holder.rollback()
    assert database.rows()[0]["status"] == "pending" and database.rows("webhook_events") == []
    assert deliver(client, event).json["result"] == "settled"
    assert database.rows()[0]["status"] == "succeeded"
