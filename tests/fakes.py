"""Hand-written fakes of the service's adapters for the unit tier: the store
(payments and refunds), the ordering and reservation clients, the gateway, the producer and the
delivery of events. Each keeps what it was asked, so that a test can say what
was (not) read, written, charged or published.

mypy checks this file with payment/ (`make typecheck`): the assignments at
the end hold each fake to its port (payment/ports.py), so a fake that drifts
from the part it stands in for fails the check.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future
from dataclasses import replace
from datetime import datetime, timezone
from decimal import Decimal
from typing import Generic, Protocol, TypeVar

from payment import logs, ports
from payment.errors import DatabaseUnavailable, DependencyError
from payment.gateways.simulator import REFUND_DECLINES, REFUND_MESSAGES, decide
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
from payment.ports import (
    NEVER_CHARGED,
    NEVER_REFUNDED,
    REFUND_UNKNOWN,
    UNKNOWN,
    Lookup,
    RefundEventFor,
    RefundLookup,
    RefundReservation,
    SettledRefund,
)

T = TypeVar("T")

NOW = datetime(2026, 3, 4, 15, 30, tzinfo=timezone.utc)


class FakeStore:
    """The payment store, with its refunds, in dicts. `unavailable`: every call
    is the DatabaseUnavailable the real store raises when PostgreSQL is away."""

    def __init__(self) -> None:
        self.payments: dict[uuid.UUID, Payment] = {}
        self.outbox: list[OutboxEvent] = []
        self.sent: list[uuid.UUID] = []
        self.log: list[str | tuple[str, float]] = []  # the writes, in order
        self.reads: list[str] = []                    # the reads, in order
        self.checks: dict[uuid.UUID, int] = {}
        self.webhook_events: set[str] = set()
        self.fail_settlement = False
        self.unavailable = False
        self.refunds: dict[uuid.UUID, Refund] = {}
        self.refund_checks: dict[uuid.UUID, int] = {}

    def _reach(self, read: str | None = None) -> None:
        if self.unavailable:
            raise DatabaseUnavailable()
        if read:
            self.reads.append(read)

    def find(self, payment_id: uuid.UUID) -> Payment | None:
        self._reach("find")
        return self.payments.get(payment_id)

    def find_succeeded(self, order_id: uuid.UUID) -> Payment | None:
        self._reach("find_succeeded")
        return next((p for p in self.payments.values() if p.order_id == order_id and p.status == "succeeded"), None)

    def find_live(self, order_id: uuid.UUID) -> Payment | None:
        self._reach("find_live")
        return next((p for p in self.payments.values()
                     if p.order_id == order_id and p.status in ("pending", "succeeded")), None)

    def list_for_order(self, order_id: uuid.UUID) -> list[Payment]:
        self._reach("list_for_order")
        return sorted((p for p in self.payments.values() if p.order_id == order_id),
                      key=lambda p: p.created_at, reverse=True)

    def insert_pending(self, request: PaymentRequest, payment_id: uuid.UUID, *, is_simulated: bool,
                       created_at: datetime = NOW) -> Payment | None:
        """The uniqueness guard of the real one: None while the order has a live payment."""
        self._reach()
        if any(p.order_id == request.order_id and p.status in ("pending", "succeeded")
               for p in self.payments.values()):
            return None
        payment = Payment(
            id=payment_id, order_id=request.order_id, customer_id=request.customer_id,
            reservation_id=request.reservation_id, amount=request.amount, currency=request.currency,
            payment_method=request.payment_method, is_simulated=is_simulated,
            status="pending", error_code=None, error_message=None, failure_reason=None,
            transaction_id=None, created_at=created_at, processed_at=None, simulated_response=None)
        self.payments[payment.id] = payment
        self.log.append("insert_pending")
        return payment

    def attach_reference(self, payment: Payment, reference: str) -> Payment | None:
        """None once the payment is no longer pending, as the real one."""
        self._reach()
        if self.payments[payment.id].status != "pending":
            return None
        self.payments[payment.id] = replace(self.payments[payment.id], gateway_reference=reference)
        self.log.append("attach_reference")
        return self.payments[payment.id]

    def settle(self, settled: Payment, event: OutboxEvent) -> tuple[Payment, bool] | None:
        """Both rows or neither, as the one statement writes them."""
        self._reach()
        if self.fail_settlement:
            raise DatabaseUnavailable()
        if self.payments[settled.id].status != "pending":
            return None
        earlier_unsent = any(e.key == event.key and e.event_id not in self.sent for e in self.outbox)
        self.payments[settled.id] = settled
        self.outbox.append(event)
        self.log.append("commit_outcome")
        return settled, earlier_unsent

    def mark_sent(self, event_ids: list[uuid.UUID]) -> None:
        self._reach()
        self.sent.extend(event_ids)

    def claim_overdue(self, *, older_than_s: float, lease_s: float, limit: int) -> list[tuple[Payment, int]]:
        due = [p for p in self.payments.values() if p.status == "pending"]
        for payment in due:
            self.checks[payment.id] = self.checks.get(payment.id, 0) + 1
        return [(p, self.checks[p.id]) for p in due[:limit]]

    def postpone_check(self, payment: Payment, after_s: float) -> None:
        self.log.append(("postpone", after_s))

    def forget_check(self, payment: Payment) -> None:
        self.checks.pop(payment.id, None)

    def remember_webhook_event(self, event_id: str) -> bool:
        self._reach()
        if event_id in self.webhook_events:
            return False
        self.webhook_events.add(event_id)
        return True

    def forget_webhook_event(self, event_id: str) -> None:
        self._reach()
        self.webhook_events.discard(event_id)

    # --- refunds (payment/db/refund_store.py) ---

    def find_refund(self, refund_id: uuid.UUID) -> Refund | None:
        self._reach("find_refund")
        return self.refunds.get(refund_id)

    def find_refund_by_key(self, idempotency_key: str) -> Refund | None:
        self._reach("find_refund_by_key")
        return next((r for r in self.refunds.values() if r.idempotency_key == idempotency_key), None)

    def list_refunds(self, payment_id: uuid.UUID) -> list[Refund]:
        self._reach("list_refunds")
        return sorted((r for r in self.refunds.values() if r.payment_id == payment_id),
                      key=lambda r: r.created_at, reverse=True)

    def insert_pending_refund(self, request: RefundRequest, refund_id: uuid.UUID, *, is_simulated: bool,
                              created_at: datetime = NOW) -> RefundReservation:
        """The guard of the real one: the payment must have succeeded, the
        amount fit in what is left, the key be new."""
        self._reach()
        payment = self.payments.get(request.payment_id)
        if payment is None:
            return RefundReservation(None, None, None)
        left = payment.amount - sum((r.amount for r in self.refunds.values()
                                     if r.payment_id == payment.id and r.status != "failed"), Decimal(0))
        amount = left if request.amount is None else request.amount
        if (payment.status != "succeeded" or not 0 < amount <= left
                or any(r.idempotency_key == request.idempotency_key for r in self.refunds.values())):
            return RefundReservation(None, payment.status, left)
        refund = Refund(
            id=refund_id, payment_id=payment.id, order_id=payment.order_id, customer_id=payment.customer_id,
            amount=amount, currency=payment.currency, reason=request.reason, status="pending",
            error_code=None, error_message=None, transaction_id=None, created_at=created_at,
            processed_at=None, is_simulated=is_simulated, idempotency_key=request.idempotency_key,
            request_fingerprint=request.fingerprint)
        self.refunds[refund.id] = refund
        self.log.append("insert_pending_refund")
        return RefundReservation(refund, payment.status, left)

    def settle_refund(self, settled: Refund, event_for: RefundEventFor) -> SettledRefund | None:
        """Both rows or neither; the event's total counts the refunds settled before."""
        self._reach()
        if self.fail_settlement:
            raise DatabaseUnavailable()
        if self.refunds[settled.id].status != "pending":
            return None
        before = sum((r.amount for r in self.refunds.values()
                      if r.payment_id == settled.payment_id and r.status == "succeeded"), Decimal(0))
        event = event_for(settled, before + (settled.amount if settled.status == "succeeded" else 0))
        earlier_unsent = any(e.key == event.key and e.event_id not in self.sent for e in self.outbox)
        self.refunds[settled.id] = settled
        self.outbox.append(event)
        self.log.append("commit_refund_outcome")
        return SettledRefund(settled, event, earlier_unsent)

    def earlier_unsent(self, event: OutboxEvent) -> bool:
        self._reach()
        before = self.outbox[:self.outbox.index(event)]
        return any(e.key == event.key and e.event_id not in self.sent for e in before)

    def claim_overdue_refunds(self, *, older_than_s: float, lease_s: float,
                              limit: int) -> list[tuple[Refund, int]]:
        due = [r for r in self.refunds.values() if r.status == "pending"]
        for refund in due:
            self.refund_checks[refund.id] = self.refund_checks.get(refund.id, 0) + 1
        return [(r, self.refund_checks[r.id]) for r in due[:limit]]

    def postpone_refund_check(self, refund: Refund, after_s: float) -> None:
        self.log.append(("postpone_refund", after_s))

    def forget_refund_check(self, refund: Refund) -> None:
        self.refund_checks.pop(refund.id, None)


