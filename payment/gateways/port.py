"""The payment gateway port as its adapters see it: the Protocol, its value
types and the rules every adapter keeps are in payment/ports.py (the
service's ports, together); `idempotency_key` and `refund_idempotency_key`
are the adapters' own.

Adapters: `payment/gateways/simulator.py` (the default, `isSimulated: true`) and
`payment/gateways/stripe_gateway.py` (Stripe PaymentIntents). A third processor
implements the methods of `PaymentGateway`; nothing else in the service
changes.
"""

from __future__ import annotations

from payment.model import Payment, Refund
from payment.ports import (
    NEVER_CHARGED,
    NEVER_REFUNDED,
    REFUND_UNKNOWN,
    UNKNOWN,
    Found,
    GatewayPending,
    GatewayUnreachable,
    Lookup,
    PaymentGateway,
    RefundFound,
    RefundLookup,
)

__all__ = ["NEVER_CHARGED", "NEVER_REFUNDED", "REFUND_UNKNOWN", "UNKNOWN", "Found", "GatewayPending",
           "GatewayUnreachable", "Lookup", "PaymentGateway", "RefundFound", "RefundLookup", "idempotency_key",
           "refund_idempotency_key"]


def idempotency_key(payment: Payment, step: str = "charge") -> str:
    """The key sent with every call that may move money: one per payment and step."""
    return f"payment-{payment.id}-{step}"


def refund_idempotency_key(refund: Refund) -> str:
    """The key sent with a refund: one per refund, whichever path sends it."""
    return f"refund-{refund.id}"
