"""The refund flow, as plain functions over the adapters, as safe as a payment:

  1. the idempotency key: a refund already made with it is answered again
     (the same body) or refused (another body, or another payment)
  2. the payment must have succeeded
  3. pending refund committed: the over-refund guard, in PostgreSQL
  4. refund through the gateway
  5. outcome + event committed together, then produced

`refund` answers with a RefundOutcome (succeeded, failed or replayed: a
refusal by the gateway is a refund too, failed and recorded); every other
answer is a PaymentError. A refund whose outcome could not be recorded (a
fault after it left for the gateway) stays pending, its money still counted
against the payment; `reconcile` settles it later from what the gateway
knows, never by guessing.
"""

from __future__ import annotations

import hashlib
import logging
import time
import uuid
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from decimal import Decimal
from uuid import UUID

from payment import jsonio, logs, representations, service
from payment.errors import (
    DatabaseFault,
    DatabaseUnavailable,
    GatewayUnavailable,
    IdempotencyKeyReused,
    PaymentNotFound,
    PaymentNotRefundable,
    RefundInProgress,
    RefundInvalid,
)
from payment.model import OutboxEvent, Payment, Refund, RefundRequest, RefundResult
from payment.money import AmountError, to_amount
from payment.ports import Delivery, GatewayUnreachable, PaymentGateway, RefundFound, RefundReservation, RefundStore
from payment.publishing import publish_committed

log = logging.getLogger(__name__)

# The failure the reconciler records for a refund the gateway never received.
INTERRUPTED = RefundResult(
    succeeded=False, transaction_id=None, error_code="REFUND_INTERRUPTED",
    error_message="Refund processing was interrupted before the payment processor received it",
)

# How long a refund's event waits for the marks of its order's earlier
# events, in marker delays: the payment's success is marked by the marker of
# whichever process took it within one delay (config.MARK_DELAY_S), and the
# marking statement takes its own time on a busy database. Past that, the
# event is left to the relay.
EARLIER_MARK_WAIT_DELAYS = 10


@dataclass
class RefundDependencies:
    """The parts the refund flow uses, each behind its port (payment/ports.py),
    and the settings it needs."""

    store: RefundStore
    gateway: PaymentGateway
    delivery: Delivery
    topic_refunded: str
    topic_refund_failed: str
    delivery_timeout: float
    pending_timeout: float  # age at which the reconciler asks the gateway
    mark_delay: float  # the longest the marker holds a confirmed event unmarked


@dataclass(frozen=True)
class RefundOutcome:
    refund: Refund
    replayed: bool = False

    @property
    def failed(self) -> bool:
        return self.refund.status == "failed"

    @property
    def kind(self) -> str:
        """`succeeded`, `declined` or `replayed`: the access line's refundOutcome."""
        if self.replayed:
            return "replayed"
        return "declined" if self.failed else "succeeded"


def fingerprint(payment_id: UUID, amount: Decimal | None, reason: str) -> str:
    """The request as understood, hashed: `50` and `50.00` ask for the same."""
    canonical = jsonio.dumps({
        "paymentId": str(payment_id),
        "amount": None if amount is None else format(amount.normalize(), "f"),
        "reason": reason,
    })
    return hashlib.sha256(canonical.encode()).hexdigest()


def refund(request: RefundRequest, payment: Payment, deps: RefundDependencies) -> RefundOutcome:
    """Refund part or all of `payment` (found, and the caller's to refund).
    Raises a PaymentError for every answer that is not a RefundOutcome."""
    existing = deps.store.find_refund_by_key(request.idempotency_key)
    if existing is not None:
        return _replay(existing, request, deps)
    if payment.status != "succeeded":
        raise PaymentNotRefundable(payment.status)
    request = _in_currency(request, payment)
    reservation = deps.store.insert_pending_refund(request, uuid.uuid4(), is_simulated=deps.gateway.is_simulated)
    if reservation.refund is None:
        return _not_reserved(request, payment, reservation, deps)
    return RefundOutcome(refund_and_settle(payment, reservation.refund, deps))


def _replay(existing: Refund, request: RefundRequest, deps: RefundDependencies) -> RefundOutcome:
    """The key's refund: the same request gets its answer again; another
    request under the same key is a client's mistake, never a second refund."""
    if existing.request_fingerprint != request.fingerprint:
        raise IdempotencyKeyReused()
    if existing.status == "pending":
        raise RefundInProgress(service.retry_after(existing, deps.pending_timeout))
    return RefundOutcome(existing, replayed=True)


def _in_currency(request: RefundRequest, payment: Payment) -> RefundRequest:
    if request.amount is None:
        return request
    try:
        return replace(request, amount=to_amount(request.amount, payment.currency))
    except AmountError as exc:
        raise RefundInvalid(str(exc)) from None


