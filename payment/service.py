"""The payment flow of the contract, as plain functions over the adapters.

  1. idempotency check        4. pending payment committed (uniqueness guard)
  2. order validation         5. charge through the gateway
  3. reservation validation   6. outcome + event committed together, then produced

Steps 2 and 3 fetch at once (the reservation's request is sent before the
order is fetched, its answer read after) and judge in that order.

`pay` answers with an Outcome (succeeded, replayed or declined: a decline is
a payment too, failed and recorded); every other answer is a PaymentError.
A payment whose outcome could not be recorded (a fault after the charge left)
stays pending; `reconcile` settles it later from what the gateway knows.
"""

from __future__ import annotations

import logging
import math
import uuid
from dataclasses import dataclass, replace
from datetime import datetime, timezone

from payment import logs, representations
from payment.errors import (
    CustomerMismatch,
    DatabaseFault,
    DatabaseUnavailable,
    GatewayProcessing,
    GatewayUnavailable,
    OrderInvalid,
    OrderNotFound,
    PaymentInProgress,
    ReservationInvalid,
)
from payment.model import (
    CLOSED_ORDER_STATUSES,
    ChargeResult,
    InFlight,
    Order,
    OutboxEvent,
    Payment,
    PaymentRequest,
    Reservation,
)
from payment.money import places_of, shorten, shown_amount
from payment.ports import (
    Delivery,
    Found,
    GatewayPending,
    GatewayUnreachable,
    OrderingClient,
    PaymentGateway,
    PaymentStore,
    ReservationClient,
)
from payment.publishing import publish_committed

log = logging.getLogger(__name__)

# The most characters of an upstream's text (a currency, a status) copied
# into a message: the upstream sends whatever it likes.
SHOWN_TEXT_CHARS = 40


@dataclass
class Dependencies:
    """The parts the flow uses, each behind its port (payment/ports.py),
    and the settings it needs."""

    store: PaymentStore
    ordering: OrderingClient
    reservations: ReservationClient
    gateway: PaymentGateway
    delivery: Delivery
    topic_succeeded: str
    topic_failed: str
    delivery_timeout: float
    pending_timeout: float  # age at which the reconciler asks the gateway


@dataclass(frozen=True)
class Outcome:
    """What became of a payment request: a new payment that succeeded, the
    order's earlier success replayed, or a decline (the failed payment,
    recorded with its event like any other outcome)."""

    payment: Payment
    replayed: bool = False

    @property
    def declined(self) -> bool:
        return self.payment.status != "succeeded"

    @property
    def kind(self) -> str:
        """`succeeded`, `replayed` or `declined`: the access line's paymentOutcome."""
        if self.replayed:
            return "replayed"
        return "declined" if self.declined else "succeeded"


def pay(request: PaymentRequest, deps: Dependencies) -> Outcome:
    """Take one payment. Raises a PaymentError for every answer that is not
    an Outcome: a refusal before anything is written, or a fault."""
    # What the gateway could never charge is refused before anything is
    # read, called or written.
    deps.gateway.check_request(request)

    existing = deps.store.find_succeeded(request.order_id)
    if existing:
        return _replay(existing, request)

    check_upstreams(request, deps)

    pending = deps.store.insert_pending(request, uuid.uuid4(), is_simulated=deps.gateway.is_simulated)
    if pending is None:
        return _resolve_conflict(request, deps)

    # The token goes to the gateway with the payment, never to the database.
    return Outcome(charge_and_settle(replace(pending, payment_token=request.payment_token), deps))


def _replay(existing: Payment, request: PaymentRequest) -> Outcome:
    # The payment of another customer's order is not theirs to see.
    if existing.customer_id != request.customer_id:
        raise CustomerMismatch()
    return Outcome(existing, replayed=True)


