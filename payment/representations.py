"""How a payment is shown: the payment object of every answer, and the
payloads of its events (`payment-succeeded`, `payment-failed`) as the outbox
holds them; and likewise a refund, with `payment-refunded` and
`payment-refund-failed`.

Field names and order follow the contract (schemas/*.schema.json). Amounts
carry their currency's decimals; times are UTC ISO 8601 with a `Z`.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any

from payment import jsonio
from payment.currencies import MINOR_UNITS
from payment.model import OutboxEvent, Payment, Refund

SUCCEEDED = "payment-succeeded"
FAILED = "payment-failed"
REFUNDED = "payment-refunded"
REFUND_FAILED = "payment-refund-failed"


def utc_timestamp(moment: datetime | None) -> str | None:
    """`2026-03-04T15:30:02.123Z`: UTC, milliseconds, a Z."""
    if moment is None:
        return None
    moment = moment.astimezone(timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def amount_of(payment: Payment) -> Decimal:
    return payment.amount.quantize(Decimal(1).scaleb(-MINOR_UNITS[payment.currency]))


def _uuid(value: uuid.UUID | None) -> str | None:
    return None if value is None else str(value)


def _order_and_amount(payment: Payment) -> dict[str, object]:
    """The fields the payment object and both events carry alike, in the
    contract's order, after the payment's id."""
    return {
        "orderId": str(payment.order_id),
        "customerId": str(payment.customer_id),
        "reservationId": _uuid(payment.reservation_id),
        "amount": amount_of(payment),
        "currency": payment.currency,
        "paymentMethod": payment.payment_method,
    }


def payment_document(payment: Payment) -> dict[str, object]:
    return {
        "id": str(payment.id),
        **_order_and_amount(payment),
        "status": payment.status,
        "errorCode": payment.error_code,
        "errorMessage": payment.error_message,
        "failureReason": payment.failure_reason,
        "createdAt": utc_timestamp(payment.created_at),
        "processedAt": utc_timestamp(payment.processed_at),
        "isSimulated": payment.is_simulated,
        "simulatedResponse": payment.simulated_response,
    }


def _event_common(payment: Payment) -> dict[str, object]:
    return {"paymentId": str(payment.id), **_order_and_amount(payment)}


def succeeded_event(payment: Payment) -> dict[str, object]:
    return {
        **_event_common(payment),
        "transactionId": payment.transaction_id,
        "processedAt": utc_timestamp(payment.processed_at),
        "status": "succeeded",
    }


def failed_event(payment: Payment) -> dict[str, object]:
    return {
        **_event_common(payment),
        "errorCode": payment.error_code,
        "errorMessage": payment.error_message,
        "failureReason": payment.failure_reason,
        "attemptedAt": utc_timestamp(payment.processed_at),
        "status": "failed",
    }


def outbox_event(payment: Payment, *, topic_succeeded: str, topic_failed: str) -> OutboxEvent:
    """The event for a settled payment, ready for the outbox."""
    if payment.status == "succeeded":
        event_type, topic, body = SUCCEEDED, topic_succeeded, succeeded_event(payment)
    else:
        event_type, topic, body = FAILED, topic_failed, failed_event(payment)
    return OutboxEvent(
        event_id=uuid.uuid4(), payment_id=payment.id, topic=topic,
        key=str(payment.order_id), event_type=event_type, payload=jsonio.dumps(body),
    )


def in_currency(amount: Decimal, currency: str) -> Decimal:
    """The amount at its currency's decimals (the database keeps four)."""
    return amount.quantize(Decimal(1).scaleb(-MINOR_UNITS[currency]))


def _refund_common(refund: Refund) -> dict[str, Any]:
    """What the refund object and both refund events carry alike, after the refund's id."""
    return {
        "paymentId": str(refund.payment_id),
        "orderId": str(refund.order_id),
        "customerId": str(refund.customer_id),
        "amount": in_currency(refund.amount, refund.currency),
        "currency": refund.currency,
        "reason": refund.reason,
    }


def refund_document(refund: Refund) -> dict[str, Any]:
    return {
        "id": str(refund.id),
        **_refund_common(refund),
        "status": refund.status,
        "errorCode": refund.error_code,
        "errorMessage": refund.error_message,
        "transactionId": refund.transaction_id,
        "createdAt": utc_timestamp(refund.created_at),
        "processedAt": utc_timestamp(refund.processed_at),
        "isSimulated": refund.is_simulated,
    }


def refunded_event(refund: Refund, amount_refunded: Decimal) -> dict[str, Any]:
    """`amount_refunded`: the payment's total refunded, this refund included."""
    return {
        "refundId": str(refund.id),
        **_refund_common(refund),
        "transactionId": refund.transaction_id,
        "amountRefunded": in_currency(amount_refunded, refund.currency),
        "refundedAt": utc_timestamp(refund.processed_at),
        "status": "refunded",
    }


def refund_failed_event(refund: Refund) -> dict[str, Any]:
    return {
        "refundId": str(refund.id),
        **_refund_common(refund),
        "errorCode": refund.error_code,
        "errorMessage": refund.error_message,
        "attemptedAt": utc_timestamp(refund.processed_at),
        "status": "failed",
    }


def refund_outbox_event(refund: Refund, amount_refunded: Decimal, *, topic_refunded: str,
                        topic_refund_failed: str) -> OutboxEvent:
    """The event for a settled refund, ready for the outbox: keyed by the
    order like the payment's own, so that it follows them on their partition."""
    if refund.status == "succeeded":
        event_type, topic, body = REFUNDED, topic_refunded, refunded_event(refund, amount_refunded)
    else:
        event_type, topic, body = REFUND_FAILED, topic_refund_failed, refund_failed_event(refund)
    return OutboxEvent(
        event_id=uuid.uuid4(), payment_id=refund.payment_id, topic=topic,
        key=str(refund.order_id), event_type=event_type, payload=jsonio.dumps(body),
    )
