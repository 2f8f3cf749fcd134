"""Refunds through the real app, PostgreSQL (directly and through PgBouncer),
broker, sandbox and the simulated processor's own ledger: what each answer
says, what is written, refunded and published, and the over-refund guard
under concurrent refunds against the real database."""

from __future__ import annotations

import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal

import pytest

from payment import refunds
from payment.db.pool import open_pool
from payment.db.refund_store import RefundStore
from payment.model import RefundRequest
from tests.expected_events import REFUND_DECLINED, assert_refund_event_of
from tests.support import DB_ROUTE_SETTING, new_order, payment_body

LOOKUP = "refund-lookup.schema.json"
LIST = "refund-list.schema.json"
REFUND_ERRORS = "refund-response.schema.json"


def refused(message: str) -> dict:
    return {"success": False, "errorMessage": message, "refund": None}


def a_payment(client, sandbox, amount: str = "150.00", **order) -> dict:
    """A payment taken through the service, as it answered it."""
    reply = client.pay(payment_body(new_order(sandbox, total=float(amount), **order), amount=amount,
                                    currency=order.get("currency", "USD")))
    assert reply.status in (200, 402), reply.body
    return reply.body["payment"]


def refund_events(events) -> dict[str, list[dict]]:
    return {topic: events.read(topic) for topic in ("payment-refunded", "payment-refund-failed")}


def test_part_then_the_rest_is_refunded_and_each_event_says_the_total(client, sandbox, database, events):
    payment = a_payment(client, sandbox)

    part = client.refund(payment["id"], {"amount": Decimal("50.00"), "reason": "event_cancelled"}, key="part")
    rest = client.refund(payment["id"], {}, key="rest")

    assert (part.status, rest.status) == (200, 200)
    assert "Idempotent-Replayed" not in part.headers
    [first, second] = database.refunds(payment["id"])
    for reply, row, amount, reason in ((part, first, "50.00", "event_cancelled"),
                                       (rest, second, "100.00", "requested_by_customer")):
        assert reply.body == {"success": True, "errorMessage": None, "refund": {
            "id": str(row["id"]), "paymentId": payment["id"], "orderId": payment["orderId"],
            "customerId": payment["customerId"], "amount": Decimal(amount), "currency": "USD",
            "reason": reason, "status": "succeeded", "errorCode": None, "errorMessage": None,
            "transactionId": row["transaction_id"], "createdAt": reply.body["refund"]["createdAt"],
            "processedAt": reply.body["refund"]["processedAt"], "isSimulated": True}}
        assert f'"amount":{amount},' in reply.text  # written with the currency's decimals
    # The processor's own ledger: one refund each, of that amount, under the refund's id.
    ledger = database.gateway_refunds(payment["id"])
    assert [(r["refund_id"], r["amount"], r["succeeded"], r["transaction_id"]) for r in ledger] == [
        (first["id"], Decimal("50.0000"), True, first["transaction_id"]),
        (second["id"], Decimal("100.0000"), True, second["transaction_id"])]

    published = refund_events(events)
    assert published["payment-refund-failed"] == []
    [one, two] = published["payment-refunded"]
    assert_refund_event_of(one, database, first["id"], payment, amount="50.00", reason="event_cancelled",
                           amount_refunded="50.00")
    assert_refund_event_of(two, database, second["id"], payment, amount="100.00", amount_refunded="150.00")
    # The payment itself is as it was: its object and events do not change.
    assert client.get(f"/payments/{payment['id']}", schema="payment-lookup.schema.json").body["payment"] == payment


def test_reading_a_payments_refunds(client, sandbox, database):
    payment = a_payment(client, sandbox)
    other = a_payment(client, sandbox)
    assert client.get(f"/payments/{payment['id']}/refunds", schema=LIST).body == {
        "success": True, "errorMessage": None, "refunds": []}
    made = [client.refund(payment["id"], {"amount": Decimal(a)}, key=f"k{a}").body["refund"]
            for a in ("1.00", "2.77", "3.00")]
    client.refund(other["id"], {"amount": Decimal("4.00")}, key="other")

    listed = client.get(f"/payments/{payment['id']}/refunds", schema=LIST)
    assert listed.status == 200 and listed.body["refunds"] == made[::-1]  # newest first
    for refund in made:
        one = client.get(f"/payments/{payment['id']}/refunds/{refund['id']}", schema=LOOKUP)
        assert one.status == 200 and one.body == {"success": True, "errorMessage": None, "refund": refund}

    # A refund is found under its own payment only.
    elsewhere = client.get(f"/payments/{other['id']}/refunds/{made[0]['id']}", error_schema=REFUND_ERRORS)
    assert (elsewhere.status, elsewhere.body) == (404, refused("Refund not found"))
    for path, status, message in (
            (f"/payments/{uuid.uuid4()}/refunds", 404, "Payment not found"),
            (f"/payments/{uuid.uuid4()}/refunds/{made[0]['id']}", 404, "Payment not found"),
            (f"/payments/{payment['id']}/refunds/{uuid.uuid4()}", 404, "Refund not found"),
            ("/payments/not-a-guid/refunds", 400, "Invalid request: paymentId must be a GUID"),
            (f"/payments/{payment['id']}/refunds/42", 400, "Invalid request: refundId must be a GUID")):
        answer = client.get(path, error_schema=REFUND_ERRORS)
        assert (answer.status, answer.body) == (status, refused(message)), path


