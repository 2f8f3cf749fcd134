"""Stripe's webhook events: the signature checked with the SDK, and what a
verified event reports of a payment (payment/api/webhooks.py acts on it).

Stripe signs each delivery with the endpoint's secret: the header
`Stripe-Signature: t=<unix time>,v1=<HMAC-SHA256 of "<t>.<body>">`. During a
rotation the endpoint has two secrets and Stripe signs with both; the
service is given both (STRIPE_WEBHOOK_SECRET, comma-separated) and takes a
delivery that either signed.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

import stripe

from payment.gateways.port import Lookup
from payment.gateways.stripe_gateway import settled_in_event

# Stripe's own default: a delivery signed longer ago than this is refused,
# so that a captured one cannot be replayed later.
TOLERANCE_S = 300
# The events the endpoint acts on (docs: the ones to select when registering it).
HANDLED = frozenset({"payment_intent.succeeded", "payment_intent.payment_failed", "payment_intent.canceled"})


def signature_problem(payload: str, header: str | None, secrets: tuple[str, ...],
                      tolerance_s: int = TOLERANCE_S) -> str | None:
    """None when one of the secrets signed the payload within the tolerance;
    else what is wrong, for the 400's message (never the header's text)."""
    if not header:
        return "Stripe-Signature header is missing"
    for secret in secrets:
        if _verifies(payload, header, secret, tolerance_s):
            return None
    # Signed, but too long ago: a replay, or a clock far off.
    if any(_verifies(payload, header, secret, None) for secret in secrets):
        return f"signature is more than {tolerance_s} seconds old"
    return "signature does not match"


def _verifies(payload: str, header: str, secret: str, tolerance_s: int | None) -> bool:
    try:
        return bool(stripe.WebhookSignature.verify_header(payload, header, secret, tolerance_s))
    except stripe.SignatureVerificationError:
        return False


@dataclass(frozen=True)
class Report:
    """A verified event's word on one payment's PaymentIntent."""

    event_id: str
    event_type: str
    payment_id: uuid.UUID
    intent_id: str
    found: Lookup


def report_of(event: Any) -> Report | None:
    """What a verified event reports for good of a payment this service may
    have made (its intent's metadata names a paymentId), or None: an event
    of another kind, about something else, or saying nothing final."""
    event = _dict(event)
    if event.get("type") not in HANDLED:
        return None
    intent = _dict(_dict(event.get("data")).get("object"))
    if intent.get("object") != "payment_intent":
        return None
    payment_id = _uuid(_dict(intent.get("metadata")).get("paymentId"))
    event_id, intent_id = event.get("id"), intent.get("id")
    if payment_id is None or not isinstance(event_id, str) or not isinstance(intent_id, str):
        return None
    found = settled_in_event(intent)
    if found is None:
        return None
    return Report(event_id=event_id, event_type=event["type"], payment_id=payment_id, intent_id=intent_id,
                  found=found)


def _dict(value: Any) -> dict[str, Any]:
    """A JSON object of the event, or an empty one where it has something else."""
    return value if isinstance(value, dict) else {}


def _uuid(value: Any) -> uuid.UUID | None:
    if not isinstance(value, str):
        return None
    try:
        return uuid.UUID(value)
    except ValueError:
        return None
