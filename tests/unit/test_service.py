"""The payment flow over hand-written fakes: ordering of the steps, and what
is (not) charged, written or published on each path."""

from __future__ import annotations

import threading
import uuid
from concurrent.futures import Future
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest

from payment import errors, service
from payment.delivery import Delivery
from payment.gateway import SimulatedGateway, decline_for
from payment.model import Order, Payment, PaymentRequest, Reservation

CUSTOMER = uuid.uuid4()
NOW = datetime(2026, 3, 4, 15, 30, tzinfo=timezone.utc)


class FakeStore:
    def __init__(self):
        self.payments: dict[uuid.UUID, Payment] = {}
        self.outbox = []
        self.sent = []
        self.log = []

    def find_succeeded(self, order_id):
        return next((p for p in self.payments.values() if p.order_id == order_id and p.status == "succeeded"), None)

    def find_live(self, order_id):
        return next((p for p in self.payments.values()
                     if p.order_id == order_id and p.status in ("pending", "succeeded")), None)

    def insert_pending(self, params):
        if self.find_live(params["order_id"]):
            return None
        payment = Payment(
            **params, status="pending", error_code=None, error_message=None, failure_reason=None,
            transaction_id=None, created_at=NOW, processed_at=None, simulated_response=None)
        self.payments[payment.id] = payment
        self.log.append("insert_pending")
        return payment

    def record_outcome(self, params, event_for):
        payment = replace(self.payments[params["id"]], **{k: v for k, v in params.items() if k != "id"},
                          processed_at=NOW + timedelta(seconds=1))
        self.payments[payment.id] = payment
        event = event_for(payment)
        earlier_unsent = any(e.key == event.key and e.event_id not in self.sent for e in self.outbox)
        self.outbox.append(event)
        self.log.append("commit_outcome")
        return payment, event, earlier_unsent

    def mark_sent(self, event_ids):
        self.sent.extend(event_ids)


class FakePublisher:
    def __init__(self, store, deliver=True):
        self.brokers_down = threading.Event()
        self.store = store
        self.deliver = deliver
        self.published = []

    def publish(self, event):
        # Commit-before-publish: the event must already be in the outbox.
        assert event in self.store.outbox
        self.store.log.append("publish")
        self.published.append(event)
        future = Future()
        if self.deliver:
            future.set_result(None)
        return future


class FakeUpstream:
    def __init__(self, order=None, reservation=None):
        self.order = order
        self.reservation = reservation
        self.calls = 0

    def get_order(self, order_id, headers=None):
        self.calls += 1
        return self.order

    def get_reservation(self, reservation_id, headers=None):
        self.calls += 1
        return self.reservation


class CountingGateway(SimulatedGateway):
    def __init__(self, fail_with=None):
        super().__init__()
        self.charges = 0
        self.fail_with = fail_with

    def charge(self, payment):
        self.charges += 1
        if self.fail_with:
            raise self.fail_with
        return super().charge(payment)


def make(amount="150.00", order_status="pending", deliver=True, gateway=None, reservation=None):
    request = PaymentRequest(order_id=uuid.uuid4(), customer_id=CUSTOMER, reservation_id=None,
                             amount=Decimal(amount), currency="USD", payment_method="paypal")
    order = Order(id=request.order_id, customer_id=CUSTOMER, total_amount=Decimal(amount),
                  currency="USD", status=order_status)
    store = FakeStore()
    upstream = FakeUpstream(order, reservation)
    deps = service.Dependencies(
        store=store, ordering=upstream, reservations=upstream, gateway=gateway or CountingGateway(),
        delivery=Delivery(store, FakePublisher(store, deliver)), topic_succeeded="ok", topic_failed="ko",
        delivery_timeout=0.01)
    return request, deps