class _Identified(Protocol):
    @property
    def id(self) -> uuid.UUID: ...


A = TypeVar("A", bound=_Identified)


class _FakeUpstream(Generic[A]):
    """Answers by id (None: not found). `fault`, a DependencyError class, is
    raised instead, naming the part. Each call is kept with the request id
    the real client would have passed on (payment/upstream/clients.py)."""

    part = "upstream service"
    deadline = 1.0

    def __init__(self, answers: Iterable[A] = ()) -> None:
        self.answers: dict[uuid.UUID, A] = {answer.id: answer for answer in answers}
        self.fault: Callable[[str], DependencyError] | None = None
        self.calls: list[tuple[uuid.UUID, str | None]] = []

    def _answer(self, key: uuid.UUID) -> A | None:
        self.calls.append((key, logs.request_id()))
        if self.fault is not None:
            raise self.fault(self.part)
        return self.answers.get(key)


class FakeOrdering(_FakeUpstream[Order]):
    part = "ordering service"

    def get_order(self, order_id: uuid.UUID) -> Order | None:
        return self._answer(order_id)


class FakeReservations(_FakeUpstream[Reservation]):
    """Started as the real client is: the call is made (and kept) at
    `start_reservation`, its answer or fault handed over by `result()`."""

    part = "reservation service"

    def start_reservation(self, reservation_id: uuid.UUID) -> Sent[Reservation | None]:
        return Sent(lambda: self._answer(reservation_id))


