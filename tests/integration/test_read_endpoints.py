"""GET /payments/{paymentId} and GET /payments?orderId=: the stored payments,
as POST /payments answered them, through the real app and database."""

from __future__ import annotations

import uuid

import pytest

from devstack import free_port
from tests.support import new_order, payment_body

LOOKUP = "payment-lookup.schema.json"
LIST = "payment-list.schema.json"


def refused(message: str) -> dict:
    return {"success": False, "errorMessage": message, "payment": None}


def test_a_payment_reads_back_as_post_answered_it(client, sandbox):
    paid = client.pay(payment_body(new_order(sandbox)))
    assert paid.status == 200

    reply = client.get(f"/payments/{paid.body['payment']['id']}", schema=LOOKUP)

    assert reply.status == 200
    assert reply.body == {"success": True, "errorMessage": None, "payment": paid.body["payment"]}
    assert '"amount":150.00,' in reply.text


def test_a_declined_payment_reads_back_with_its_failure(client, sandbox):
    declined = client.pay(payment_body(new_order(sandbox, total=150.13), amount="150.13"))
    assert declined.status == 402

    reply = client.get(f"/payments/{declined.body['payment']['id']}", schema=LOOKUP)

    assert reply.status == 200
    assert reply.body["payment"] == declined.body["payment"]
    assert reply.body["payment"]["status"] == "failed"
    assert reply.body["payment"]["errorCode"] == "CARD_DECLINED"


def test_an_unknown_payment_is_404(client, database):
    reply = client.get(f"/payments/{uuid.uuid4()}", schema=LOOKUP)
    assert reply.status == 404
    assert reply.body == refused("Payment not found")


@pytest.mark.route_independent
@pytest.mark.parametrize("payment_id", [
    "not-a-guid", "7c9e6679742540de944be07fc1f90ae7", "%7B7c9e6679-7425-40de-944b-e07fc1f90ae7%7D",
    "urn:uuid:7c9e6679-7425-40de-944b-e07fc1f90ae7", "7c9e6679-7425-40de-944b-e07fc1f90aeg", "12",
])
def test_a_payment_id_that_is_not_a_guid_is_400(client, database, payment_id):
    reply = client.get(f"/payments/{payment_id}", schema=LOOKUP)
    assert reply.status == 400
    assert reply.body == refused("Invalid request: paymentId must be a GUID")


def test_an_orders_attempts_are_listed_newest_first(client, sandbox, database):
    order_id = new_order(sandbox, total=150.13)
    first = client.pay(payment_body(order_id, amount="150.13"))
    second = client.pay(payment_body(order_id, amount="150.13"))
    sandbox.put_order(order_id, total=150.00)
    third = client.pay(payment_body(order_id))
    client.pay(payment_body(new_order(sandbox)))  # another order's payment stays out
    assert [first.status, second.status, third.status] == [402, 402, 200]

    reply = client.get("/payments", params={"orderId": order_id}, schema=LIST)

    assert reply.status == 200
    assert reply.body == {"success": True, "errorMessage": None, "payments": [
        third.body["payment"], second.body["payment"], first.body["payment"],
    ]}


def test_an_order_without_payments_lists_none(client, database):
    reply = client.get("/payments", params={"orderId": str(uuid.uuid4())}, schema=LIST)
    assert reply.status == 200
    assert reply.body == {"success": True, "errorMessage": None, "payments": []}


@pytest.mark.route_independent
@pytest.mark.parametrize("query, message", [
    ("", "orderId is required"),
    ("orderid=7c9e6679-7425-40de-944b-e07fc1f90ae7", "orderId is required"),
    ("orderId=", "orderId must be a GUID"),
    ("orderId=nope", "orderId must be a GUID"),
    ("orderId=7c9e6679742540de944be07fc1f90ae7", "orderId must be a GUID"),
    ("orderId=7c9e6679-7425-40de-944b-e07fc1f90ae7&orderId=a8098c1a-f86e-11da-bd1a-00112444be1e",
     "orderId must be a GUID"),
])
def test_the_list_needs_one_order_guid(client, database, query, message):
    reply = client.get(f"/payments?{query}", schema=LIST)
    assert reply.status == 400
    assert reply.body == refused(f"Invalid request: {message}")


# Fixed ids: every test process (pytest-xdist) must collect the same names.
@pytest.mark.parametrize("path", ["/payments/5d3f1c9e-2b7a-4e61-9c08-7a4e2f1b6d30",
                                  "/payments?orderId=8b2e6f40-1c9d-4a73-b5e2-3f7d0a9c4e18"])
def test_reads_without_a_database_are_503(make_client, config, sandbox, path):
    client = make_client(config, database_url=f"postgresql://postgres@127.0.0.1:{free_port()}/x", db_timeout=0.5)
    reply = client.get(path, schema=LIST)
    assert reply.status == 503
    assert reply.body == refused("Payment processing error: payment database is unavailable")
    assert reply.headers["Retry-After"] == "1"
