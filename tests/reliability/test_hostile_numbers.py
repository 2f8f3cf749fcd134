"""Numbers that cannot be held exactly, from the client and from the
upstreams. A client's is a 400 that says so; an upstream's is a 502 that names
the upstream. Nothing is rounded, nothing is a 500, and a refused request
writes and publishes nothing."""

from __future__ import annotations

import uuid

import pytest

from devstack.sandbox import EXAMPLE_CUSTOMER_ID, EXAMPLE_ORDER_ID
from payment import jsonio
from tests.support import new_order, payment_body

# Number handling: the same whichever way the service reaches PostgreSQL.
pytestmark = pytest.mark.route_independent

DIGITS = jsonio.MAX_NUMBER_DIGITS
HUGE = "1" * 4301  # one past Python's integer string-conversion limit
CUSTOMER = f'"customerId": "{EXAMPLE_CUSTOMER_ID}"'
ORDER = f'"orderId": "{EXAMPLE_ORDER_ID}"'   # the sandbox's example order: 150.00 USD


def refused(reply, status=400):
    assert reply.status == status, (reply.status, reply.text[:300])
    assert reply.body["success"] is False and reply.body["payment"] is None
    assert len(reply.body["errorMessage"]) < 200, reply.body["errorMessage"][:300]
    return reply.body["errorMessage"]


TOO_MANY = f"Invalid request: number has more than {DIGITS} digits and cannot be held exactly"
OUT_OF_RANGE = "Invalid request: number is out of range and cannot be held exactly"
REQUESTS = {
    "4,301-digit amount": f'{{{ORDER}, {CUSTOMER}, "amount": {HUGE}}}',
    "4,301-digit negative amount": f'{{{ORDER}, {CUSTOMER}, "amount": -{HUGE}}}',
    "4,301-digit customerId": f'{{{ORDER}, "customerId": {HUGE}, "amount": 150.00}}',
    "4,301-digit unknown field": f'{{{ORDER}, {CUSTOMER}, "amount": 150.00, "tip": {HUGE}}}',
    "4,301-digit number nested in an unknown field": f'{{{ORDER}, {CUSTOMER}, "amount": 150.00, "x": [{{"y": {HUGE}}}]}}',
    "integer one past the digit limit": f'{{{ORDER}, {CUSTOMER}, "amount": {"1" * (DIGITS + 1)}}}',
    "decimal one past the digit limit": f'{{{ORDER}, {CUSTOMER}, "amount": 150.{"0" * (DIGITS - 3)}1}}',
    "4,301-digit fraction": f'{{{ORDER}, {CUSTOMER}, "amount": 150.{"0" * 4300}1}}',
}
OUT_OF_RANGE_REQUESTS = {
    "exponent past what Decimal can build": f'{{{ORDER}, {CUSTOMER}, "amount": 1e9999999999999999999999}}',
    "exponent past the held range": f'{{{ORDER}, {CUSTOMER}, "amount": 1e-999999999}}',
}


@pytest.mark.parametrize("name", list(REQUESTS))
def test_numbers_past_the_digit_limit_are_400_wherever_they_are(client, nothing_happened, name):
    assert refused(client.pay(REQUESTS[name].encode())) == TOO_MANY


@pytest.mark.parametrize("name", list(OUT_OF_RANGE_REQUESTS))
def test_numbers_out_of_range_are_400(client, nothing_happened, name):
    assert refused(client.pay(OUT_OF_RANGE_REQUESTS[name].encode())) == OUT_OF_RANGE


@pytest.mark.parametrize("amount", [
    "149." + "9" * 30,                      # just under the order's 150.00
    "150." + "0" * 29 + "1",                # just over it
    "149.99999999999999999999999999999",    # as measured
    "150.000000000000000000000000000001",
])
def test_thirty_decimals_either_side_of_the_order_total_are_refused_not_rounded(client, nothing_happened, amount):
    message = refused(client.pay(f'{{{ORDER}, {CUSTOMER}, "amount": {amount}}}'.encode()))
    assert message == "Invalid request: amount has more decimals than USD allows (2)"


