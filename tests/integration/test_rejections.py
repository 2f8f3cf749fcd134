"""Every refusal of POST /payments: the status, the exact envelope, and
nothing written, nothing published, nothing charged."""

from __future__ import annotations

import uuid

import pytest

from payment.sandbox import EXAMPLE_CUSTOMER_ID
from tests.support import new_order, payment_body

# Validation: the same whichever way the service reaches PostgreSQL.
pytestmark = pytest.mark.route_independent




def refused(message: str) -> dict:
    return {"success": False, "errorMessage": message, "payment": None}


ORDER = "7c9e6679-7425-40de-944b-e07fc1f90ae7"
GOOD = {"orderId": ORDER, "customerId": EXAMPLE_CUSTOMER_ID, "amount": 150}
BAD_BODIES = [
    ({k: v for k, v in GOOD.items() if k != "orderId"}, "orderId is required"),
    ({k: v for k, v in GOOD.items() if k != "customerId"}, "customerId is required"),
    ({k: v for k, v in GOOD.items() if k != "amount"}, "amount is required"),
    ({**GOOD, "orderId": "not-a-guid"}, "orderId must be a GUID"),
    ({**GOOD, "customerId": "7c9e6679742540de944be07fc1f90ae7"}, "customerId must be a GUID"),
    ({**GOOD, "reservationId": "123"}, "reservationId must be a GUID or null"),
    ({**GOOD, "orderId": 42}, "orderId must be a GUID"),
    ({**GOOD, "amount": 0}, "amount must be greater than zero"),
    ({**GOOD, "amount": -5}, "amount must be greater than zero"),
    ({**GOOD, "amount": "150.00"}, "amount must be a number"),
    ({**GOOD, "amount": True}, "amount must be a number"),
    ({**GOOD, "currency": "XYZ"}, "currency must be a three-letter ISO 4217 code, such as USD, EUR or GBP"),
    ({**GOOD, "currency": "usd"}, "currency must be a three-letter ISO 4217 code, such as USD, EUR or GBP"),
    ({**GOOD, "paymentMethod": "cash"},
     "paymentMethod must be one of credit_card, debit_card, paypal, apple_pay, google_pay"),
    ({**GOOD, "ammount": 150}, "unknown field 'ammount'"),
]


@pytest.mark.parametrize("body, why", BAD_BODIES, ids=[why for _, why in BAD_BODIES])
def test_schema_violations_are_400(client, nothing_happened, body, why):
    reply = client.pay(body)
    assert reply.status == 400
    assert reply.body == refused(f"Invalid request: {why}")


@pytest.mark.parametrize("raw, why", [
    (b'{"orderId": "7c9e6679-7425-40de-944b-e07fc1f90ae7", "customerId": '
     b'"a8098c1a-f86e-11da-bd1a-00112444be1e", "amount": 150.001}', "amount has more decimals than USD allows (2)"),
    (b'{"orderId": "7c9e6679-7425-40de-944b-e07fc1f90ae7", "customerId": '
     b'"a8098c1a-f86e-11da-bd1a-00112444be1e", "amount": 150.5, "currency": "JPY"}',
     "amount has more decimals than JPY allows (0)"),
    (b'{"orderId": "7c9e6679-7425-40de-944b-e07fc1f90ae7", "customerId": '
     b'"a8098c1a-f86e-11da-bd1a-00112444be1e", "amount": 1e309}', "amount is too large"),
    (b'{"orderId": "7c9e6679-7425-40de-944b-e07fc1f90ae7", "customerId": '
     b'"a8098c1a-f86e-11da-bd1a-00112444be1e", "amount": NaN}', "NaN is not a JSON number"),
    (b'{"orderId": "7c9e6679-7425-40de-944b-e07fc1f90ae7", "customerId": '
     b'"a8098c1a-f86e-11da-bd1a-00112444be1e", "amount": 1, "amount": 150}', "duplicate key 'amount'"),
    (b'{"orderId": "7c9e6679-7425-40de-944b-e07fc1f90ae7", "customerId": '
     b'"a8098c1a-f86e-11da-bd1a-00112444be1e", "amount": -0}', "amount must be greater than zero"),
    (b'[1, 2]', "body must be a JSON object"),
    (b'', "body is not valid JSON (Expecting value at position 0)"),
    (b'{"orderId": ', "body is not valid JSON (Expecting value at position 12)"),
    (b'{"orderId": "\xff"}', "body is not valid UTF-8"),
    (b'[' * 100_00 + b']' * 100_00, "body is nested too deeply"),
])
def test_unreadable_bodies_are_400(client, nothing_happened, raw, why):
    reply = client.pay(raw)
    assert reply.status == 400
    assert reply.body == refused(f"Invalid request: {why}")


