"""Stripe refunds behind the gateway port (the Refunds API), for the Stripe adapter.

  refund         creates a Refund of the payment's PaymentIntent, with the
                 amount in minor units, an idempotency key derived from the
                 refund id, and metadata refundId/paymentId/reason. A refusal
                 (a 4xx: the charge already refunded, disputed...) is a
                 result; anything that leaves the outcome unknown raises
                 GatewayUnreachable, and so does a Refund Stripe has not
                 finished (pending, requires_action): the reconciler asks.
  lookup_refund  lists the intent's refunds and finds ours by its refundId
                 metadata: none is NEVER_REFUNDED, a pending one UNKNOWN.

Every call is recorded in the adapter's health (payment/gateways/stripe_health.py)
as its others are: a refusal of the refund is Stripe's answer, not an error.

The refund's reason goes in the metadata, not in Stripe's own `reason`: that
field takes other values (no event_cancelled), and `fraudulent` there also
reports the card to Stripe's fraud systems, which is not a refund's business.
The refund's transactionId is Stripe's Refund id (`re_...`).
"""

from __future__ import annotations

import logging
from typing import Any

import stripe
from stripe.params import RefundCreateParams

from payment.gateways.port import (
    NEVER_REFUNDED,
    REFUND_UNKNOWN,
    GatewayUnreachable,
    RefundLookup,
    refund_idempotency_key,
)
from payment.gateways.stripe_health import GatewayHealth
from payment.model import Payment, Refund, RefundResult

log = logging.getLogger(__name__)

# Stripe's code for a refund it refused (an error's `code`, or a failed
# Refund's `failure_reason`) -> (errorCode, errorMessage).
REFUSED = ("REFUND_DECLINED", "Refund declined by the payment processor")
REFUSALS: dict[str, tuple[str, str]] = {
    "charge_already_refunded": ("ALREADY_REFUNDED", "The payment has already been refunded in full"),
    "charge_disputed": ("PAYMENT_DISPUTED", "The payment is disputed and cannot be refunded"),
    "amount_too_large": ("AMOUNT_EXCEEDS_CHARGE", "Refund exceeds what is left of the charge"),
    "expired_or_canceled_card": ("CARD_UNAVAILABLE", "The card can no longer receive the refund"),
    "lost_or_stolen_card": ("CARD_UNAVAILABLE", "The card can no longer receive the refund"),
    "insufficient_funds": ("REFUND_DECLINED", "Refund declined by the payment processor"),
}
NO_INTENT = RefundResult(succeeded=False, transaction_id=None, error_code="CHARGE_NOT_FOUND",
                         error_message="The payment processor holds no charge to refund for this payment")
# A Stripe answer with one of these statuses refused the call: nothing was created.
_REFUSING_STATUSES = frozenset({400, 402, 404})
_PAGE = 100


def refused(code: str | None) -> RefundResult:
    error_code, message = REFUSALS.get(code or "", REFUSED)
    return RefundResult(succeeded=False, transaction_id=None, error_code=error_code, error_message=message)


class StripeRefunds:
    def __init__(self, client: stripe.StripeClient, health: GatewayHealth) -> None:
        self._refunds = client.v1.refunds
        self.health = health

    def refund(self, payment: Payment, refund: Refund, *, amount_minor: int) -> RefundResult:
        if not payment.gateway_reference:
            return NO_INTENT  # not a payment Stripe took
        params: RefundCreateParams = {
            "payment_intent": payment.gateway_reference,
            "amount": amount_minor,
            "metadata": {"refundId": str(refund.id), "paymentId": str(payment.id), "reason": refund.reason},
        }
        try:
            created = self._refunds.create(params, options={"idempotency_key": refund_idempotency_key(refund)})
        except stripe.StripeError as error:
            if error.http_status in _REFUSING_STATUSES:
                self.health.succeeded()  # Stripe answered, and took the key
                code = getattr(error, "code", None)
                log.info("Stripe refused the refund", extra={**_fields(payment, refund), "stripeCode": code})
                return refused(code)
            self.health.failed(error)
            raise _unreachable("refund", error) from error
        self.health.succeeded()
        result = _settled(created)
        if result is None:
            raise GatewayUnreachable(f"the Refund is {created.status}")
        return result

    def lookup_refund(self, payment: Payment, refund: Refund) -> RefundLookup:
        if not payment.gateway_reference:
            return NEVER_REFUNDED
        try:
            found = self._find(payment.gateway_reference, refund)
        except stripe.StripeError as error:
            self.health.failed(error)
            log.warning("Stripe refund lookup: outcome unknown (%s)", _unreachable("list refunds", error),
                        extra=_fields(payment, refund))
            return REFUND_UNKNOWN
        self.health.succeeded()
        if found is None:
            return NEVER_REFUNDED
        result = _settled(found)
        return REFUND_UNKNOWN if result is None else RefundLookup.of(result)

    def _find(self, intent_id: str, refund: Refund) -> Any:
        """The intent's Refund whose metadata names this refund, or None."""
        page = self._refunds.list({"payment_intent": intent_id, "limit": _PAGE})
        for candidate in page.auto_paging_iter():
            if _get(_get(candidate, "metadata"), "refundId") == str(refund.id):
                return candidate
        return None


def _settled(stripe_refund: Any) -> RefundResult | None:
    """What a Stripe Refund's status says for good, or None while it says nothing final."""
    if stripe_refund.status == "succeeded":
        return RefundResult(succeeded=True, transaction_id=stripe_refund.id)
    if stripe_refund.status in ("failed", "canceled"):
        return refused(_get(stripe_refund, "failure_reason"))
    return None


def _get(obj: Any, key: str) -> Any:
    """A field of a Stripe object (not a dict), None when absent."""
    return obj[key] if obj is not None and key in obj else None


def _unreachable(operation: str, error: stripe.StripeError) -> GatewayUnreachable:
    """The outcome is unknown. Names the kind of failure, never Stripe's text."""
    status = f" HTTP {error.http_status}" if error.http_status else ""
    return GatewayUnreachable(f"Stripe {operation} failed: {type(error).__name__}{status}")


def _fields(payment: Payment, refund: Refund) -> dict[str, Any]:
    return {"paymentId": str(payment.id), "refundId": str(refund.id),
            "stripePaymentIntent": payment.gateway_reference}
