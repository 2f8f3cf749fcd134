"""What an operator sees of refunds, from real requests against the real
database, broker and sandbox: GET /metrics (refunds by outcome, refunds
pending past their timeout, the reconciler's answers) and the access line's
refund fields."""

from __future__ import annotations

import uuid
from decimal import Decimal

import psycopg
import pytest

from payment.bootstrap import build_web
from tests.conftest import Client
from tests.integration.test_metrics import scrape, value
from tests.integration.test_request_ids_and_logs import log_lines  # noqa: F401  (fixture)
from tests.support import new_order, payment_body


def paid(client, sandbox) -> dict:
    reply = client.pay(payment_body(new_order(sandbox)))
    assert reply.status == 200, reply.body
    return reply.body["payment"]


@pytest.mark.route_independent
def test_refunds_are_counted_by_outcome_and_each_access_line_says_its_outcome(client, sandbox, log_lines):  # noqa: F811
    payment = paid(client, sandbox)
    client.refund(payment["id"], {"amount": Decimal("10.00")}, key="a", headers={"X-Request-ID": "refund-1"})
    client.refund(payment["id"], {"amount": Decimal("10.00")}, key="a", headers={"X-Request-ID": "refund-2"})
    client.refund(payment["id"], {"amount": Decimal("1.77")}, key="b", headers={"X-Request-ID": "refund-3"})
    client.refund(payment["id"], {"amount": Decimal("999.00")}, key="c", headers={"X-Request-ID": "refund-4"})

    samples = scrape(client)
    assert value(samples, "payment_refunds_total", outcome="succeeded", error_code="") == 1
    assert value(samples, "payment_refunds_total", outcome="replayed", error_code="") == 1
    assert value(samples, "payment_refunds_total", outcome="failed", error_code="REFUND_DECLINED") == 1
    assert value(samples, "payment_refunds_total", outcome="rejected", error_code="REFUND_INVALID") == 1
    route = "/payments/{paymentId}/refunds"
    assert value(samples, "payment_http_requests_total", route=route, method="POST", status="200") == 2

    lines = {line["requestId"]: line for line in log_lines() if line["message"] == "request"}
    [first, again, declined, over] = (lines[f"refund-{n}"] for n in range(1, 5))
    assert (first["refundOutcome"], again["refundOutcome"], declined["refundOutcome"]) == (
        "succeeded", "replayed", "declined")
    assert first["refundId"] == again["refundId"] != declined["refundId"]
    assert (first["refundStatus"], declined["refundStatus"], declined["errorCode"]) == (
        "succeeded", "failed", "REFUND_DECLINED")
    assert all(line["paymentId"] == payment["id"] and line["orderId"] == payment["orderId"] and line["route"] == route
               for line in (first, again, declined))
    # A refusal is no refund: its line has the status, and no refund fields.
    assert over["status"] == 400 and "refundOutcome" not in over and "refundId" not in over


def test_overdue_refunds_are_shown_and_the_reconcilers_answers_counted(config, database, sandbox, caplog):
    web = build_web(config, start_relay=False)
    client = Client(web.app)
    holder = psycopg.connect(database.url)
    try:
        payment = paid(client, sandbox)
        refunded, unknown = uuid.uuid4(), uuid.uuid4()
        for refund_id, amount in ((refunded, "10.00"), (unknown, "20.00")):
            database.execute(
                "INSERT INTO bc_payment.refunds (id, payment_id, order_id, customer_id, amount, currency, reason,"
                " status, is_simulated, idempotency_key, request_fingerprint, created_at)"
                " SELECT %s, id, order_id, customer_id, %s, currency, 'duplicate', 'pending', true, %s, 'f',"
                " now() - interval '1 hour' FROM bc_payment.payments WHERE id = %s",
                (refund_id, Decimal(amount), str(refund_id), payment["id"]))
        database.execute(
            "INSERT INTO bc_payment.simulator_refunds (refund_id, payment_id, amount, currency, succeeded,"
            " transaction_id) VALUES (%s, %s, 10, 'USD', true, 'txn_1')", (refunded, payment["id"]))
        assert value(scrape(client), "payment_pending_overdue_refunds") == 2
        # The gateway cannot answer for the second: its void is held by a
        # transaction that outlasts the statement timeout.
        holder.execute("INSERT INTO bc_payment.simulator_refund_voids (refund_id) VALUES (%s)", (unknown,))
        web.core.make_reconciler().run_once()
        holder.rollback()
        samples = scrape(client)
    finally:
        holder.close()
        web.close(timeout=2)

    assert value(samples, "payment_refund_reconciliations_total", result="refunded") == 1
    assert value(samples, "payment_refund_reconciliations_total", result="unknown") == 1
    assert value(samples, "payment_pending_overdue_refunds") == 1
    assert [r.refundId for r in caplog.records
            if r.getMessage().startswith("gateway cannot say what became of a pending refund")] == [str(unknown)]
    [settled] = database.rows("refunds", "id = %s", (refunded,))
    assert (settled["status"], settled["transaction_id"]) == ("succeeded", "txn_1")