def test_wrong_content_type_is_415(client, nothing_happened):
    reply = client.pay(payment_body(ORDER), content_type="text/plain")
    assert reply.status == 415
    assert reply.body == refused("Invalid request: Content-Type must be application/json")


def test_body_over_64_kib_is_413(client, nothing_happened):
    reply = client.pay(b'{"pad": "' + b"x" * 65536 + b'"}')
    assert reply.status == 413
    assert reply.body == refused("Invalid request: body is larger than 64 KiB")


def test_unknown_order_is_404(client, nothing_happened):
    reply = client.pay(payment_body(str(uuid.uuid4())))
    assert reply.status == 404
    assert reply.body == refused("Order not found")


def test_another_customers_order_is_403(client, sandbox, nothing_happened):
    order_id = new_order(sandbox, customer_id=str(uuid.uuid4()))
    reply = client.pay(payment_body(order_id))
    assert reply.status == 403
    assert reply.body == refused("Unauthorized: Customer does not own this order")


@pytest.mark.parametrize("order, amount, currency, why", [
    ({"total": 150.00}, "149.99", "USD", "amount 149.99 does not match the order total 150.00"),
    ({"total": 150.00, "currency": "EUR"}, "150.00", "USD", "currency USD does not match the order currency EUR"),
    ({"status": "cancelled"}, "150.00", "USD", "order is cancelled"),
    ({"status": "expired"}, "150.00", "USD", "order is expired"),
    ({"status": "refunded"}, "150.00", "USD", "order is refunded"),
])
def test_order_that_does_not_match_is_400(client, sandbox, nothing_happened, order, amount, currency, why):
    order_id = new_order(sandbox, **order)
    reply = client.pay(payment_body(order_id, amount=amount, currency=currency))
    assert reply.status == 400
    assert reply.body == refused(f"Order validation failed: {why}")


@pytest.mark.parametrize("reservation, why", [
    (None, "reservation not found"),
    ({"customer_id": str(uuid.uuid4())}, "reservation does not belong to the customer"),
    ({"status": "released"}, "reservation is released"),
    ({"expires_at": "2020-01-01T00:00:00Z"}, "reservation has expired"),
])
def test_reservation_that_is_not_valid_is_400(client, sandbox, nothing_happened, reservation, why):
    order_id = new_order(sandbox)
    reservation_id = str(uuid.uuid4())
    if reservation is not None:
        sandbox.put_reservation(reservation_id, **reservation)
    reply = client.pay(payment_body(order_id, reservationId=reservation_id))
    assert reply.status == 400
    assert reply.body == refused(f"Reservation validation failed: {why}")


def test_unknown_route_and_method_use_the_envelope(client):
    reply = client.app.get("/nowhere", expect_errors=True)
    assert reply.status_int == 404 and reply.json["success"] is False and reply.json["payment"] is None
    # GET /payments lists an order's payments; DELETE is not a method it has.
    reply = client.app.delete("/payments", expect_errors=True)
    assert reply.status_int == 405 and reply.json["success"] is False
    assert set(reply.headers["Allow"].replace(" ", "").split(",")) >= {"GET", "POST"}
