"""An ordering or reservation service that answers too slowly as a whole or
too much: a byte at a time (each well within the read timeout), or megabytes.
The call ends at its deadline (504) or at the size cap (502), within the
budget; nothing is written, nothing published."""

from __future__ import annotations

import time
import uuid

import pytest
import requests

from devstack.sandbox import EXAMPLE_CUSTOMER_ID
from payment import jsonio
from tests.support import new_order, payment_body
from tests.timing import ceiling

# The upstreams' limits: the same whichever way the service reaches PostgreSQL.
pytestmark = pytest.mark.route_independent

DEADLINE_S = 1.0   # the read timeout is 1 s too: every trickled byte comes well within it
TRICKLE_MS = 100   # so a document of ~150 bytes would take ~15 s without the deadline
CAP = 64 * 1024
OVERSIZED_DEADLINE_S = 5.0
PARTS = ["ordering service", "reservation service"]


def arrange(sandbox, part: str, **script) -> tuple[str, str]:
    """A new order and reservation; the one of `part` answered by `script`."""
    order_id = new_order(sandbox)
    reservation_id = str(uuid.uuid4())
    sandbox.put_reservation(reservation_id)
    if part == "ordering service":
        path, document = f"/orders/{order_id}", {
            "id": order_id, "customerId": EXAMPLE_CUSTOMER_ID, "totalAmount": 150, "currency": "USD",
            "status": "pending"}
    else:
        path, document = f"/reservations/{reservation_id}", {
            "id": reservation_id, "customerId": EXAMPLE_CUSTOMER_ID, "status": "active",
            "expiresAt": "2099-01-01T00:00:00Z"}
    sandbox.script(path, body=jsonio.dumps(document), **script)
    return order_id, reservation_id


def timed_pay(client, order_id, reservation_id):
    started = time.monotonic()
    reply = client.pay(payment_body(order_id, reservationId=reservation_id))
    return reply, time.monotonic() - started


@pytest.mark.parametrize("part", PARTS)
def test_a_trickled_answer_is_504_at_the_deadline(make_client, config, sandbox, nothing_happened, part):
    order_id, reservation_id = arrange(sandbox, part, trickle_ms=TRICKLE_MS)
    client = make_client(config, upstream_deadline=DEADLINE_S)
    reply, elapsed = timed_pay(client, order_id, reservation_id)
    assert (reply.status, reply.body) == (504, {
        "success": False, "payment": None, "errorMessage": f"Payment processing error: {part} did not answer in time"})
    assert reply.headers["Retry-After"] == "1"
    assert DEADLINE_S - 0.1 < elapsed < ceiling(DEADLINE_S), elapsed


@pytest.mark.parametrize("declared", [True, False], ids=["Content-Length", "until close"])
@pytest.mark.parametrize("part", PARTS)
def test_an_oversized_answer_is_502(make_client, config, sandbox, nothing_happened, part, declared):
    """A valid document followed by 20 MB of spaces: still the same JSON,
    but more than the service reads."""
    order_id, reservation_id = arrange(sandbox, part, pad_bytes=20 * 1024 * 1024, declare_length=declared)
    client = make_client(config, upstream_deadline=OVERSIZED_DEADLINE_S, upstream_max_response_bytes=CAP)
    reply, elapsed = timed_pay(client, order_id, reservation_id)
    assert (reply.status, reply.body) == (502, {
        "success": False, "payment": None,
        "errorMessage": f"Payment processing error: {part} returned an invalid response"})
    # Refused at the cap, long before the deadline.
    assert elapsed < OVERSIZED_DEADLINE_S / 2, elapsed


@pytest.mark.parametrize("part", PARTS)
def test_an_answer_within_both_limits_is_read_whole(make_client, config, sandbox, database, part):
    """Padded to half the cap: the payment goes through."""
    order_id, reservation_id = arrange(sandbox, part, pad_bytes=CAP // 2)
    client = make_client(config, upstream_deadline=DEADLINE_S, upstream_max_response_bytes=CAP)
    reply, _ = timed_pay(client, order_id, reservation_id)
    assert reply.status == 200, reply.text
    assert [row["status"] for row in database.rows()] == ["succeeded"]


def test_the_running_service_reads_its_limits_from_the_environment(serve, sandbox, nothing_happened):
    order_id, reservation_id = arrange(sandbox, "ordering service", trickle_ms=TRICKLE_MS)
    served = serve(workers=1, UPSTREAM_DEADLINE_S=DEADLINE_S)
    started = time.monotonic()
    reply = requests.post(f"{served.url}/payments", timeout=30, headers={"Content-Type": "application/json"},
                          data=jsonio.dumps(payment_body(order_id, reservationId=reservation_id)))
    elapsed = time.monotonic() - started
    assert reply.status_code == 504, reply.text
    assert elapsed < ceiling(DEADLINE_S), elapsed

    big_order, big_reservation = arrange(sandbox, "reservation service", pad_bytes=2 * 1024 * 1024)
    served = serve(workers=1, UPSTREAM_MAX_RESPONSE_BYTES=CAP)
    reply = requests.post(f"{served.url}/payments", timeout=30, headers={"Content-Type": "application/json"},
                          data=jsonio.dumps(payment_body(big_order, reservationId=big_reservation)))
    assert reply.status_code == 502, reply.text