def _resolve_conflict(request: PaymentRequest, deps: Dependencies) -> Outcome:
    """Another request holds the order: its success is ours to replay; a
    charge still in flight is a 409 that says when to ask again."""
    live = deps.store.find_live(request.order_id)
    if live is not None and live.status == "succeeded":
        return _replay(live, request)
    raise PaymentInProgress(retry_after(live, deps.pending_timeout))


# A charge in flight normally settles within a few seconds.
IN_FLIGHT_S = 10


def retry_after(live: InFlight | None, pending_timeout: float, now: datetime | None = None) -> int:
    """Seconds until a retry may find the payment (or refund) settled: soon while its
    charge is in flight; else when the reconciler will have asked the gateway."""
    if live is None or live.status != "pending":
        return 1
    age = ((now or datetime.now(timezone.utc)) - live.created_at).total_seconds()
    if age < min(IN_FLIGHT_S, pending_timeout):
        return 1
    return max(1, math.ceil(pending_timeout - age))


def check_upstreams(request: PaymentRequest, deps: Dependencies) -> None:
    """Steps 2 and 3: the order and, when one is named, the reservation. The
    reservation's request is sent first and its answer read once the order
    is fetched, so the two services work at once and the request waits for
    the slower answer, not for both; the answers are judged in the same order
    whichever comes first: the order's refusal or fault is the answer even
    when the reservation is bad too, and the reservation's is then not
    waited for."""
    reservation = None
    if request.reservation_id is not None:
        reservation = deps.reservations.start_reservation(request.reservation_id)
    try:
        validate_order(request, deps.ordering.get_order(request.order_id))
    except BaseException:
        if reservation is not None:
            reservation.abandon()
        raise
    if reservation is not None:
        validate_reservation(request, reservation.result())


def validate_order(request: PaymentRequest, order: Order | None) -> None:
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
        total = shown_amount(order.total_amount, places_of(request.amount))
        raise OrderInvalid(f"amount {request.amount} does not match the order total {total}")


def validate_reservation(request: PaymentRequest, reservation: Reservation | None,
                         now: datetime | None = None) -> None:
    now = now or datetime.now(timezone.utc)
    if reservation is None:
        raise ReservationInvalid("reservation not found")
    if reservation.customer_id != request.customer_id:
        raise ReservationInvalid("reservation does not belong to the customer")
    if reservation.status != "active":
        raise ReservationInvalid(f"reservation is {shorten(reservation.status, SHOWN_TEXT_CHARS)}")
    if reservation.expires_at <= now:
        raise ReservationInvalid("reservation has expired")


def charge_and_settle(pending: Payment, deps: Dependencies) -> Payment:
    """Charge a pending payment once and settle it from the gateway's answer.
    Whatever fails after the payment reached the gateway leaves it pending,
    for the reconciler to settle from what the gateway knows; nothing is
    guessed."""
    fields = logs.payment_fields(pending)
    # On the request's access line even when the charge's outcome is a 5xx.
    logs.note(**fields)
    try:
        charged = _charge(pending, deps)
    except GatewayPending:
        log.warning("gateway has not decided yet; the payment stays pending", extra=fields)
        raise GatewayProcessing() from None
    except GatewayUnreachable:
        log.warning("gateway outcome unknown; the payment stays pending for the reconciler", extra=fields)
        raise GatewayUnavailable() from None
    if charged is None:
        return _as_recorded(pending, deps)
    pending, result = charged
    try:
        return settle(pending, result, deps)
    except DatabaseUnavailable:
        log.warning("charge outcome not recorded; the payment stays pending for the reconciler",
                    extra={**fields, "charged": result.succeeded})
        raise


def _charge(pending: Payment, deps: Dependencies) -> tuple[Payment, ChargeResult] | None:
    """Prepare, keep the reference, charge: the payment as charged and the
    result, or the decline `prepare` answered; None when another path
    settled the payment before its reference was kept (nothing charged)."""
    prepared = deps.gateway.prepare(pending)
    if isinstance(prepared, ChargeResult):
        return pending, prepared  # refused before anything was registered
    if prepared is not None:
        attached = deps.store.attach_reference(pending, prepared)
        if attached is None:
            return None
        pending = attached
        logs.note(gatewayReference=prepared)
    return pending, deps.gateway.charge(pending)


