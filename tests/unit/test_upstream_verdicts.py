"""The order and the reservation are fetched at once and judged in that order,
over hand-written fake clients that answer when told: the order's refusal or
fault is the answer whichever of the two answers first; the reservation call
runs on the pool, with the request's log fields, within its deadline counted
from when it was asked for; an abandoned call holds no thread past its end."""

from __future__ import annotations

import threading
import time
import uuid
from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest

from payment import errors, logs, service
from payment.model import Order, PaymentRequest, Reservation
from payment.side_calls import InOrder, SideCalls

CUSTOMER = uuid.uuid4()
WAIT_S = 5  # how long a fake waits for what it was told to wait for: a test bug, not a verdict


class Reply:
    """One fake call: waits for `after` (an Event) when given, records that
    it started and finished, then returns `answer` or raises it (an answer
    that is a function is called first: a fresh exception each time)."""

    def __init__(self, answer, after: threading.Event | None = None):
        self.answer = answer
        self.after = after
        self.started = threading.Event()
        self.finished = threading.Event()
        self.deadline = None
        self.thread = None
        self.request_id = None

    def __call__(self, deadline):
        self.deadline = deadline
        self.thread = threading.current_thread().name
        self.request_id = logs.bound("requestId")
        self.started.set()
        try:
            if self.after is not None:
                assert self.after.wait(WAIT_S), "the fake was never released"
            answer = self.answer() if callable(self.answer) else self.answer
            if isinstance(answer, BaseException):
                raise answer
            return answer
        finally:
            self.finished.set()


class FakeOrdering:
    part = "ordering service"
    deadline = 1.0

    def __init__(self, reply: Reply):
        self.reply = reply

    def get_order(self, order_id, *, deadline=None):
        return self.reply(deadline)


class FakeReservations:
    part = "reservation service"
    deadline = 1.0

    def __init__(self, reply: Reply):
        self.reply = reply

    def get_reservation(self, reservation_id, *, deadline=None):
        return self.reply(deadline)


REQUEST = PaymentRequest(order_id=uuid.uuid4(), customer_id=CUSTOMER, reservation_id=uuid.uuid4(),
                         amount=Decimal("150.00"), currency="USD", payment_method="credit_card")
GOOD_ORDER = Order(REQUEST.order_id, CUSTOMER, Decimal("150.00"), "USD", "pending")
GOOD_RESERVATION = Reservation(REQUEST.reservation_id, CUSTOMER, "active",
                               datetime.now(timezone.utc) + timedelta(days=1))

# (the order's answer, the error it gives, the message)
def fault(kind, part):
    return lambda: kind(part)


BAD_ORDERS = [
    (None, errors.OrderNotFound, "Order not found"),
    (Order(REQUEST.order_id, uuid.uuid4(), Decimal("150.00"), "USD", "pending"), errors.CustomerMismatch, None),
    (Order(REQUEST.order_id, CUSTOMER, Decimal("150.00"), "USD", "cancelled"), errors.OrderInvalid, "order is cancelled"),
    (Order(REQUEST.order_id, CUSTOMER, Decimal("99.00"), "USD", "pending"), errors.OrderInvalid, "amount 150.00"),
    (Order(REQUEST.order_id, CUSTOMER, Decimal("150.00"), "EUR", "pending"), errors.OrderInvalid, "currency USD"),
    (fault(errors.UpstreamTimeout, "ordering service"), errors.UpstreamTimeout, "ordering service"),
    (fault(errors.UpstreamUnavailable, "ordering service"), errors.UpstreamUnavailable, "ordering service"),
    (fault(errors.UpstreamBadResponse, "ordering service"), errors.UpstreamBadResponse, "ordering service"),
]
BAD_RESERVATIONS = [
    (None, errors.ReservationInvalid, "reservation not found"),
    (Reservation(REQUEST.reservation_id, CUSTOMER, "released", GOOD_RESERVATION.expires_at),
     errors.ReservationInvalid, "reservation is released"),
    (fault(errors.UpstreamUnavailable, "reservation service"), errors.UpstreamUnavailable, "reservation service"),
    (fault(errors.UpstreamTimeout, "reservation service"), errors.UpstreamTimeout, "reservation service"),
]


