"""Hand-written fakes of the service's adapters for the unit tier: the store,
the ordering and reservation clients, the gateway and the delivery of events.
Each keeps what it was asked, so that a test can say what was (not) read,
written, charged or published."""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import datetime, timezone

from payment import logs
from payment.errors import DatabaseUnavailable
from payment.gateways.port import NEVER_CHARGED, UNKNOWN, Lookup
from payment.gateways.simulator import decide
from payment.model import Payment

NOW = datetime(2026, 3, 4, 15, 30, tzinfo=timezone.utc)


class FakeStore:
    """The payment store in dicts. `unavailable`: every call is the
    DatabaseUnavailable the real store raises when PostgreSQL is away."""

    def __init__(self):
        self.payments: dict[uuid.UUID, Payment] = {}
        self.outbox = []
        self.sent = []
        self.log = []      # the writes, in order
        self.reads = []    # the reads, in order
        self.checks: dict[uuid.UUID, int] = {}
        self.fail_settlement = False
        self.unavailable = False

    def _reach(self, read: str | None = None) -> None:
        if self.unavailable:
            raise DatabaseUnavailable()
        if read:
            self.reads.append(read)

    def find(self, payment_id):
        self._reach("find")
        return self.payments.get(payment_id)

    def find_succeeded(self, order_id):
        self._reach("find_succeeded")
        return next((p for p in self.payments.values() if p.order_id == order_id and p.status == "succeeded"), None)

    def find_live(self, order_id):
        self._reach("find_live")
        return next((p for p in self.payments.values()
                     if p.order_id == order_id and p.status in ("pending", "succeeded")), None)

    def list_for_order(self, order_id):
        self._reach("list_for_order")
        return sorted((p for p in self.payments.values() if p.order_id == order_id),
                      key=lambda p: p.created_at, reverse=True)

    def insert_pending(self, request, payment_id, *, is_simulated, created_at=NOW):
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

    def attach_reference(self, payment, reference):
        self._reach()
        self.payments[payment.id] = replace(self.payments[payment.id], gateway_reference=reference)
        self.log.append("attach_reference")
        return self.payments[payment.id]

    def settle(self, settled, event):
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

    def mark_sent(self, event_ids):
        self._reach()
        self.sent.extend(event_ids)

    def claim_overdue(self, *, older_than_s, lease_s, limit):
        due = [p for p in self.payments.values() if p.status == "pending"]
        for payment in due:
            self.checks[payment.id] = self.checks.get(payment.id, 0) + 1
        return [(p, self.checks[p.id]) for p in due[:limit]]

    def postpone_check(self, payment, after_s):
        self.log.append(("postpone", after_s))

    def forget_check(self, payment):
        self.checks.pop(payment.id, None)


class _FakeUpstream:
    """Answers by id (None: not found). `fault`, a DependencyError class, is
    raised instead, naming the part. Each call is kept with the request id
    the real client would have passed on (payment/upstream/clients.py)."""

    part = "upstream service"
    deadline = 1.0

    def __init__(self, answers=()):
        self.answers = {answer.id: answer for answer in answers}
        self.fault = None
        self.calls: list[tuple[uuid.UUID, str | None]] = []

    def _answer(self, key):
        self.calls.append((key, logs.request_id()))
        if self.fault is not None:
            raise self.fault(self.part)
        return self.answers.get(key)


class FakeOrdering(_FakeUpstream):
    part = "ordering service"

    def get_order(self, order_id, *, deadline=None):
        return self._answer(order_id)


class FakeReservations(_FakeUpstream):
    """Started as the real client is: the call is made (and kept) at
    `start_reservation`, its answer or fault handed over by `result()`."""

    part = "reservation service"

    def start_reservation(self, reservation_id):
        return Sent(lambda: self._answer(reservation_id))


class Sent:
    """A fake call already made: `result()` returns what it returned or
    raises what it raised; `abandoned` once it is no longer wanted."""

    def __init__(self, call):
        self.abandoned = False
        try:
            self._answer, self._error = call(), None
        except Exception as error:  # noqa: BLE001 - handed over by result()
            self._answer, self._error = None, error

    def result(self):
        if self._error is not None:
            raise self._error
        return self._answer

    def abandon(self):
        self.abandoned = True


class FakeGateway:
    """A processor that keeps its charges by payment id, as the port requires;
    outcomes by amount, as the simulator's (docs/api.md, "Test amounts")."""

    is_simulated = True

    def __init__(self, fail_with=None, reference=None):
        self.charged: dict[uuid.UUID, object] = {}
        self.charges = 0
        self.fail_with = fail_with
        self.reference = reference
        self.unreachable = False

    def prepare(self, payment):
        return self.reference

    def charge(self, payment):
        self.charges += 1
        if self.reference is not None:
            assert payment.gateway_reference == self.reference, "charged before the reference was kept"
        if payment.id not in self.charged:
            self.charged[payment.id] = decide(payment)
        if self.fail_with:
            raise self.fail_with
        return self.charged[payment.id]

    def lookup(self, payment):
        if self.unreachable:
            return UNKNOWN
        if payment.id in self.charged:
            return Lookup.of(self.charged[payment.id])
        return NEVER_CHARGED


class FakeDelivery:
    """Every event handed over is confirmed at once."""

    def __init__(self):
        self.sent = []
        self.marked_soon = []

    def send(self, events, timeout: float):
        self.sent.extend(events)
        return [event.event_id for event in events]

    def mark_soon(self, event_ids):
        self.marked_soon.extend(event_ids)
