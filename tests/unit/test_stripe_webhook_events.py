"""A Stripe webhook delivery's signature (one of the endpoint's secrets,
within five minutes) and what a verified event reports of a payment
(payment/gateways/stripe_webhook.py). Signatures are made here by hand, as
Stripe documents them: HMAC-SHA256 of "<timestamp>.<body>"."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import uuid

import pytest

from payment.gateways.port import Found
from payment.gateways.stripe_webhook import report_of, signature_problem

OLD, NEW = "whsec_old0123456789", "whsec_new0123456789"
BODY = json.dumps({"id": "evt_1", "type": "payment_intent.succeeded"})


def signed(body: str, *secrets: str, at: float | None = None) -> str:
    at = int(time.time() if at is None else at)
    signatures = [hmac.new(s.encode(), f"{at}.{body}".encode(), hashlib.sha256).hexdigest() for s in secrets]
    return ",".join([f"t={at}"] + [f"v1={sig}" for sig in signatures])


def test_a_delivery_signed_with_the_secret_is_accepted():
    assert signature_problem(BODY, signed(BODY, NEW), (NEW,)) is None


def test_during_a_rotation_either_secret_will_do():
    for header in (signed(BODY, OLD), signed(BODY, NEW), signed(BODY, OLD, NEW)):
        assert signature_problem(BODY, header, (OLD, NEW)) is None
    assert signature_problem(BODY, signed(BODY, OLD), (NEW,)) == "signature does not match"


@pytest.mark.parametrize("header, problem", [
    (None, "Stripe-Signature header is missing"),
    ("", "Stripe-Signature header is missing"),
    ("garbage", "signature does not match"),
    ("t=abc,v1=00", "signature does not match"),
    ("t=1700000000", "signature does not match"),   # a time, no signature
    ("v1=" + "0" * 64, "signature does not match"),
])
def test_a_missing_or_malformed_signature_is_refused(header, problem):
    assert signature_problem(BODY, header, (NEW,)) == problem


def test_a_signature_of_another_body_or_secret_is_refused():
    assert signature_problem(BODY + " ", signed(BODY, NEW), (NEW,)) == "signature does not match"
    assert signature_problem(BODY, signed(BODY, "whsec_forged"), (NEW,)) == "signature does not match"


def test_a_signature_older_than_five_minutes_is_refused_however_good():
    assert signature_problem(BODY, signed(BODY, NEW, at=time.time() - 290), (NEW,)) is None
    assert signature_problem(BODY, signed(BODY, NEW, at=time.time() - 310), (NEW,)) == \
        "signature is more than 300 seconds old"


PAYMENT = uuid.uuid4()


def event(kind: str, **intent) -> dict:
    body = {"id": "pi_3Abc", "object": "payment_intent", "metadata": {"paymentId": str(PAYMENT)}, **intent}
    return {"id": "evt_9", "object": "event", "type": kind, "data": {"object": body}}


def test_a_succeeded_intent_reports_the_charge():
    report = report_of(event("payment_intent.succeeded", status="succeeded"))
    assert (report.event_id, report.payment_id, report.intent_id) == ("evt_9", PAYMENT, "pi_3Abc")
    assert report.found.found is Found.CHARGED and report.found.result.transaction_id == "txn_3Abc"


def test_a_failed_intent_reports_the_mapped_decline():
    report = report_of(event("payment_intent.payment_failed", status="requires_payment_method",
                             last_payment_error={"code": "card_declined", "decline_code": "insufficient_funds"}))
    assert report.found.found is Found.DECLINED
    assert (report.found.result.error_code, report.found.result.failure_reason) == (
        "INSUFFICIENT_FUNDS", "Stripe declined the charge: insufficient_funds")


def test_a_canceled_intent_reports_never_charged():
    report = report_of(event("payment_intent.canceled", status="canceled"))
    assert report.found.found is Found.NEVER_CHARGED and report.found.result is None


@pytest.mark.parametrize("payload", [
    event("payment_intent.created", status="requires_confirmation"),
    event("charge.succeeded", status="succeeded"),
    event("payment_intent.succeeded", status="succeeded", metadata={}),
    event("payment_intent.succeeded", status="succeeded", metadata={"paymentId": "not-a-guid"}),
    event("payment_intent.succeeded", status="succeeded", metadata="x"),
    event("payment_intent.payment_failed", status="requires_payment_method"),   # nothing final
    {**event("payment_intent.succeeded", status="succeeded"), "data": {"object": {"object": "charge"}}},
    {**event("payment_intent.succeeded", status="succeeded"), "data": []},
    {**event("payment_intent.succeeded", status="succeeded"), "id": 7},
    [], "x", None,
])
def test_what_is_not_a_final_word_on_one_of_our_intents_reports_nothing(payload):
    assert report_of(payload) is None
