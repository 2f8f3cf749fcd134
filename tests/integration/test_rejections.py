"""Refusals of POST /payments through the real app, database, broker and
sandbox: bad bodies leave every table and topic as they were, and the
refusals that come from what the ordering and reservation services answer
over HTTP (an unknown order, another customer's, a closed one, a reservation
unknown or expired) are the documented ones, with nothing written.

Every refusal's status and exact envelope, over fakes, is in
tests/unit/test_refusals.py."""

from __future__ import annotations

import uuid

import pytest

from devstack.sandbox import EXAMPLE_CUSTOMER_ID, EXAMPLE_ORDER_ID
from tests.support import NO_EVENTS, new_order, payment_body

# Validation: the same whichever way the service reaches PostgreSQL.
pytestmark = pytest.mark.route_independent


def refused(message: str) -> dict:
    return {"success": False, "errorMessage": message, "payment": None}


GOOD = {"orderId": EXAMPLE_ORDER_ID, "customerId": EXAMPLE_CUSTOMER_ID, "amount": 150}
BAD = [
    (payment_body(EXAMPLE_ORDER_ID, currency="usd"), "application/json", 400,
     "Invalid request: currency must be a three-letter ISO 4217 code, such as USD, EUR or GBP"),
    ({**GOOD, "ammount": 150}, "application/json", 400, "Invalid request: unknown field 'ammount'"),
    (b'{"orderId": ', "application/json", 400,
     "Invalid request: body is not valid JSON (Expecting value at position 12)"),
    (b'{"orderId": "7c9e6679-7425-40de-944b-e07fc1f90ae7", "customerId": '
     b'"a8098c1a-f86e-11da-bd1a-00112444be1e", "amount": 150.001}', "application/json", 400,
     "Invalid request: amount has more decimals than USD allows (2)"),
    (payment_body(EXAMPLE_ORDER_ID), "text/plain", 415, "Invalid request: Content-Type must be application/json"),
    (b'{"pad": "' + b"x" * 65536 + b'"}', "application/json", 413, "Invalid request: body is larger than 64 KiB"),
]


def test_bad_bodies_write_nothing_and_publish_nothing(client, database, events):
    # The contract's example order is there to be paid: only the bodies stand in the way.
    for body, content_type, status, message in BAD:
        reply = client.pay(body, content_type=content_type)
        assert (reply.status, reply.body) == (status, refused(message))

    for table in ("payments", "outbox", "simulator_charges", "simulator_voids", "payment_checks"):
        assert database.rows(table) == [], table
    assert events.all(settle_s=0.3) == NO_EVENTS


def test_an_unknown_order_is_404(client, nothing_happened):
    reply = client.pay(payment_body(str(uuid.uuid4())))
    assert reply.status == 404
    assert reply.body == refused("Order not found")


@pytest.mark.parametrize("order, why", [
    ({"customer_id": str(uuid.uuid4())}, None),
    ({"status": "Cancelled"}, "Order validation failed: order is cancelled"),
    ({"total": 150.01}, "Order validation failed: amount 150.00 does not match the order total 150.01"),
])
def test_the_orders_answer_is_judged(client, sandbox, nothing_happened, order, why):
    reply = client.pay(payment_body(new_order(sandbox, **order)))
    if why is None:
        assert reply.status == 403
        assert reply.body == refused("Unauthorized: Customer does not own this order")
    else:
        assert reply.status == 400
        assert reply.body == refused(why)


@pytest.mark.parametrize("reservation, why", [
    (None, "reservation not found"),
    ({"customer_id": str(uuid.uuid4())}, "reservation does not belong to the customer"),
    ({"status": "released"}, "reservation is released"),
    ({"expires_at": "2020-01-01T00:00:00Z"}, "reservation has expired"),
])
def test_the_reservations_answer_is_judged(client, sandbox, nothing_happened, reservation, why):
    order_id = new_order(sandbox)
    reservation_id = str(uuid.uuid4())
    if reservation is not None:
        sandbox.put_reservation(reservation_id, **reservation)
    reply = client.pay(payment_body(order_id, reservationId=reservation_id))
    assert reply.status == 400
    assert reply.body == refused(f"Reservation validation failed: {why}")
