"""The ports: what the payment flow (payment/service.py), the reconciler and
the outbox ask of the parts they use, each a Protocol.

    PaymentStore         payment/db/store.py          the payments and their events
    RefundStore          payment/db/refund_store.py   the refunds, with the payments they give back
    OrderingClient       payment/upstream/clients.py  GET /orders/{id}
    ReservationClient    payment/upstream/clients.py  GET /reservations/{id}, sent then read
    PaymentGateway       payment/gateways/            the payment processor (rules below)
    Delivery             payment/outbox/delivery.py   producing events and marking them sent
    Publisher            payment/outbox/producer.py   the Kafka producer
    SentMarks, OutboxStore                            the outbox's side of the store

payment/bootstrap.py wires the adapters in; tests/fakes.py stands in for
them in the unit tier, and mypy (`make typecheck`) holds both to these
signatures. Nothing here imports an adapter.

The gateway's rules, which every adapter keeps, because the service relies
on them to never take money without recording it, and never take it twice:

- `check_request` refuses, with an InvalidRequest, a request the processor
  could never charge (a payment method it does not take, no token where one
  is needed). It runs before anything is read, called or written.
- `prepare` registers the charge with the processor without moving money and
  returns a reference the service stores on the payment *before* `charge`
  runs (None when the payment id is all the processor needs). It may instead
  return a declined ChargeResult: the processor refused the payment itself
  (an amount, a currency or a payment method it will not take), nothing was
  registered, and the service records that decline as the outcome.
- `charge` sends an idempotency key derived from the payment id: charging the
  same payment again never creates a second charge, it returns the first
  result. A decline is a result; `GatewayUnreachable` means the outcome is
  unknown (the processor could not be asked, or its answer was lost);
  `GatewayPending` that the processor has the charge and has not decided.
- `lookup` says what the processor knows of a payment. It never raises for an
  unreachable processor: it answers UNKNOWN. A NEVER_CHARGED answer is final:
  the adapter first makes sure that a charge still on its way for that
  payment can no longer succeed (the simulator voids the payment id, Stripe
  cancels the intent).
- `refund` gives back part or all of a charged payment, with an idempotency
  key derived from the refund id: the same refund sent again is never
  refunded twice. A refusal is a result; `GatewayUnreachable` means the
  outcome is unknown. The service has already made sure, in its database,
  that the payment's refunds stay within what it took.
- `lookup_refund` says what the processor knows of a refund, by the refund
  id, and answers UNKNOWN rather than raising. NEVER_REFUNDED is final: the
  simulator voids the refund id so that a refund still on its way is
  refused; Stripe has no such call, and the reconciler asks only about
  refunds older than PENDING_TIMEOUT_S, far past the adapter's
  GATEWAY_TIMEOUT_S.
"""

from __future__ import annotations

import enum
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from contextlib import AbstractContextManager
from dataclasses import dataclass
from decimal import Decimal
from typing import Protocol, TypeVar
from uuid import UUID

from payment.model import (
    ChargeResult,
    Order,
    OutboxEvent,
    Payment,
    PaymentRequest,
    Refund,
    RefundRequest,
    RefundResult,
    Reservation,
)

T_co = TypeVar("T_co", covariant=True)


# --- the store --------------------------------------------------------------------------

