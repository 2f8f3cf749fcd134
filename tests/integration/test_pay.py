"""POST /payments through the real app, database, broker and sandbox upstream:
success, replay, declines and the in-flight guard."""

from __future__ import annotations

import re
import uuid
from decimal import Decimal

from devstack.sandbox import EXAMPLE_CUSTOMER_ID, EXAMPLE_ORDER_ID, EXAMPLE_RESERVATION_ID
from tests.contract_examples import CONTRACT_EXAMPLES
from tests.expected_events import assert_event_of
from tests.support import NO_EVENTS, new_order, payment_body

CONTRACT_REQUEST = CONTRACT_EXAMPLES["request"][1]
UTC_MS = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")


def test_contract_example_succeeds_with_event(client, database, events):
    reply = client.pay(CONTRACT_REQUEST)

    assert reply.status == 200
    assert "Idempotent-Replayed" not in reply.headers
    assert reply.body["success"] is True and reply.body["errorMessage"] is None
    payment = reply.body["payment"]
    transaction_id = payment["simulatedResponse"].removeprefix("Success - TransactionId: ")
    assert re.fullmatch(r"txn_[0-9a-f]{16}", transaction_id)
    assert payment == {
        "id": payment["id"],
        "orderId": EXAMPLE_ORDER_ID,
        "customerId": EXAMPLE_CUSTOMER_ID,
        "reservationId": EXAMPLE_RESERVATION_ID,
        "amount": Decimal("150.00"),
        "currency": "USD",
        "paymentMethod": "credit_card",
        "status": "succeeded",
        "errorCode": None,
        "errorMessage": None,
        "failureReason": None,
        "createdAt": payment["createdAt"],
        "processedAt": payment["processedAt"],
        "isSimulated": True,
        "simulatedResponse": f"Success - TransactionId: {transaction_id}",
    }
    assert '"amount":150.00,' in reply.text
    assert UTC_MS.match(payment["createdAt"]) and UTC_MS.match(payment["processedAt"])
    assert payment["createdAt"] <= payment["processedAt"]

    [row] = database.rows()
    assert str(row["id"]) == payment["id"]
    assert row["status"] == "succeeded" and row["transaction_id"] == transaction_id
    [outbox] = database.outbox_once_sent()
    assert outbox["sent_at"] is not None

    published = events.all()
    assert published["payment-failed"] == []
    [event] = published["payment-succeeded"]
    assert_event_of(event, database, payment["id"], CONTRACT_REQUEST)
    # The event says what the answer said.
    assert (event["value"]["transactionId"], event["value"]["processedAt"]) == (
        transaction_id, payment["processedAt"])
    assert '"amount":150.00,' in event["raw"]


def test_defaults_apply_and_amount_takes_currency_decimals(client, sandbox, database, events):
    order_id = new_order(sandbox, total=150)
    body = {"orderId": order_id, "customerId": EXAMPLE_CUSTOMER_ID, "amount": 150}
    reply = client.pay(body)
    assert reply.status == 200
    assert reply.body["payment"]["currency"] == "USD"
    assert reply.body["payment"]["paymentMethod"] == "credit_card"
    assert reply.body["payment"]["reservationId"] is None
    assert '"amount":150.00,' in reply.text
    [event] = events.read("payment-succeeded")
    assert_event_of(event, database, reply.body["payment"]["id"], body, amount="150.00")


def test_zero_decimal_currency(client, sandbox, database, events):
    order_id = new_order(sandbox, total=15000, currency="JPY")
    body = payment_body(order_id, amount="15000", currency="JPY")
    reply = client.pay(body)
    assert reply.status == 200
    assert '"amount":15000,' in reply.text
    [event] = events.read("payment-succeeded")
    assert_event_of(event, database, reply.body["payment"]["id"], body)
    assert '"amount":15000,' in event["raw"]


def test_replay_returns_the_same_payment_without_second_charge(client, database, events, sandbox):
    first = client.pay(CONTRACT_REQUEST)
    calls_after_first = len(sandbox.calls())
    second = client.pay(CONTRACT_REQUEST)

    assert second.status == 200
    assert second.headers["Idempotent-Replayed"] == "true"
    assert second.body == first.body
    assert len(database.rows()) == 1
    assert len(database.rows("outbox")) == 1
    [event] = events.read("payment-succeeded")
    assert_event_of(event, database, first.body["payment"]["id"], CONTRACT_REQUEST)
    # A replay is answered from the database, before any upstream call.
    assert len(sandbox.calls()) == calls_after_first


def test_replay_to_another_customer_is_refused(client, database):
    client.pay(CONTRACT_REQUEST)
    reply = client.pay({**CONTRACT_REQUEST, "customerId": str(uuid.uuid4())})
    assert reply.status == 403
    assert reply.body == {"success": False, "errorMessage": "Unauthorized: Customer does not own this order",
                          "payment": None}
    assert len(database.rows()) == 1


