"""The payment, the request that asks for it, and what the upstreams say."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Protocol
from uuid import UUID

PAYMENT_METHODS = ("credit_card", "debit_card", "paypal", "apple_pay", "google_pay")
CLOSED_ORDER_STATUSES = frozenset({"cancelled", "canceled", "expired", "refunded"})


@dataclass(frozen=True)
class PaymentRequest:
    order_id: UUID
    customer_id: UUID
    reservation_id: UUID | None
    amount: Decimal
    currency: str
    payment_method: str
    # The processor's token for the customer's payment method (a Stripe
    # PaymentMethod id, `pm_...`). Never stored, logged or echoed: out of
    # repr(), so that no log line of a request or payment can carry it.
    payment_token: str | None = field(default=None, repr=False)


@dataclass(frozen=True)
class Order:
    id: UUID
    customer_id: UUID
    total_amount: Decimal
    currency: str
    status: str


@dataclass(frozen=True)
class Reservation:
    id: UUID
    customer_id: UUID
    status: str
    expires_at: datetime


@dataclass(frozen=True)
class ChargeResult:
    """What the gateway answered. A decline is a result, not an exception."""

    succeeded: bool
    transaction_id: str | None
    simulated_response: str | None  # the simulator's text; None from a real processor
    error_code: str | None = None
    error_message: str | None = None
    failure_reason: str | None = None


@dataclass(frozen=True)
class Payment:
    id: UUID
    order_id: UUID
    customer_id: UUID
    reservation_id: UUID | None
    amount: Decimal
    currency: str
    payment_method: str
    status: str
    error_code: str | None
    error_message: str | None
    failure_reason: str | None
    transaction_id: str | None
    created_at: datetime
    processed_at: datetime | None
    is_simulated: bool
    simulated_response: str | None
    # The processor's own id for this payment (a Stripe PaymentIntent id),
    # stored before the charge so the charge can be looked up again.
    gateway_reference: str | None = None
    # The request's paymentToken, carried from the request to the gateway's
    # `prepare` and nowhere else: not a column (rows read back have None), not
    # in repr(), not compared.
    payment_token: str | None = field(default=None, repr=False, compare=False)


class InFlight(Protocol):
    """A payment or a refund, as far as telling when it may be settled goes."""

    @property
    def status(self) -> str: ...

    @property
    def created_at(self) -> datetime: ...


@dataclass(frozen=True)
class OutboxEvent:
    event_id: UUID
    payment_id: UUID
    topic: str
    key: str
    event_type: str
    payload: str


REFUND_REASONS = ("requested_by_customer", "event_cancelled", "duplicate", "fraudulent")


@dataclass(frozen=True)
class RefundRequest:
    """What POST /payments/{paymentId}/refunds asks for. `amount` None: all
    that is still refundable."""

    payment_id: UUID
    amount: Decimal | None
    reason: str
    idempotency_key: str
    # The hash of the payment id and the body as understood (payment/refunds.py):
    # the same key with another body, or for another payment, differs.
    fingerprint: str


@dataclass(frozen=True)
class RefundResult:
    """What the gateway answered a refund. A refusal is a result, not an exception."""

    succeeded: bool
    transaction_id: str | None  # the processor's id for the refund
    error_code: str | None = None
    error_message: str | None = None


@dataclass(frozen=True)
class Refund:
    id: UUID
    payment_id: UUID
    order_id: UUID
    customer_id: UUID
    amount: Decimal
    currency: str
    reason: str
    status: str
    error_code: str | None
    error_message: str | None
    transaction_id: str | None
    created_at: datetime
    processed_at: datetime | None
    is_simulated: bool
    idempotency_key: str
    request_fingerprint: str