class PaymentStore(Protocol):
    """The payments table as the service, the reconciler and the read
    endpoints use it. Every method may raise DatabaseUnavailable or
    DatabaseFault (payment/errors.py), never a driver's exception."""

    def find(self, payment_id: UUID) -> Payment | None: ...

    def find_succeeded(self, order_id: UUID) -> Payment | None: ...

    def find_live(self, order_id: UUID) -> Payment | None:
        """The order's pending or succeeded payment, if any."""
        ...

    def list_for_order(self, order_id: UUID) -> list[Payment]: ...

    def insert_pending(self, request: PaymentRequest, payment_id: UUID, *, is_simulated: bool) -> Payment | None:
        """The new pending payment, or None if the order already has a live one."""
        ...

    def attach_reference(self, payment: Payment, reference: str) -> Payment | None:
        """The pending payment with the processor's reference kept; None if
        it was no longer pending (another path settled it), and nothing was written."""
        ...

    def settle(self, settled: Payment, event: OutboxEvent) -> tuple[Payment, bool] | None:
        """The outcome and its event, both or neither: the payment as
        recorded and whether an older event of its order is still unsent;
        None if it was no longer pending, and nothing was written."""
        ...

    def claim_overdue(self, *, older_than_s: float, lease_s: float, limit: int) -> list[tuple[Payment, int]]:
        """Overdue pending payments, each leased, with its attempt number."""
        ...

    def postpone_check(self, payment: Payment, after_s: float) -> None: ...

    def forget_check(self, payment: Payment) -> None: ...

    def remember_webhook_event(self, event_id: str) -> bool:
        """Record a gateway's webhook event by its id; False when it was
        recorded already (a repeated delivery)."""
        ...

    def forget_webhook_event(self, event_id: str) -> None: ...


@dataclass(frozen=True)
class RefundReservation:
    """What inserting a pending refund found: the refund when it was inserted;
    else the payment's status and what it had left to refund (None for both:
    no such payment)."""

    refund: Refund | None
    payment_status: str | None
    refundable: Decimal | None


@dataclass(frozen=True)
class SettledRefund:
    refund: Refund
    event: OutboxEvent
    # An older event of the same order is still unsent: this one waits its turn.
    earlier_unsent: bool


# The event of a refund as settled, given the payment's total refunded with it.
RefundEventFor = Callable[[Refund, Decimal], OutboxEvent]


class RefundStore(PaymentStore, Protocol):
    """The refunds table, with the payments they give back, as the refund
    flow, its reconciler and the refund routes use it. The same errors as
    the payment store's."""

    def find_refund(self, refund_id: UUID) -> Refund | None: ...

    def find_refund_by_key(self, idempotency_key: str) -> Refund | None: ...

    def list_refunds(self, payment_id: UUID) -> list[Refund]:
        """The payment's refunds, newest first."""
        ...

    def insert_pending_refund(self, request: RefundRequest, refund_id: UUID, *,
                              is_simulated: bool) -> RefundReservation:
        """The pending refund, inserted only if the payment has succeeded, the
        amount (all that is left when None) is within what its succeeded and
        pending refunds leave, and the key is new: the over-refund guard,
        enforced by the database whatever the concurrency."""
        ...

    def settle_refund(self, settled: Refund, event_for: RefundEventFor) -> SettledRefund | None:
        """The outcome and its event, both or neither, the event built with the
        payment's total refunded as it stands with this refund; None if the
        refund was no longer pending, and nothing was written."""
        ...

    def earlier_unsent(self, event: OutboxEvent) -> bool:
        """Whether an event of the same order committed before `event` is still unsent."""
        ...

    def claim_overdue_refunds(self, *, older_than_s: float, lease_s: float,
                              limit: int) -> list[tuple[Refund, int]]:
        """Overdue pending refunds, each leased, with its attempt number."""
        ...

    def postpone_refund_check(self, refund: Refund, after_s: float) -> None: ...

    def forget_refund_check(self, refund: Refund) -> None: ...


class SentMarks(Protocol):
    """Marking outbox events sent: the marker's and the delivery's store."""

    def mark_sent(self, event_ids: list[UUID]) -> None: ...


class OutboxStore(SentMarks, Protocol):
    """The outbox as the relay reads and cleans it."""

    def claim_unsent(self, *, grace_s: float,
                     limit: int) -> AbstractContextManager[tuple[list[OutboxEvent], list[UUID]]]:
        """Unsent events, locked while the block runs; the ids the block puts
        in the list it is given are marked sent in the same transaction."""
        ...

    def delete_sent(self, retention_s: float, limit: int) -> int: ...

    def delete_old_webhook_events(self, retention_s: float, limit: int) -> int: ...