DECLINES = [
    ("150.13", "CARD_DECLINED", "Card declined", "Issuing bank rejected the transaction"),
    ("150.66", "INSUFFICIENT_FUNDS", "Card declined due to insufficient funds",
     "The payment gateway returned error code 51"),
    ("150.99", "PROCESSOR_TIMEOUT", "Payment processor timed out",
     "The payment processor did not answer in time"),
    ("999999.99", "AMOUNT_TOO_LARGE", "Amount exceeds the gateway limit",
     "The payment gateway accepts amounts below 999999.99"),
]


def test_each_decline_is_a_402_with_failed_payment_and_event(client, sandbox, database, events):
    sent = []
    for amount, code, message, reason in DECLINES:
        order_id = new_order(sandbox, total=float(amount))
        body = payment_body(order_id, amount=amount)
        reply = client.pay(body)

        assert reply.status == 402, amount
        assert reply.body["success"] is False
        assert reply.body["errorMessage"] == f"Payment failed: {message}"
        payment = reply.body["payment"]
        assert payment["status"] == "failed"
        assert (payment["errorCode"], payment["errorMessage"], payment["failureReason"]) == (code, message, reason)
        assert payment["simulatedResponse"] == f"Declined - ErrorCode: {code}"
        assert payment["amount"] == Decimal(amount)

        [row] = database.rows(where="order_id = %s", params=(order_id,))
        assert row["status"] == "failed" and row["error_code"] == code
        sent.append((payment["id"], body, (code, message, reason)))

    failed = events.read("payment-failed")
    assert events.read("payment-succeeded") == []
    assert len(failed) == len(DECLINES)
    for event, (payment_id, body, failure) in zip(failed, sent):
        assert_event_of(event, database, payment_id, body, failure=failure)


def test_a_failed_attempt_does_not_block_a_new_one(client, sandbox, database, events):
    order_id = new_order(sandbox, total=150.13)
    declined_reply = client.pay(payment_body(order_id, amount="150.13"))
    assert declined_reply.status == 402
    sandbox.put_order(order_id, total=150.00)

    body = payment_body(order_id, amount="150.00")
    reply = client.pay(body)

    assert reply.status == 200
    assert [r["status"] for r in database.rows()] == ["failed", "succeeded"]
    [declined] = events.read("payment-failed")
    assert_event_of(declined, database, declined_reply.body["payment"]["id"], payment_body(order_id, amount="150.13"),
                    failure=DECLINES[0][1:])
    [paid] = events.read("payment-succeeded")
    assert_event_of(paid, database, reply.body["payment"]["id"], body)


def test_a_payment_in_flight_gets_409_and_no_charge(client, sandbox, database, events):
    order_id = new_order(sandbox)
    # Another worker's attempt, pending between its insert and its outcome.
    database.execute(
        "INSERT INTO bc_payment.payments (id, order_id, customer_id, amount, currency, payment_method,"
        " status, is_simulated) VALUES (%s, %s, %s, 150.00, 'USD', 'credit_card', 'pending', true)",
        (uuid.uuid4(), order_id, EXAMPLE_CUSTOMER_ID))

    reply = client.pay(payment_body(order_id))

    assert reply.status == 409
    assert reply.body == {"success": False, "payment": None,
                          "errorMessage": "A payment for this order is already in progress"}
    assert [r["status"] for r in database.rows()] == ["pending"]
    assert database.rows("outbox") == []
    assert events.all() == NO_EVENTS


def test_the_database_guard_allows_one_live_payment_per_order(database):
    """The last word is the unique index, whatever the Python code does."""
    import psycopg
    import pytest

    order_id = uuid.uuid4()
    insert = ("INSERT INTO bc_payment.payments (id, order_id, customer_id, amount, currency, payment_method,"
              " status, processed_at, is_simulated) VALUES (%s, %s, %s, 1, 'USD', 'paypal', %s, %s, true)")
    database.execute(insert, (uuid.uuid4(), order_id, EXAMPLE_CUSTOMER_ID, "succeeded", "2026-01-01Z"))
    database.execute(insert, (uuid.uuid4(), order_id, EXAMPLE_CUSTOMER_ID, "failed", "2026-01-01Z"))
    with pytest.raises(psycopg.errors.UniqueViolation):
        database.execute(insert, (uuid.uuid4(), order_id, EXAMPLE_CUSTOMER_ID, "succeeded", "2026-01-02Z"))
    with pytest.raises(psycopg.errors.UniqueViolation):
        database.execute(insert, (uuid.uuid4(), order_id, EXAMPLE_CUSTOMER_ID, "pending", None))