def test_a_refund_the_gateway_refuses_is_402_recorded_published_and_frees_its_amount(
        client, sandbox, database, events):
    payment = a_payment(client, sandbox)

    declined = client.refund(payment["id"], {"amount": Decimal("20.77"), "reason": "duplicate"}, key="d")

    assert declined.status == 402
    [row] = database.refunds(payment["id"])
    assert declined.body == {
        "success": False, "errorMessage": "Refund failed: Refund declined by the payment processor",
        "refund": {**declined.body["refund"], "id": str(row["id"]), "status": "failed",
                   "errorCode": "REFUND_DECLINED", "errorMessage": "Refund declined by the payment processor",
                   "transactionId": None, "amount": Decimal("20.77"), "reason": "duplicate"}}
    assert declined.body["refund"]["processedAt"] is not None
    [ledger] = database.gateway_refunds(payment["id"])
    assert (ledger["refund_id"], ledger["succeeded"], ledger["error_code"]) == (row["id"], False, "REFUND_DECLINED")
    [event] = refund_events(events)["payment-refund-failed"]
    assert_refund_event_of(event, database, row["id"], payment, amount="20.77", reason="duplicate",
                           failure=REFUND_DECLINED)

    # Nothing was given back: the whole payment is still refundable.
    whole = client.refund(payment["id"], {"amount": Decimal("150.00")}, key="whole")
    assert whole.status == 200 and whole.body["refund"]["amount"] == Decimal("150.00")


def test_the_same_key_and_body_gets_the_first_answer_again(client, sandbox, database, events):
    payment = a_payment(client, sandbox)
    first = client.refund(payment["id"], {"amount": Decimal("10.00")}, key="same")
    declined = client.refund(payment["id"], {"amount": Decimal("1.77")}, key="declined")

    again = client.refund(payment["id"], {"amount": 10}, key="same")  # the same amount, written otherwise
    declined_again = client.refund(payment["id"], {"amount": Decimal("1.77")}, key="declined")

    assert (again.status, again.text) == (200, first.text)
    assert (declined_again.status, declined_again.text) == (402, declined.text)
    assert again.headers["Idempotent-Replayed"] == declined_again.headers["Idempotent-Replayed"] == "true"
    assert len(database.refunds(payment["id"])) == len(database.gateway_refunds(payment["id"])) == 2
    published = refund_events(events)
    assert (len(published["payment-refunded"]), len(published["payment-refund-failed"])) == (1, 1)


def test_a_key_used_with_another_body_or_payment_is_422_and_nothing_is_refunded(client, sandbox, database):
    payment, other = a_payment(client, sandbox), a_payment(client, sandbox)
    assert client.refund(payment["id"], {"amount": Decimal("10.00")}, key="taken").status == 200

    for target, body in ((payment, {"amount": Decimal("10.01")}), (payment, {}),
                         (payment, {"amount": Decimal("10.00"), "reason": "fraudulent"}),
                         (other, {"amount": Decimal("10.00")})):
        reply = client.refund(target["id"], body, key="taken")
        assert (reply.status, reply.body) == (422, refused(
            "Idempotency-Key was already used with another body or for another payment")), body
    assert len(database.refunds(payment["id"])) == 1 and database.refunds(other["id"]) == []
    assert len(database.rows("simulator_refunds")) == 1