def settle(payment: Payment, result: ChargeResult, deps: Dependencies, *, wait_for_delivery: bool = True) -> Payment:
    """The one way a payment leaves pending, for the request path, the
    reconciler and the gateway's own reports alike: the outcome and its event
    commit together (one statement), then the event is produced. A payment
    some other path settled first is returned as that path left it.
    `wait_for_delivery=False`: the event is produced without waiting for its
    report (a confirmed one is marked sent when the report comes, else the
    relay sends it)."""
    # The service's clock, never before the database's createdAt, however
    # the two clocks differ.
    outcome = settled_with(payment, result, max(datetime.now(timezone.utc), payment.created_at))
    # Built before the write, from the very values the row gets (processed_at
    # included), so the event and the row say the same thing.
    event = representations.outbox_event(outcome, topic_succeeded=deps.topic_succeeded,
                                         topic_failed=deps.topic_failed)
    recorded = deps.store.settle(outcome, event)
    if recorded is None:
        return _as_recorded(payment, deps)
    settled, earlier_unsent = recorded
    _publish_committed(event, earlier_unsent, deps, deps.delivery_timeout if wait_for_delivery else 0.0)
    return settled


def _as_recorded(payment: Payment, deps: Dependencies) -> Payment:
    """A payment that another path settled first, as that path left it.
    Payments are never deleted: one gone is the database's fault."""
    recorded = deps.store.find(payment.id)
    if recorded is None:
        raise DatabaseFault()
    return recorded


def settled_with(payment: Payment, result: ChargeResult, processed_at: datetime) -> Payment:
    """The pending payment as the gateway's result settles it (its token,
    the gateway's business alone, left behind)."""
    return replace(
        payment, payment_token=None, status="succeeded" if result.succeeded else "failed",
        transaction_id=result.transaction_id, error_code=result.error_code,
        error_message=result.error_message, failure_reason=result.failure_reason,
        simulated_response=result.simulated_response, processed_at=processed_at)


INTERRUPTED = ChargeResult(
    succeeded=False, transaction_id=None, simulated_response=None,
    error_code="PROCESSING_INTERRUPTED",
    error_message="Payment processing was interrupted",
    failure_reason="The payment gateway has no charge for this payment: processing stopped before it was charged",
)


def reconcile(payment: Payment, deps: Dependencies) -> Payment | None:
    """Settle an overdue pending payment from what the gateway knows of it.
    None when the gateway cannot say (unreachable): it stays pending."""
    answer = deps.gateway.lookup(payment)
    if answer.found is Found.UNKNOWN:
        return None
    return settle(payment, answer.result or INTERRUPTED, deps)


def settle_reported(payment_id: uuid.UUID, reference: str, result: ChargeResult, deps: Dependencies) -> str:
    """The gateway's own report of a charge's outcome (a webhook), acted on:
    `settled` when it settles a pending payment whose stored reference is
    that charge's, through `settle`, without waiting for the event's
    delivery report; `already_settled` when the payment left pending
    already (nothing changes); `ignored` when no payment of this service has
    that charge."""
    payment = deps.store.find(payment_id)
    if payment is None or payment.gateway_reference != reference:
        return "ignored"
    if payment.status != "pending":
        return "already_settled"
    settle(payment, result, deps, wait_for_delivery=False)
    return "settled"


def _publish_committed(event: OutboxEvent, earlier_unsent: bool, deps: Dependencies, timeout: float) -> None:
    """Produce the committed event, wait for its delivery report (at most
    `timeout`), then have it marked sent (payment/publishing.py)."""
    publish_committed(event, earlier_unsent, delivery=deps.delivery, timeout=timeout)