class Sent(Generic[T]):
    """A fake call already made: `result()` returns what it returned or
    raises what it raised; `abandoned` once it is no longer wanted."""

    def __init__(self, call: Callable[[], T]) -> None:
        self.abandoned = False
        self._error: Exception | None = None
        try:
            self._answer = call()
        except Exception as error:  # noqa: BLE001 - handed over by result()
            self._error = error

    def result(self) -> T:
        if self._error is not None:
            raise self._error
        return self._answer

    def abandon(self) -> None:
        self.abandoned = True


class FakeGateway:
    """A processor that keeps its charges by payment id, as the port requires;
    outcomes by amount, as the simulator's (docs/api.md, "Test amounts")."""

    is_simulated = True

    def __init__(self, fail_with: Exception | None = None, reference: str | None = None,
                 refuse_with: Exception | None = None, prepared: ChargeResult | None = None) -> None:
        self.charged: dict[uuid.UUID, ChargeResult] = {}
        self.charges = 0
        self.fail_with = fail_with
        self.reference = reference
        self.refuse_with = refuse_with  # an InvalidRequest check_request raises
        self.prepared = prepared        # a declined ChargeResult prepare answers
        self.tokens: list[str | None] = []  # the paymentToken of each payment prepared
        self.unreachable = False
        self.refunded: dict[uuid.UUID, RefundResult] = {}
        self.refund_calls = 0

    def check_request(self, request: PaymentRequest) -> None:
        if self.refuse_with is not None:
            raise self.refuse_with

    def prepare(self, payment: Payment) -> str | ChargeResult | None:
        self.tokens.append(payment.payment_token)
        if self.prepared is not None:
            return self.prepared
        return self.reference

    def charge(self, payment: Payment) -> ChargeResult:
        self.charges += 1
        if self.reference is not None:
            assert payment.gateway_reference == self.reference, "charged before the reference was kept"
        if payment.id not in self.charged:
            self.charged[payment.id] = decide(payment)
        if self.fail_with:
            raise self.fail_with
        return self.charged[payment.id]

    def lookup(self, payment: Payment) -> Lookup:
        if self.unreachable:
            return UNKNOWN
        if payment.id in self.charged:
            return Lookup.of(self.charged[payment.id])
        return NEVER_CHARGED

    def refund(self, payment: Payment, refund: Refund) -> RefundResult:
        """Refunds kept by refund id; the simulator's test amount (.77) refused."""
        self.refund_calls += 1
        if refund.id not in self.refunded:
            code = REFUND_DECLINES.get(refund.amount % 1)
            self.refunded[refund.id] = RefundResult(
                succeeded=code is None, transaction_id=None if code else f"txn_{refund.id.hex[:16]}",
                error_code=code, error_message=REFUND_MESSAGES[code] if code else None)
        if self.fail_with:
            raise self.fail_with
        return self.refunded[refund.id]

    def lookup_refund(self, payment: Payment, refund: Refund) -> RefundLookup:
        if self.unreachable:
            return REFUND_UNKNOWN
        if refund.id in self.refunded:
            return RefundLookup.of(self.refunded[refund.id])
        return NEVER_REFUNDED