def test_refusals_write_refund_and_publish_nothing(client, sandbox, database, events):
    payment = a_payment(client, sandbox)
    declined_payment = a_payment(client, sandbox, amount="150.13")
    assert declined_payment["status"] == "failed"
    outbox_before = database.outbox_once_sent()  # the payments' own events, marked

    for payment_id, body, key, status, message in (
            (str(uuid.uuid4()), {}, "a", 404, "Payment not found"),
            (declined_payment["id"], {}, "b", 409, "Refund not possible: the payment is failed"),
            (payment["id"], {"amount": Decimal("150.01")}, "c", 400,
             "Refund validation failed: amount 150.01 exceeds the refundable amount 150.00"),
            (payment["id"], {"amount": Decimal("1.001")}, "d", 400,
             "Refund validation failed: amount has more decimals than USD allows (2)"),
            (payment["id"], {"amount": 0}, "e", 400, "Invalid request: amount must be greater than zero"),
            (payment["id"], {"reason": "changed_mind"}, "f", 400, "Invalid request: reason must be one of "
             "requested_by_customer, event_cancelled, duplicate, fraudulent"),
            (payment["id"], {"amount": Decimal("1.00"), "note": "x"}, "g", 400,
             "Invalid request: unknown field 'note'"),
            (payment["id"], {}, None, 400, "Invalid request: the Idempotency-Key header is required"),
            (payment["id"], {}, "x" * 256, 400,
             "Invalid request: Idempotency-Key must be 1 to 255 printable ASCII characters"),
            ("42", {}, "h", 400, "Invalid request: paymentId must be a GUID")):
        reply = client.refund(payment_id, body, key=key)
        assert (reply.status, reply.body) == (status, refused(message)), message
    assert database.rows("refunds") == [] and database.rows("simulator_refunds") == []
    assert database.rows("outbox") == outbox_before
    assert refund_events(events) == {"payment-refunded": [], "payment-refund-failed": []}

    # The same key refused with 400 is not used up: no refund was made with it.
    assert client.refund(payment["id"], {"amount": Decimal("150.00")}, key="c").status == 200


def test_an_amount_in_a_currency_without_decimals(client, sandbox, database, events):
    payment = a_payment(client, sandbox, amount="15000", currency="JPY")
    reply = client.refund(payment["id"], {"amount": 5000}, key="yen")
    assert reply.status == 200 and '"amount":5000,' in reply.text
    [event] = refund_events(events)["payment-refunded"]
    assert event["raw"].count('"amount":5000,') == 1 and '"amountRefunded":5000,' in event["raw"]
    assert client.refund(payment["id"], {"amount": Decimal("0.5")}, key="half-yen").body["errorMessage"] == (
        "Refund validation failed: amount has more decimals than JPY allows (0)")


# --- the guard, against the real database ----------------------------------------


@pytest.fixture
def refund_store(database_url, db_route):
    """A RefundStore on a pool of its own, big enough for every thread at once."""
    pool = open_pool(database_url, min_size=1, max_size=20, timeout=20, route=DB_ROUTE_SETTING[db_route])
    try:
        pool.wait(10)
        yield RefundStore(pool)
    finally:
        pool.close()


def reserve_at_once(store: RefundStore, requests: list[RefundRequest]) -> list:
    """Each request's pending refund inserted from a thread of its own, all released together."""
    start = threading.Barrier(len(requests))

    def reserve(request: RefundRequest):
        start.wait()
        return store.insert_pending_refund(request, uuid.uuid4(), is_simulated=True)

    with ThreadPoolExecutor(len(requests)) as threads:
        return list(threads.map(reserve, requests))


def request_for(payment_id: uuid.UUID, amount: str | None, key: str) -> RefundRequest:
    value = None if amount is None else Decimal(amount)
    return RefundRequest(payment_id=payment_id, amount=value, reason="event_cancelled", idempotency_key=key,
                         fingerprint=refunds.fingerprint(payment_id, value, "event_cancelled"))


def test_twenty_concurrent_refunds_of_ten_on_a_hundred_and_fifty_reserve_exactly_fifteen(
        client, sandbox, database, refund_store):
    payment_id = uuid.UUID(a_payment(client, sandbox)["id"])

    reservations = reserve_at_once(refund_store, [request_for(payment_id, "10.00", f"k{n}") for n in range(20)])

    made = [r.refund for r in reservations if r.refund is not None]
    assert len(made) == 15
    # Those refused saw what was left under the payment's lock: less than 10.00.
    assert all(r.refundable < Decimal("10.00") for r in reservations if r.refund is None)
    assert sum(r["amount"] for r in database.refunds(payment_id)) == Decimal("150.00")
    # Whole-payment refunds racing too: one takes what is left, whatever it is.
    again = uuid.UUID(a_payment(client, sandbox)["id"])
    whole = reserve_at_once(refund_store, [request_for(again, None, f"w{n}") for n in range(5)]
                            + [request_for(again, "1.00", f"o{n}") for n in range(5)])
    assert sum(r["amount"] for r in database.refunds(again)) == Decimal("150.00")
    assert sum(r.refund is not None for r in whole) >= 1


def test_ten_concurrent_refunds_with_one_key_make_one(client, sandbox, database, refund_store):
    payment_id = uuid.UUID(a_payment(client, sandbox)["id"])

    reservations = reserve_at_once(refund_store, [request_for(payment_id, "10.00", "one-key")] * 10)

    assert sum(r.refund is not None for r in reservations) == 1
    [row] = database.refunds(payment_id)
    assert row["idempotency_key"] == "one-key"