@pytest.fixture
def side_calls():
    pool = SideCalls(threads=2)
    yield pool
    pool.close()


def deps_for(order: Reply, reservation: Reply, side_calls) -> service.Dependencies:
    return service.Dependencies(
        store=None, ordering=FakeOrdering(order), reservations=FakeReservations(reservation),
        gateway=None, delivery=None, topic_succeeded="ok", topic_failed="ko", delivery_timeout=0.01,
        side_calls=side_calls)


def verdict(deps, request=REQUEST):
    try:
        service.check_upstreams(request, deps)
    except errors.PaymentError as error:
        return error
    return None


def assert_is(error, kind, message):
    assert type(error) is kind, error
    if message is not None:
        assert message in error.message


@pytest.mark.parametrize("bad_reservation, _kind, _message", BAD_RESERVATIONS,
                         ids=[kind.__name__ + ":" + message for _, kind, message in BAD_RESERVATIONS])
@pytest.mark.parametrize("bad_order, kind, message", BAD_ORDERS,
                         ids=[kind.__name__ + (f":{message}" if message else "") for _, kind, message in BAD_ORDERS])
def test_the_order_is_judged_first_though_the_reservation_answered_first(
        side_calls, bad_order, kind, message, bad_reservation, _kind, _message):
    reservation = Reply(bad_reservation)
    # The order answers only once the reservation's call is over.
    order = Reply(bad_order, after=reservation.finished)
    assert_is(verdict(deps_for(order, reservation, side_calls)), kind, message)


@pytest.mark.parametrize("bad_reservation, kind, message", BAD_RESERVATIONS,
                         ids=[kind.__name__ + ":" + message for _, kind, message in BAD_RESERVATIONS])
@pytest.mark.parametrize("first", ["order first", "reservation first"])
def test_a_good_order_then_the_reservation_is_judged(side_calls, bad_reservation, kind, message, first):
    if first == "order first":
        order = Reply(GOOD_ORDER)
        reservation = Reply(bad_reservation, after=order.finished)
    else:
        reservation = Reply(bad_reservation)
        order = Reply(GOOD_ORDER, after=reservation.finished)
    assert_is(verdict(deps_for(order, reservation, side_calls)), kind, message)


def test_both_good_is_no_verdict(side_calls):
    assert verdict(deps_for(Reply(GOOD_ORDER), Reply(GOOD_RESERVATION), side_calls)) is None


def test_the_two_calls_are_under_way_at_once(side_calls):
    """The order call waits until the reservation call has started: made one
    after the other, it would wait for ever."""
    reservation = Reply(GOOD_RESERVATION)
    order = Reply(GOOD_ORDER, after=reservation.started)
    assert verdict(deps_for(order, reservation, side_calls)) is None
    assert order.finished.is_set() and reservation.finished.is_set()


def test_without_a_reservation_only_the_order_is_fetched(side_calls):
    request = PaymentRequest(REQUEST.order_id, CUSTOMER, None, REQUEST.amount, "USD", "credit_card")
    reservation = Reply(None)
    assert verdict(deps_for(Reply(GOOD_ORDER), reservation, side_calls), request) is None
    assert not reservation.started.is_set()


def test_the_reservation_call_carries_the_request_log_fields_to_its_thread(side_calls):
    reservation = Reply(GOOD_RESERVATION)
    token = logs.bind(requestId="checkout-7")
    try:
        assert verdict(deps_for(Reply(GOOD_ORDER), reservation, side_calls)) is None
    finally:
        logs.unbind(token)
    assert reservation.request_id == "checkout-7"
    assert reservation.thread.startswith("upstream-call") and reservation.thread != threading.current_thread().name


