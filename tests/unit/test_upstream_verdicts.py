"""The order and the reservation are fetched at once and judged in that order.

Over hand-written fake clients that keep a journal: the reservation's request
is sent before the order is asked for and its answer read after; the order's
refusal or fault is the answer whatever the reservation's, which is then
abandoned unread. Over the real reservation client and a local server: the
request really is out while the order is fetched, a late answer ends at the
deadline counted from the send, and an abandoned call's connection is closed,
never pooled."""

from __future__ import annotations

import json
import select
import socket
import time
import uuid
from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest

from payment import errors, logs, service
from payment.config import Config
from payment.model import Order, PaymentRequest, Reservation
from payment.upstream.clients import ReservationClient
from payment.upstream.httpclient import ConnectionPool
from tests.timing import wait_until
from tests.unit.test_httpclient import Server

CUSTOMER = uuid.uuid4()

SENT, ORDER, READ, ABANDONED = "reservation sent", "order fetched", "reservation read", "reservation abandoned"


def answer(value):
    """`value` returned, or raised (a function is called first: a fresh exception each time)."""
    value = value() if callable(value) else value
    if isinstance(value, BaseException):
        raise value
    return value


class FakeOrdering:
    part = "ordering service"

    def __init__(self, reply, journal: list, before=None):
        self.reply = reply
        self.journal = journal
        self.before = before  # called first: what the order call checks or waits for

    def get_order(self, order_id):
        if self.before is not None:
            self.before()
        self.journal.append(ORDER)
        return answer(self.reply)


class FakeReservations:
    part = "reservation service"

    def __init__(self, reply, journal: list):
        self.reply = reply
        self.journal = journal
        self.request_id = None

    def start_reservation(self, reservation_id):
        self.journal.append(SENT)
        self.request_id = logs.request_id()
        return FakePending(self.reply, self.journal)


class FakePending:
    def __init__(self, reply, journal: list):
        self.reply = reply
        self.journal = journal

    def result(self):
        self.journal.append(READ)
        return answer(self.reply)

    def abandon(self):
        self.journal.append(ABANDONED)


REQUEST = PaymentRequest(order_id=uuid.uuid4(), customer_id=CUSTOMER, reservation_id=uuid.uuid4(),
                         amount=Decimal("150.00"), currency="USD", payment_method="credit_card")
GOOD_ORDER = Order(REQUEST.order_id, CUSTOMER, Decimal("150.00"), "USD", "pending")
GOOD_RESERVATION = Reservation(REQUEST.reservation_id, CUSTOMER, "active",
                               datetime.now(timezone.utc) + timedelta(days=1))
GOOD_RESERVATION_JSON = json.dumps({"id": str(REQUEST.reservation_id), "customerId": str(CUSTOMER),
                                    "status": "active", "expiresAt": "2099-01-01T00:00:00Z"}).encode()


def fault(kind, part):
    return lambda: kind(part)


# (the order's answer, the error it gives, the message)
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


def deps_with(ordering, reservations) -> service.Dependencies:
    return service.Dependencies(
        store=None, ordering=ordering, reservations=reservations,
        gateway=None, delivery=None, topic_succeeded="ok", topic_failed="ko", delivery_timeout=0.01,
        pending_timeout=Config.pending_timeout)


def fakes(order_reply, reservation_reply):
    """(dependencies, journal) over fakes whose order call fails the test
    unless the reservation's request was sent first."""
    journal: list[str] = []

    def reservation_already_sent():
        assert journal == [SENT], "the order was asked for before the reservation's request was sent"

    return deps_with(FakeOrdering(order_reply, journal, before=reservation_already_sent),
                     FakeReservations(reservation_reply, journal)), journal


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
def test_the_order_is_judged_first_and_the_reservation_abandoned_unread(
        bad_order, kind, message, bad_reservation, _kind, _message):
    deps, journal = fakes(bad_order, bad_reservation)
    assert_is(verdict(deps), kind, message)
    assert journal == [SENT, ORDER, ABANDONED]


@pytest.mark.parametrize("bad_reservation, kind, message", BAD_RESERVATIONS,
                         ids=[kind.__name__ + ":" + message for _, kind, message in BAD_RESERVATIONS])