# --- the upstream services ----------------------------------------------------------------

class PendingAnswer(Protocol[T_co]):
    """An upstream call already sent, its answer not read yet."""

    def result(self) -> T_co:
        """The answer (waiting for it, within the call's deadline), or the
        DependencyError that names the upstream."""
        ...

    def abandon(self) -> None:
        """The answer is no longer wanted; nothing more is read."""
        ...


class OrderingClient(Protocol):
    def get_order(self, order_id: UUID) -> Order | None:
        """The order, None if the ordering service does not know it."""
        ...


class ReservationClient(Protocol):
    def start_reservation(self, reservation_id: UUID) -> PendingAnswer[Reservation | None]:
        """Send the reservation's request; its answer is read by `result()`
        (None: not found), or dropped by `abandon()`. Sending never waits
        for the reservation service."""
        ...


# --- the gateway --------------------------------------------------------------------------

class GatewayUnreachable(Exception):
    """The processor could not be asked or did not answer: the outcome is unknown."""


class GatewayPending(GatewayUnreachable):
    """The processor has the charge and has not decided yet (a Stripe intent
    `processing`): the outcome comes later, by webhook or from a lookup."""


class Found(enum.Enum):
    CHARGED = "charged"
    DECLINED = "declined"
    NEVER_CHARGED = "never_charged"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class Lookup:
    found: Found
    result: ChargeResult | None = None  # set for CHARGED and DECLINED

    @classmethod
    def of(cls, result: ChargeResult) -> Lookup:
        return cls(Found.CHARGED if result.succeeded else Found.DECLINED, result)


NEVER_CHARGED = Lookup(Found.NEVER_CHARGED)
UNKNOWN = Lookup(Found.UNKNOWN)


class RefundFound(enum.Enum):
    REFUNDED = "refunded"
    REFUSED = "refused"
    NEVER_REFUNDED = "never_refunded"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class RefundLookup:
    found: RefundFound
    result: RefundResult | None = None  # set for REFUNDED and REFUSED

    @classmethod
    def of(cls, result: RefundResult) -> RefundLookup:
        return cls(RefundFound.REFUNDED if result.succeeded else RefundFound.REFUSED, result)


NEVER_REFUNDED = RefundLookup(RefundFound.NEVER_REFUNDED)
REFUND_UNKNOWN = RefundLookup(RefundFound.UNKNOWN)


class PaymentGateway(Protocol):
    """A payment processor; the rules its adapters keep are in this module's docstring."""

    @property
    def is_simulated(self) -> bool: ...

    def check_request(self, request: PaymentRequest) -> None: ...

    def prepare(self, payment: Payment) -> str | ChargeResult | None: ...

    def charge(self, payment: Payment) -> ChargeResult: ...

    def lookup(self, payment: Payment) -> Lookup: ...

    def refund(self, payment: Payment, refund: Refund) -> RefundResult: ...

    def lookup_refund(self, payment: Payment, refund: Refund) -> RefundLookup: ...


# --- the events ---------------------------------------------------------------------------

class Publisher(Protocol):
    """The broker's producer."""

    # Set while every broker is known to be away: waiting for a delivery
    # report would only delay the answer.
    brokers_down: threading.Event

    def publish(self, event: OutboxEvent) -> Future[None]:
        """Produce the event; the future resolves with its own delivery report
        (an exception when it failed). Never waits for the broker."""
        ...


class Delivery(Protocol):
    """Producing committed events, and marking sent the ones confirmed."""

    def send(self, events: Sequence[OutboxEvent], timeout: float) -> list[UUID]:
        """The ids confirmed within `timeout`; the others are marked sent if
        and when their report arrives."""
        ...

    def mark_now(self, event_ids: list[UUID]) -> None:
        """Mark confirmed events sent before returning."""
        ...

    def mark_soon(self, event_ids: list[UUID]) -> None:
        """Have confirmed events marked sent soon, without waiting for it."""
        ...
