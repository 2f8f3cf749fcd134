"""How a payment is shown: the payment object of every answer, and the
payloads of its events (`payment-succeeded`, `payment-failed`) as the outbox
holds them.

Field names and order follow the contract (schemas/*.schema.json). Amounts
carry their currency's decimals; times are UTC ISO 8601 with a `Z`.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timezone
from decimal import Decimal

from payment import jsonio
from payment.currencies import MINOR_UNITS
from payment.model import OutboxEvent, Payment

SUCCEEDED = "payment-succeeded"
FAILED = "payment-failed"


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