def test_success_commits_then_publishes_then_marks_sent():
    request, deps = make()
    outcome = service.pay(request, deps)
    assert outcome.payment.status == "succeeded" and not outcome.replayed
    assert deps.store.log == ["insert_pending", "commit_outcome", "publish"]
    [event] = deps.store.outbox
    assert event.topic == "ok" and event.key == str(request.order_id)
    assert deps.store.sent == [event.event_id]


def test_undelivered_event_stays_unsent_and_payment_still_succeeds():
    request, deps = make(deliver=False)
    outcome = service.pay(request, deps)
    assert outcome.payment.status == "succeeded"
    assert len(deps.store.outbox) == 1 and deps.store.sent == []


def test_replay_skips_upstream_and_gateway():
    request, deps = make()
    first = service.pay(request, deps)
    calls, charges = deps.ordering.calls, deps.gateway.charges
    again = service.pay(request, deps)
    assert again.replayed and again.payment == first.payment
    assert (deps.ordering.calls, deps.gateway.charges) == (calls, charges)


def test_in_flight_payment_is_409_without_charge():
    request, deps = make()
    deps.store.insert_pending({"id": uuid.uuid4(), "order_id": request.order_id, "customer_id": CUSTOMER,
                               "reservation_id": None, "amount": request.amount, "currency": "USD",
                               "payment_method": "paypal", "is_simulated": True})
    with pytest.raises(errors.PaymentInProgress):
        service.pay(request, deps)
    assert deps.gateway.charges == 0


def test_decline_records_failed_payment_and_failed_event():
    request, deps = make(amount="10.66")
    with pytest.raises(errors.PaymentDeclined) as raised:
        service.pay(request, deps)
    assert raised.value.payment.error_code == "INSUFFICIENT_FUNDS"
    assert raised.value.message == "Payment failed: Card declined due to insufficient funds"
    [event] = deps.store.outbox
    assert event.topic == "ko" and event.event_type == "payment-failed"


def test_gateway_exception_leaves_payment_pending_and_nothing_published():
    request, deps = make(gateway=CountingGateway(fail_with=ConnectionError("boom")))
    with pytest.raises(errors.GatewayUnavailable):
        service.pay(request, deps)
    [payment] = deps.store.payments.values()
    assert payment.status == "pending"
    assert deps.store.outbox == [] and deps.delivery.publisher.published == []


@pytest.mark.parametrize("status", ["cancelled", "expired", "refunded"])
def test_closed_orders_are_refused_before_any_write(status):
    request, deps = make(order_status=status)
    with pytest.raises(errors.OrderInvalid, match=f"order is {status}"):
        service.pay(request, deps)
    assert deps.store.payments == {} and deps.gateway.charges == 0


def test_reservation_checks():
    request = PaymentRequest(uuid.uuid4(), CUSTOMER, uuid.uuid4(), Decimal(1), "USD", "paypal")
    good = Reservation(request.reservation_id, CUSTOMER, "active", NOW + timedelta(minutes=5))
    service.validate_reservation(request, good, now=NOW)
    for reservation, why in [
        (None, "reservation not found"),
        (replace(good, customer_id=uuid.uuid4()), "does not belong to the customer"),
        (replace(good, status="released"), "reservation is released"),
        (replace(good, expires_at=NOW), "reservation has expired"),
    ]:
        with pytest.raises(errors.ReservationInvalid, match=why):
            service.validate_reservation(request, reservation, now=NOW)


@pytest.mark.parametrize("amount, code", [
    ("1.13", "CARD_DECLINED"), ("1.66", "INSUFFICIENT_FUNDS"), ("1.99", "PROCESSOR_TIMEOUT"),
    ("999999.99", "AMOUNT_TOO_LARGE"), ("5000000", "AMOUNT_TOO_LARGE"), ("1.1300", "CARD_DECLINED"),
    ("1.00", None), ("1.131", None), ("13", None), ("999999.98", None),
])
def test_simulator_outcomes_follow_the_amount(amount, code):
    decline = decline_for(Decimal(amount))
    assert (decline[0] if decline else None) == code