def test_a_good_order_then_the_reservation_is_judged(bad_reservation, kind, message):
    deps, journal = fakes(GOOD_ORDER, bad_reservation)
    assert_is(verdict(deps), kind, message)
    assert journal == [SENT, ORDER, READ]


def test_both_good_is_no_verdict_the_reservation_sent_before_the_order_and_read_after():
    deps, journal = fakes(GOOD_ORDER, GOOD_RESERVATION)
    assert verdict(deps) is None
    assert journal == [SENT, ORDER, READ]


def test_without_a_reservation_only_the_order_is_fetched():
    request = PaymentRequest(REQUEST.order_id, CUSTOMER, None, REQUEST.amount, "USD", "credit_card")
    deps, journal = fakes(GOOD_ORDER, GOOD_RESERVATION)
    deps.ordering.before = None
    assert verdict(deps, request) is None
    assert journal == [ORDER]


def test_the_reservation_call_is_started_with_the_request_log_fields():
    deps, _journal = fakes(GOOD_ORDER, GOOD_RESERVATION)
    token = logs.bind(requestId="checkout-7")
    try:
        assert verdict(deps) is None
    finally:
        logs.unbind(token)
    assert deps.reservations.request_id == "checkout-7"


# Over the real reservation client and a local server.

def reservation_client(server: Server, pool: ConnectionPool, deadline: float = 2.0) -> ReservationClient:
    return ReservationClient(server.url, pool, connect_timeout=1, read_timeout=2, deadline=deadline,
                             max_response_bytes=4096)


def test_the_reservation_request_reaches_its_server_before_the_order_is_asked_for():
    """The order call waits until the server has the reservation's request:
    made one after the other, it would wait in vain."""
    server = Server(answer=GOOD_RESERVATION_JSON)
    pool = ConnectionPool()
    try:
        path = f"/reservations/{REQUEST.reservation_id}"
        journal: list[str] = []

        def reservation_at_its_server():
            assert wait_until(lambda: server.paths == [path]), "the reservation's request never reached its server"

        ordering = FakeOrdering(GOOD_ORDER, journal, before=reservation_at_its_server)
        assert verdict(deps_with(ordering, reservation_client(server, pool))) is None
        assert journal == [ORDER]
        assert len(pool._idle[("http", server.url[len("http://"):])]) == 1  # read whole, kept alive
    finally:
        server.close()


def test_a_late_reservation_is_a_timeout_at_its_deadline_counted_from_the_send():
    """The order takes 0.4 s of the reservation's 0.6 s: the answer is given
    up at 0.6 s from the send, not 0.6 s after the order."""
    server = Server(delay_s=3.0, answer=GOOD_RESERVATION_JSON)
    try:
        journal: list[str] = []
        ordering = FakeOrdering(GOOD_ORDER, journal, before=lambda: time.sleep(0.4))
        deps = deps_with(ordering, reservation_client(server, ConnectionPool(), deadline=0.6))
        started = time.monotonic()
        error = verdict(deps)
        elapsed = time.monotonic() - started
        assert_is(error, errors.UpstreamTimeout, "reservation service did not answer in time")
        assert 0.55 <= elapsed < 0.95, elapsed
    finally:
        server.close()


def test_a_refused_order_answers_without_waiting_and_closes_the_reservation_connection():
    server = Server(delay_s=2.0, answer=GOOD_RESERVATION_JSON)
    pool = ConnectionPool()
    try:
        path = f"/reservations/{REQUEST.reservation_id}"
        ordering = FakeOrdering(None, [], before=lambda: wait_until(lambda: server.paths == [path]))
        started = time.monotonic()
        assert_is(verdict(deps_with(ordering, reservation_client(server, pool))), errors.OrderNotFound, None)
        assert time.monotonic() - started < 1.0  # the reservation answers at 2 s
        assert not any(pool._idle.values())  # its connection was closed, not pooled
        # The server's end sees the connection closed while it is still working.
        assert wait_until(lambda: closed_by_the_client(server.handlers[0].connection))
    finally:
        server.close()


def closed_by_the_client(sock: socket.socket) -> bool:
    return bool(select.select([sock], [], [], 0)[0]) and sock.recv(1, socket.MSG_PEEK) == b""