class FakePublisher:
    """The producer over a FakeStore: each event is checked to be in the
    outbox already (commit before publish), and confirmed at once unless
    `deliver` is false (its report never comes)."""

    def __init__(self, store: FakeStore, deliver: bool = True) -> None:
        self.brokers_down = threading.Event()
        self.store = store
        self.deliver = deliver
        self.published: list[OutboxEvent] = []

    def publish(self, event: OutboxEvent) -> Future[None]:
        # Commit-before-publish: the event must already be in the outbox.
        assert event in self.store.outbox
        self.store.log.append("publish")
        self.published.append(event)
        future: Future[None] = Future()
        if self.deliver:
            future.set_result(None)
        return future


class FakeDelivery:
    """Every event handed over is confirmed at once; `mark_now` marks in the
    store it is given, `mark_soon` only keeps the ids (the real marker
    writes them later, on its own thread)."""

    def __init__(self, marks: ports.SentMarks) -> None:
        self.marks = marks
        self.sent: list[OutboxEvent] = []
        self.marked_soon: list[uuid.UUID] = []

    def send(self, events: Sequence[OutboxEvent], timeout: float) -> list[uuid.UUID]:
        self.sent.extend(events)
        return [event.event_id for event in events]

    def mark_now(self, event_ids: list[uuid.UUID]) -> None:
        self.marks.mark_sent(event_ids)

    def mark_soon(self, event_ids: list[uuid.UUID]) -> None:
        self.marked_soon.extend(event_ids)


# Each fake held to its port: mypy fails here when one drifts (a method
# missing, renamed, or with other parameters or types). Nothing at run time.
def _held_to_their_ports(store: FakeStore) -> None:
    _store: ports.PaymentStore = store
    _refunds: ports.RefundStore = store
    _marks: ports.SentMarks = store
    _ordering: ports.OrderingClient = FakeOrdering()
    _reservations: ports.ReservationClient = FakeReservations()
    _gateway: ports.PaymentGateway = FakeGateway()
    _publisher: ports.Publisher = FakePublisher(store)
    _delivery: ports.Delivery = FakeDelivery(store)