def test_trailing_zeros_are_the_same_amount(client, sandbox, database):
    reply = client.pay(f'{{{ORDER}, {CUSTOMER}, "amount": 150.{"0" * 30}}}'.encode())
    assert reply.status == 200, reply.text
    assert '"amount":150.00,' in reply.text
    assert [row["amount"] for row in database.rows()] == [150]


def order_document(order_id: str, total: str, *, status: str = '"pending"', currency: str = '"USD"',
                   extra: str = "") -> str:
    """The order as raw JSON text: numbers exactly as written, none through a float."""
    return (f'{{"id": "{order_id}", "customerId": "{EXAMPLE_CUSTOMER_ID}", "totalAmount": {total}, '
            f'"currency": {currency}, "status": {status}{extra}}}')


BAD_ORDER = "Payment processing error: ordering service returned an invalid response"
BAD_RESERVATION = "Payment processing error: reservation service returned an invalid response"
ORDERS = {
    # A total that cannot be held: the ordering service's fault, a 502.
    "4,301-digit totalAmount": (dict(total=HUGE), 502, BAD_ORDER),
    "totalAmount one past the digit limit": (dict(total="150." + "0" * (DIGITS - 3) + "1"), 502, BAD_ORDER),
    "totalAmount with an exponent Decimal cannot build": (dict(total="1e9999999999999999999999"), 502, BAD_ORDER),
    "4,301-digit number in an unknown field": (dict(total="150.00", extra=f', "version": {HUGE}'), 502, BAD_ORDER),
    "4,301-digit status": (dict(total="150.00", status=HUGE), 502, BAD_ORDER),
    # A total that can be held, exactly, and differs: the client's amount is wrong, a 400.
    "totalAmount 1E+30": (dict(total="1E+30"), 400,
                          "Order validation failed: amount 150.00 does not match the order total "
                          "1000000000000000000000000000000.00"),
    "totalAmount 1E+999999": (dict(total="1E+999999"), 400,
                              "Order validation failed: amount 150.00 does not match the order total 1E+999999"),
    "totalAmount with 30 decimals": (dict(total="150." + "0" * 29 + "1"), 400,
                                     "Order validation failed: amount 150.00 does not match the order total "
                                     "150.000000000000000000000000000001"),
    "totalAmount with 3 decimals": (dict(total="150.004"), 400,
                                    "Order validation failed: amount 150.00 does not match the order total 150.004"),
}


@pytest.mark.parametrize("name", list(ORDERS))
def test_order_numbers_that_cannot_be_held_are_502_and_others_are_compared_exactly(
        client, sandbox, nothing_happened, name):
    fields, status, message = ORDERS[name]
    order_id = str(uuid.uuid4())
    sandbox.script(f"/orders/{order_id}", body=order_document(order_id, **fields))
    assert refused(client.pay(payment_body(order_id)), status) == message


def test_reservation_numbers_that_cannot_be_held_are_502(client, sandbox, nothing_happened):
    order_id = new_order(sandbox)
    reservation_id = str(uuid.uuid4())
    sandbox.script(f"/reservations/{reservation_id}", body=(
        f'{{"id": "{reservation_id}", "customerId": "{EXAMPLE_CUSTOMER_ID}", "status": "active", '
        f'"expiresAt": "2099-01-01T00:00:00Z", "seats": [{HUGE}]}}'))
    assert refused(client.pay(payment_body(order_id, reservationId=reservation_id)), 502) == BAD_RESERVATION


LONG = "Z" * 6000


@pytest.mark.parametrize("where", ["order currency", "reservation status"])
def test_upstream_text_in_a_message_is_cut_short(client, sandbox, nothing_happened, where):
    order_id = str(uuid.uuid4())
    reservation_id = str(uuid.uuid4())
    sandbox.script(f"/orders/{order_id}", body=order_document(
        order_id, "150.00", currency=f'"{LONG}"' if where == "order currency" else '"USD"'))
    sandbox.put_reservation(reservation_id, status=LONG if where == "reservation status" else "active")
    message = refused(client.pay(payment_body(order_id, reservationId=reservation_id)))
    start = {"order currency": "Order validation failed: currency USD does not match the order currency ZZZ",
             "reservation status": "Reservation validation failed: reservation is zzz"}[where]
    assert message.startswith(start) and message.endswith("…"), message[:300]

