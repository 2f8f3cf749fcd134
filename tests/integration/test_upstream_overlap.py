"""The order and the reservation are fetched at once from the real sandbox:
with both services answering D late, a payment takes about D, not 2·D; and
the answers are still judged order first, so when both are bad the order's
error is the one answered, even when the reservation's came back first."""

from __future__ import annotations

import time
import uuid

import pytest

from devstack.sandbox import EXAMPLE_CUSTOMER_ID
from payment import jsonio
from tests.support import new_order, payment_body

# Large against the few milliseconds of the payment's own work, so that the
# one-after-the-other time (2·D + work) stays clear of the ceiling even on a
# loaded machine, and the ceiling leaves the payment half a D plus 150 ms.
LATENCY_S = 0.5
CEILING_S = 1.5 * LATENCY_S + 0.15
# The upstream calls' overlap and their order of judgement come before the
# database; the payment's own writes are those of test_pay.py, on both routes.
pytestmark = pytest.mark.route_independent


def test_both_upstreams_late_cost_one_latency_not_two(client, sandbox, database):
    order_id = new_order(sandbox)
    reservation_id = str(uuid.uuid4())
    sandbox.put_reservation(reservation_id)
    sandbox.latency(int(LATENCY_S * 1000))

    started = time.monotonic()
    reply = client.pay(payment_body(order_id, reservationId=reservation_id))
    elapsed = time.monotonic() - started

    assert reply.status == 200, reply.text
    assert sorted(sandbox.calls()) == sorted([f"/orders/{order_id}", f"/reservations/{reservation_id}"])
    assert LATENCY_S <= elapsed < CEILING_S, f"{elapsed:.3f}s with both upstreams {LATENCY_S}s late"
    assert [row["status"] for row in database.rows()] == ["succeeded"]


def order_document(order_id: str, **changes) -> str:
    return jsonio.dumps({"id": order_id, "customerId": EXAMPLE_CUSTOMER_ID, "totalAmount": 150,
                         "currency": "USD", "status": "pending", **changes})


# (how the order is bad, its script, the status and message answered)
BAD_ORDERS = [
    ("not found", lambda order_id: {"status": 404, "body": "{}"}, 404, "Order not found"),
    ("another customer", lambda order_id: {"body": order_document(order_id, customerId=str(uuid.uuid4()))},
     403, "Unauthorized: Customer does not own this order"),
    ("cancelled", lambda order_id: {"body": order_document(order_id, status="cancelled")},
     400, "Order validation failed: order is cancelled"),
    ("another amount", lambda order_id: {"body": order_document(order_id, totalAmount=99)},
     400, "Order validation failed: amount 150.00 does not match the order total 99.00"),
    ("ordering service fault", lambda order_id: {"status": 500, "body": '{"error": "boom"}'},
     502, "Payment processing error: ordering service returned an invalid response"),
]
# The reservation is bad in its own way each time: unknown, another
# customer's, or its service failing.
BAD_RESERVATIONS = ["unknown", "another customer", "reservation service fault"]


@pytest.mark.parametrize("bad_reservation", BAD_RESERVATIONS)
@pytest.mark.parametrize("how, script, status, message", BAD_ORDERS, ids=[o[0] for o in BAD_ORDERS])
def test_a_bad_order_is_answered_before_a_bad_reservation_that_came_back_first(
        client, sandbox, nothing_happened, how, script, status, message, bad_reservation):
    order_id = new_order(sandbox)
    reservation_id = str(uuid.uuid4())
    if bad_reservation == "another customer":
        sandbox.put_reservation(reservation_id, customer_id=str(uuid.uuid4()))
    elif bad_reservation == "reservation service fault":
        sandbox.script(f"/reservations/{reservation_id}", status=503, body="unavailable")
    # The reservation answers at once; the order 300 ms later.
    sandbox.script(f"/orders/{order_id}", delay_ms=300, **script(order_id))

    reply = client.pay(payment_body(order_id, reservationId=reservation_id))

    assert (reply.status, reply.body) == (status, {"success": False, "errorMessage": message, "payment": None})
    assert f"/reservations/{reservation_id}" in sandbox.calls()