def test_a_refused_order_answers_without_waiting_for_the_reservation(side_calls):
    release = threading.Event()
    reservation = Reply(GOOD_RESERVATION, after=release)
    order = Reply(None, after=reservation.started)
    started = time.monotonic()
    assert_is(verdict(deps_for(order, reservation, side_calls)), errors.OrderNotFound, None)
    assert time.monotonic() - started < 0.5
    assert not reservation.finished.is_set()
    release.set()
    assert reservation.finished.wait(WAIT_S)


def test_a_reservation_past_its_deadline_is_a_timeout_at_the_deadline(side_calls):
    """The fake ignores the deadline it is given: the wait is bounded all the same."""
    release = threading.Event()
    reservation = Reply(GOOD_RESERVATION, after=release)
    deps = deps_for(Reply(GOOD_ORDER), reservation, side_calls)
    deps.reservations.deadline = 0.3
    started = time.monotonic()
    error = verdict(deps)
    elapsed = time.monotonic() - started
    release.set()
    assert_is(error, errors.UpstreamTimeout, "reservation service did not answer in time")
    assert 0.3 <= elapsed < 0.6, elapsed
    assert reservation.deadline == pytest.approx(0.3, abs=0.05)


def test_the_deadline_counts_the_wait_for_a_thread():
    """One thread, held by another call for 0.2 s: the reservation call gets
    what is left of its 0.5 s."""
    pool = SideCalls(threads=1)
    try:
        release = threading.Event()
        holder = Reply("held", after=release)
        held = pool.start(holder, deadline=5, late=TimeoutError())
        assert holder.started.wait(WAIT_S)
        threading.Timer(0.2, release.set).start()
        reservation = Reply(GOOD_RESERVATION)
        deps = deps_for(Reply(GOOD_ORDER), reservation, pool)
        deps.reservations.deadline = 0.5
        assert verdict(deps) is None
        assert 0.2 < reservation.deadline < 0.32, reservation.deadline
        assert held.result() == "held"
    finally:
        pool.close()


def test_a_call_still_waiting_for_a_thread_when_abandoned_never_runs():
    pool = SideCalls(threads=1)
    release = threading.Event()
    holder = Reply("held", after=release)
    pool.start(holder, deadline=5, late=TimeoutError())
    reservation = Reply(GOOD_RESERVATION)
    assert_is(verdict(deps_for(Reply(None), reservation, pool)), errors.OrderNotFound, None)
    release.set()
    pool.close()
    assert not reservation.started.is_set()


def test_an_abandoned_failing_call_is_read_and_no_thread_outlives_close():
    pool = SideCalls(threads=2)
    release = threading.Event()
    reservation = Reply(fault(errors.UpstreamUnavailable, "reservation service"), after=release)
    order = Reply(fault(errors.UpstreamTimeout, "ordering service"), after=reservation.started)
    assert_is(verdict(deps_for(order, reservation, pool)), errors.UpstreamTimeout, "ordering service")
    release.set()
    pool.close()
    assert reservation.finished.is_set()
    assert [t.name for t in threading.enumerate() if t.name.startswith("upstream-call")] == []


def test_in_order_makes_the_reservation_call_after_the_order_on_the_request_thread():
    order = Reply(GOOD_ORDER)
    reservation = Reply(GOOD_RESERVATION)
    assert verdict(deps_for(order, reservation, InOrder())) is None
    assert reservation.thread == order.thread == threading.current_thread().name
    # A refused order: the reservation is never asked for.
    untouched = Reply(GOOD_RESERVATION)
    assert_is(verdict(deps_for(Reply(None), untouched, InOrder())), errors.OrderNotFound, None)
    assert not untouched.started.is_set()


def test_a_timeout_raised_by_the_call_is_the_calls_own(side_calls):
    """Not mistaken for the wait running out: the call's own error is answered."""
    own = TimeoutError("the call's own")
    started = side_calls.start(Reply(lambda: own), deadline=5, late=RuntimeError("late"))
    with pytest.raises(TimeoutError) as raised:
        started.result()
    assert raised.value is own
