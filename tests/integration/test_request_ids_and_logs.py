"""The request id (taken, made, returned, passed upstream) and the JSON log
lines of a request, through the real app, database, broker and sandbox."""

from __future__ import annotations

import io
import json
import logging
import re
import uuid

import pytest

from devstack import free_port
from devstack.sandbox import EXAMPLE_RESERVATION_ID
from payment.bootstrap import build_core
from payment.logs import JsonFormatter
from tests.support import new_order, payment_body

# Request ids and log lines: the same whichever way the service reaches PostgreSQL.
pytestmark = pytest.mark.route_independent

MADE = re.compile(r"[0-9a-f]{32}")


@pytest.fixture
def log_lines():
    """Every line the app logs during the test, as the service writes it."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)

    def lines():
        return [json.loads(line) for line in stream.getvalue().splitlines()]

    yield lines
    root.removeHandler(handler)
    root.setLevel(level)


def test_a_given_request_id_is_returned_and_passed_upstream(client, sandbox):
    order_id = new_order(sandbox)
    reply = client.pay(payment_body(order_id, reservationId=EXAMPLE_RESERVATION_ID),
                       headers={"X-Request-ID": "checkout-7f3a:1"})
    assert reply.status == 200
    assert reply.headers["X-Request-ID"] == "checkout-7f3a:1"
    # The two calls are made at once: either may arrive first.
    assert sorted(sandbox.calls()) == [f"/orders/{order_id}", f"/reservations/{EXAMPLE_RESERVATION_ID}"]
    assert sandbox.request_ids() == ["checkout-7f3a:1", "checkout-7f3a:1"]


def test_without_one_a_request_id_is_made_and_passed_upstream(client, sandbox):
    reply = client.pay(payment_body(new_order(sandbox)))
    request_id = reply.headers["X-Request-ID"]
    assert MADE.fullmatch(request_id)
    assert sandbox.request_ids() == [request_id]
    assert client.pay(payment_body(new_order(sandbox))).headers["X-Request-ID"] != request_id


@pytest.mark.parametrize("given", ["", "has space", "x" * 129, 'quote"d', "new\tline", "é"])
def test_an_unusable_request_id_is_replaced(client, sandbox, given):
    reply = client.pay(payment_body(new_order(sandbox)), headers={"X-Request-ID": given})
    assert MADE.fullmatch(reply.headers["X-Request-ID"])
    assert sandbox.request_ids() == [reply.headers["X-Request-ID"]]


@pytest.mark.parametrize("path", ["/nowhere", "/health/live", "/payments/5d3f1c9e-2b7a-4e61-9c08-7a4e2f1b6d30", "/payments/x",
                                  "/metrics", "/openapi.json"])
def test_every_answer_carries_the_request_id(client, path):
    response = client.app.get(path, headers={"X-Request-ID": "probe-1"}, expect_errors=True)
    assert response.headers["X-Request-ID"] == "probe-1"


def test_a_request_logs_json_lines_with_its_ids(client, sandbox, log_lines):
    order_id = new_order(sandbox)
    reply = client.pay(payment_body(order_id), headers={"X-Request-ID": "req-42"})
    payment_id = reply.body["payment"]["id"]

    lines = log_lines()
    assert lines and all(line["requestId"] == "req-42" for line in lines)
    # One line tells the whole request: the access line carries the payment.
    [access] = [line for line in lines if line["level"] == "INFO"]
    assert access["message"] == "request" and access["logger"] == "payment.access"
    assert access["method"] == "POST" and access["route"] == "/payments" and access["status"] == 200
    assert access["path"] == "/payments" and isinstance(access["durationMs"], float)
    assert access["paymentId"] == payment_id and access["orderId"] == order_id
    assert access["paymentOutcome"] == "succeeded" and access["paymentStatus"] == "succeeded"
    assert access["errorCode"] is None
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", access["time"])
    assert isinstance(access["pid"], int)


def test_every_payment_line_carries_payment_and_order_ids(client, sandbox, log_lines):
    declined_order = new_order(sandbox, total=150.66)
    client.pay(payment_body(declined_order, amount="150.66"))
    replayed_order = new_order(sandbox)
    client.pay(payment_body(replayed_order))
    client.pay(payment_body(replayed_order))

    payment_lines = [line for line in log_lines() if line["message"] == "request"]
    assert [(line["paymentOutcome"], line["orderId"], line["status"]) for line in payment_lines] == [
        ("declined", declined_order, 402), ("succeeded", replayed_order, 200),
        ("replayed", replayed_order, 200)]
    assert all(re.fullmatch(r"[0-9a-f-]{36}", line["paymentId"]) for line in payment_lines)
    assert payment_lines[1]["paymentId"] == payment_lines[2]["paymentId"]
    assert [(line["paymentStatus"], line["errorCode"]) for line in payment_lines] == [
        ("failed", "INSUFFICIENT_FUNDS"), ("succeeded", None), ("succeeded", None)]


def test_log_lines_outside_a_request_carry_no_request_id(client, log_lines):
    client.app.get("/health/live")
    logging.getLogger("payment.test").warning("after the request")
    assert "requestId" not in log_lines()[-1]


def test_lines_about_an_undelivered_event_carry_payment_and_order_ids(make_client, config, sandbox, log_lines):
    # The broker is away: the payment is committed, its event left to the relay.
    client = make_client(config, kafka_bootstrap_servers=f"127.0.0.1:{free_port()}", kafka_delivery_timeout=0.2)
    order_id = new_order(sandbox)
    reply = client.pay(payment_body(order_id))
    assert reply.status == 200

    undelivered = [line for line in log_lines() if "left to the outbox relay" in line["message"]]
    assert undelivered
    for line in undelivered:
        assert line["paymentId"] == reply.body["payment"]["id"] and line["orderId"] == order_id


def test_the_reconcilers_line_about_a_pending_payment_carries_payment_and_order_ids(
        config, database, broker, log_lines):
    order_id, payment_id = uuid.uuid4(), uuid.uuid4()
    database.execute(
        "INSERT INTO bc_payment.payments (id, order_id, customer_id, amount, currency, payment_method,"
        " status, is_simulated, created_at) VALUES (%s, %s, %s, 150, 'USD', 'credit_card', 'pending', true,"
        " now() - interval '1 hour')", (payment_id, order_id, uuid.uuid4()))
    core = build_core(config)
    try:
        core.make_reconciler().run_once()
    finally:
        core.close(timeout=2)

    [line] = [line for line in log_lines() if line["message"] == "pending payment settled from the gateway's answer"]
    assert line["paymentId"] == str(payment_id) and line["orderId"] == str(order_id)
    assert line["gatewayAnswer"] == "never_charged" and line["errorCode"] == "PROCESSING_INTERRUPTED"
