"""The payment flow of the contract, as plain functions over the adapters.

  1. idempotency check        4. pending payment committed (uniqueness guard)
  2. order validation         5. charge through the gateway
  3. reservation validation   6. outcome + event committed together, then produced
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone

from payment import documents, logs
from payment.errors import (
    CustomerMismatch, GatewayUnavailable, OrderInvalid, OrderNotFound, PaymentDeclined,
    PaymentInProgress, ReservationInvalid,
)
from payment.model import CLOSED_ORDER_STATUSES, ChargeResult, Payment, PaymentRequest
from payment.money import shorten, shown_amount

log = logging.getLogger(__name__)

# The most characters of an upstream's text (a currency, a status) copied
# into a message: the upstream sends whatever it likes.
SHOWN_TEXT_CHARS = 40


@dataclass
class Dependencies:
    store: object          # db.PaymentStore
    ordering: object       # upstream.OrderingClient
    reservations: object   # upstream.ReservationClient
    gateway: object        # gateway.PaymentGateway
    delivery: object       # delivery.Delivery
    topic_succeeded: str
    topic_failed: str
    delivery_timeout: float


@dataclass(frozen=True)
class Outcome:
    payment: Payment
    replayed: bool = False


def pay(request: PaymentRequest, deps: Dependencies, *, upstream_headers: dict | None = None) -> Outcome:
    """Take one payment. Raises a PaymentError for every answer but success."""
    existing = deps.store.find_succeeded(request.order_id)
    if existing:
        return _replay(existing, request)

    validate_order(request, deps.ordering.get_order(request.order_id, upstream_headers))
    if request.reservation_id is not None:
        validate_reservation(
            request, deps.reservations.get_reservation(request.reservation_id, upstream_headers))

    pending = deps.store.insert_pending({
        "id": uuid.uuid4(), "order_id": request.order_id, "customer_id": request.customer_id,
        "reservation_id": request.reservation_id, "amount": request.amount,
        "currency": request.currency, "payment_method": request.payment_method,
        "is_simulated": deps.gateway.is_simulated,
    })
    if pending is None:
        return _resolve_conflict(request, deps)

    payment = _charge_and_record(pending, deps)
    if payment.status != "succeeded":
        raise PaymentDeclined(payment)
    return Outcome(payment)


def _replay(existing: Payment, request: PaymentRequest) -> Outcome:
    # The payment of another customer's order is not theirs to see.
    if existing.customer_id != request.customer_id:
        raise CustomerMismatch()
    return Outcome(existing, replayed=True)


def _resolve_conflict(request: PaymentRequest, deps: Dependencies) -> Outcome:
    """Another request holds the order: its success is ours to replay; a
    charge still in flight is a 409."""
    live = deps.store.find_live(request.order_id)
    if live is not None and live.status == "succeeded":
        return _replay(live, request)
    raise PaymentInProgress()


def validate_order(request: PaymentRequest, order) -> None:
    if order is None:
        raise OrderNotFound()
    if order.customer_id != request.customer_id:
        raise CustomerMismatch()
    if order.status in CLOSED_ORDER_STATUSES:
        raise OrderInvalid(f"order is {order.status}")
    if order.currency.upper() != request.currency:
        raise OrderInvalid(f"currency {request.currency} does not match the order currency "
                           f"{shorten(order.currency.upper(), SHOWN_TEXT_CHARS)}")
    # Exact comparison: an order total with more decimals than the request,
    # or too large for any request, differs, and is shown as it is.
    if order.total_amount != request.amount:
        total = shown_amount(order.total_amount, -request.amount.as_tuple().exponent)
        raise OrderInvalid(f"amount {request.amount} does not match the order total {total}")


def validate_reservation(request: PaymentRequest, reservation, now: datetime | None = None) -> None:
    now = now or datetime.now(timezone.utc)
    if reservation is None:
        raise ReservationInvalid("reservation not found")
    if reservation.customer_id != request.customer_id:
        raise ReservationInvalid("reservation does not belong to the customer")
    if reservation.status != "active":
        raise ReservationInvalid(f"reservation is {shorten(reservation.status, SHOWN_TEXT_CHARS)}")
    if reservation.expires_at <= now:
        raise ReservationInvalid("reservation has expired")


def _charge_and_record(pending: Payment, deps: Dependencies) -> Payment:
    try:
        result: ChargeResult = deps.gateway.charge(pending)
    except Exception:
        # The charge's fate is unknown: the payment stays pending, to be
        # resolved later, rather than being guessed failed or succeeded.
        log.exception("gateway error", extra={"paymentId": str(pending.id), "orderId": str(pending.order_id)})
        raise GatewayUnavailable() from None

    payment, event, earlier_unsent = deps.store.record_outcome(
        {
            "id": pending.id,
            "status": "succeeded" if result.succeeded else "failed",
            "transaction_id": result.transaction_id,
            "error_code": result.error_code,
            "error_message": result.error_message,
            "failure_reason": result.failure_reason,
            "simulated_response": result.simulated_response,
        },
        lambda settled: documents.outbox_event(
            settled, topic_succeeded=deps.topic_succeeded, topic_failed=deps.topic_failed),
    )
    _publish_committed(event, earlier_unsent, deps)
    return payment


def _publish_committed(event, earlier_unsent: bool, deps: Dependencies) -> None:
    """Produce the committed event and wait for its delivery report, bounded.
    An event not confirmed in time stays in the outbox for the relay: the
    payment is committed either way and is answered as such."""
    if earlier_unsent:
        # An older event of this order still waits in the outbox (the broker
        # was away): the relay sends both, in commit order.
        return
    try:
        confirmed = deps.delivery.send([event], timeout=deps.delivery_timeout)
        if confirmed:
            deps.store.mark_sent(confirmed)
        else:
            log.warning("event not confirmed in time; left to the outbox relay", extra=logs.event_fields(event))
    except Exception:
        # Committed is committed: the relay sends it, under the same eventId.
        log.warning("event not marked sent; left to the outbox relay", extra=logs.event_fields(event))
