"""A fault in a dependency: a 5xx envelope naming the failing part, no leak of
internals, nothing written, nothing published. The broker being away is not a
fault of the payment: it is answered as committed, its event kept in the outbox."""

from __future__ import annotations

import time
import uuid

import pytest

from devstack import free_port
from tests.expected_events import assert_event_of
from tests.support import new_order, payment_body, relay_on
from tests.timing import ceiling

DEAD_DB_TIMEOUT_S = 0.5

LEAKS = ("127.0.0.1", "localhost", "Traceback", "psycopg", "requests", "Error(", "connection refused",
         "SELECT", "bc_payment")


def assert_no_leak(reply):
    for word in LEAKS:
        assert word.lower() not in reply.text.lower(), word




def error_body(message):
    return {"success": False, "errorMessage": f"Payment processing error: {message}", "payment": None}


@pytest.mark.route_independent
@pytest.mark.parametrize("script, status, message", [
    ({"status": 500, "body": '{"error": "boom"}'}, 502, "ordering service returned an invalid response"),
    ({"status": 200, "body": "<html>gateway</html>", "content_type": "text/html"}, 502,
     "ordering service returned an invalid response"),
    ({"status": 200, "body": '{"id": "7c9e6679-7425-40de-944b-e07f'}, 502,
     "ordering service returned an invalid response"),
    ({"status": 200, "body": '{"id": "nope", "customerId": 1}'}, 502,
     "ordering service returned an invalid response"),
    ({"status": 200, "body": "[]"}, 502, "ordering service returned an invalid response"),
    # Answered long after the read timeout, so that one that did not hold shows in the time too.
    ({"delay_ms": 5000}, 504, "ordering service did not answer in time"),
])
def test_ordering_service_faults(client, config, sandbox, nothing_happened, script, status, message):
    order_id = new_order(sandbox)
    sandbox.script(f"/orders/{order_id}", **script)
    started = time.monotonic()
    reply = client.pay(payment_body(order_id))
    assert reply.status == status
    assert reply.body == error_body(message)
    assert reply.headers["Retry-After"] == "1"
    assert_no_leak(reply)
    assert time.monotonic() - started < ceiling(config.upstream_read_timeout)


@pytest.mark.route_independent
def test_ordering_service_refusing_connections_is_503(make_client, config, sandbox, nothing_happened):
    client = make_client(config, ordering_service_url=f"http://127.0.0.1:{free_port()}")
    reply = client.pay(payment_body("7c9e6679-7425-40de-944b-e07fc1f90ae7"))
    assert reply.status == 503
    assert reply.body == error_body("ordering service is unavailable")
    assert_no_leak(reply)


@pytest.mark.route_independent
def test_reservation_service_faults_name_it(make_client, config, sandbox, nothing_happened):
    order_id = new_order(sandbox)
    reservation_id = str(uuid.uuid4())
    sandbox.script(f"/reservations/{reservation_id}", status=503, body="unavailable")
    client = make_client(config)
    reply = client.pay(payment_body(order_id, reservationId=reservation_id))
    assert reply.status == 502
    assert reply.body == error_body("reservation service returned an invalid response")

    down = make_client(config, reservation_service_url=f"http://127.0.0.1:{free_port()}")
    reply = down.pay(payment_body(order_id, reservationId=reservation_id))
    assert reply.status == 503
    assert reply.body == error_body("reservation service is unavailable")
    assert_no_leak(reply)


def test_database_unavailable_is_503_fast(make_client, config, sandbox, nothing_happened):
    dead = f"postgresql://postgres:secret-password@127.0.0.1:{free_port()}/test"
    client = make_client(config, database_url=dead, db_timeout=DEAD_DB_TIMEOUT_S)
    started = time.monotonic()
    reply = client.pay(payment_body("7c9e6679-7425-40de-944b-e07fc1f90ae7"))
    assert reply.status == 503
    assert reply.body == error_body("payment database is unavailable")
    assert "secret-password" not in reply.text
    assert_no_leak(reply)
    assert time.monotonic() - started < ceiling(DEAD_DB_TIMEOUT_S)


def test_broker_away_payment_still_committed_and_relay_sends_later(
        make_client, config, database, sandbox, events, broker):
    order_id = new_order(sandbox)
    client = make_client(config, kafka_bootstrap_servers=f"127.0.0.1:{free_port()}",
                         kafka_delivery_timeout=0.3)

    body = payment_body(order_id)
    reply = client.pay(body)

    assert reply.status == 200 and reply.body["payment"]["status"] == "succeeded"
    [outbox] = database.rows("outbox")
    assert outbox["sent_at"] is None
    assert events.read("payment-succeeded") == []

    # The relay, with the broker reachable, sends it under the same event id.
    with relay_on(config, relay_grace=0) as relay:
        assert relay.send_batch() == (1, 1)
        assert relay.send_batch() == (0, 0)
    [event] = events.read("payment-succeeded")
    assert event["headers"]["eventId"] == str(outbox["event_id"])
    assert_event_of(event, database, reply.body["payment"]["id"], body)
    assert database.rows("outbox")[0]["sent_at"] is not None


def test_relay_leaves_fresh_rows_to_the_request_that_wrote_them(database, broker, make_client, config, sandbox):
    order_id = new_order(sandbox)
    client = make_client(config, kafka_bootstrap_servers=f"127.0.0.1:{free_port()}",
                         kafka_delivery_timeout=0.1)
    assert client.pay(payment_body(order_id)).status == 200
    with relay_on(config) as relay:
        assert relay.send_batch() == (0, 0)