def _not_reserved(request: RefundRequest, payment: Payment, reservation: RefundReservation,
                  deps: RefundDependencies) -> RefundOutcome:
    """Why the guard inserted nothing, from what it saw under the payment's lock."""
    if reservation.payment_status is None or reservation.refundable is None:
        raise PaymentNotFound()
    if reservation.payment_status != "succeeded":
        raise PaymentNotRefundable(reservation.payment_status)
    left = reservation.refundable
    shown = representations.in_currency(left, payment.currency)
    if left <= 0:
        raise RefundInvalid(f"nothing is left to refund (refundable amount {shown})")
    if request.amount is not None and request.amount > left:
        raise RefundInvalid(f"amount {request.amount} exceeds the refundable amount {shown}")
    # The amount fitted: another request took the key first.
    taken = deps.store.find_refund_by_key(request.idempotency_key)
    if taken is None:
        raise DatabaseFault()  # the key's row was there to conflict with; refunds are never deleted
    return _replay(taken, request, deps)


def refund_and_settle(payment: Payment, pending: Refund, deps: RefundDependencies) -> Refund:
    """Refund a pending refund once and settle it from the gateway's answer.
    Whatever fails after it left for the gateway leaves it pending, for the
    reconciler to settle from what the gateway knows."""
    fields = logs.refund_fields(pending)
    try:
        result = deps.gateway.refund(payment, pending)
    except GatewayUnreachable:
        log.warning("gateway outcome unknown; the refund stays pending for the reconciler", extra=fields)
        raise GatewayUnavailable() from None
    try:
        return settle(pending, result, deps)
    except DatabaseUnavailable:
        log.warning("refund outcome not recorded; the refund stays pending for the reconciler",
                    extra={**fields, "refunded": result.succeeded})
        raise


def settle(refund: Refund, result: RefundResult, deps: RefundDependencies) -> Refund:
    """The one way a refund leaves pending, for the request path and the
    reconciler alike: outcome and event commit together, then the event is
    produced. A refund some other path settled first is returned as it is."""
    outcome = settled_with(refund, result, max(datetime.now(timezone.utc), refund.created_at))

    def event_for(settled: Refund, amount_refunded: Decimal) -> OutboxEvent:
        return representations.refund_outbox_event(
            settled, amount_refunded, topic_refunded=deps.topic_refunded,
            topic_refund_failed=deps.topic_refund_failed)

    recorded = deps.store.settle_refund(outcome, event_for)
    if recorded is None:
        return _as_recorded(refund, deps)
    earlier_unsent = recorded.earlier_unsent and _earlier_still_unsent(recorded.event, deps)
    publish_committed(recorded.event, earlier_unsent, delivery=deps.delivery, timeout=deps.delivery_timeout)
    return recorded.refund


def _as_recorded(refund: Refund, deps: RefundDependencies) -> Refund:
    """A refund that another path settled first, as that path left it.
    Refunds are never deleted: one gone is the database's fault."""
    recorded = deps.store.find_refund(refund.id)
    if recorded is None:
        raise DatabaseFault()
    return recorded


def _earlier_still_unsent(event: OutboxEvent, deps: RefundDependencies) -> bool:
    """Whether an earlier event of the order is still unsent after a short
    wait. A refund often follows its payment's success within the marker's
    delay: that event was delivered and is about to be marked sent, and
    waiting briefly for the mark spares the refund's event the relay's grace
    period. An event truly unsent (the broker away) keeps this one behind it,
    for the relay, after the wait."""
    deadline = time.monotonic() + EARLIER_MARK_WAIT_DELAYS * deps.mark_delay
    while True:
        try:
            if not deps.store.earlier_unsent(event):
                return False
        except DatabaseUnavailable:
            return True
        if time.monotonic() >= deadline:
            return True
        time.sleep(deps.mark_delay / 2)


def settled_with(refund: Refund, result: RefundResult, processed_at: datetime) -> Refund:
    return replace(
        refund, status="succeeded" if result.succeeded else "failed",
        transaction_id=result.transaction_id, error_code=result.error_code,
        error_message=result.error_message, processed_at=processed_at)


def reconcile(refund: Refund, deps: RefundDependencies) -> Refund | None:
    """Settle an overdue pending refund from what the gateway knows of it.
    None when the gateway cannot say: it stays pending."""
    payment = deps.store.find(refund.payment_id)
    if payment is None:
        raise DatabaseFault()  # a refund's payment is never deleted
    answer = deps.gateway.lookup_refund(payment, refund)
    if answer.found is RefundFound.UNKNOWN:
        return None
    return settle(refund, answer.result or INTERRUPTED, deps)


def answer_found(settled: Refund) -> RefundFound:
    """What the gateway must have answered for a refund the reconciler settled."""
    if settled.status == "succeeded":
        return RefundFound.REFUNDED
    if settled.error_code == INTERRUPTED.error_code:
        return RefundFound.NEVER_REFUNDED
    return RefundFound.REFUSED
