"""GET /metrics in one process: every metric docs/operations.md lists, counted from
real requests against the real database, broker and sandbox."""

from __future__ import annotations

import dataclasses
import threading
import time
import uuid

import psycopg
import pytest
from prometheus_client.parser import text_string_to_metric_families

from payment.bootstrap import build_web
from tests.conftest import Client
from tests.support import new_order, payment_body
from tests.timing import eventually


def scrape(client) -> dict:
    """{(sample name, frozenset(labels)): value} of one scrape."""
    response = client.app.get("/metrics")
    assert response.content_type == "text/plain"
    assert "version=0.0.4" in response.headers["Content-Type"]
    samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples


def value(samples, name, **labels) -> float:
    """The sample's value. A sample missing from the scrape fails the test:
    a metric deleted or renamed must not read as 0."""
    key = (name, frozenset(labels.items()))
    assert key in samples, f"{name}{dict(labels)} is not in the scrape"
    return samples[key]


def is_zero(samples, name, **labels) -> bool:
    """The sample is in the scrape, and is 0."""
    return value(samples, name, **labels) == 0


def never_counted(samples, name, **labels) -> bool:
    """A counter that has samples, none of them with these labels above 0 (a
    label set never counted has no sample at all)."""
    assert any(sample == name for sample, _ in samples), f"{name} is not in the scrape"
    return samples.get((name, frozenset(labels.items())), 0) == 0


@pytest.mark.route_independent
def test_requests_are_counted_by_route_method_and_status(client, sandbox):
    for _ in range(3):
        client.app.get(f"/payments/{uuid.uuid4()}", expect_errors=True)
    client.app.get("/payments/nope", expect_errors=True)
    client.pay(payment_body(new_order(sandbox)))
    client.app.get("/no/such/route", expect_errors=True)

    samples = scrape(client)
    route = "/payments/{paymentId}"
    assert value(samples, "payment_http_requests_total", route=route, method="GET", status="404") == 3
    assert value(samples, "payment_http_requests_total", route=route, method="GET", status="400") == 1
    assert value(samples, "payment_http_requests_total", route="/payments", method="POST", status="200") == 1
    assert value(samples, "payment_http_requests_total", route="unmatched", method="GET", status="404") == 1
    assert value(samples, "payment_http_request_duration_seconds_count", route=route, method="GET") == 4
    assert value(samples, "payment_http_request_duration_seconds_bucket", route=route, method="GET", le="+Inf") == 4


def test_payments_are_counted_by_outcome_and_error_code(client, sandbox):
    paid = new_order(sandbox)
    client.pay(payment_body(paid))
    client.pay(payment_body(paid))
    client.pay(payment_body(new_order(sandbox, total=150.13), amount="150.13"))
    client.pay(payment_body(str(uuid.uuid4())))
    sandbox_order = new_order(sandbox)
    sandbox.script(f"/orders/{sandbox_order}", status=500, body="{}")
    client.pay(payment_body(sandbox_order))

    samples = scrape(client)
    assert value(samples, "payment_payments_total", outcome="succeeded", error_code="") == 1
    assert value(samples, "payment_payments_total", outcome="replayed", error_code="") == 1
    assert value(samples, "payment_payments_total", outcome="failed", error_code="CARD_DECLINED") == 1
    assert value(samples, "payment_payments_total", outcome="rejected", error_code="ORDER_NOT_FOUND") == 1
    assert value(samples, "payment_payments_total", outcome="error", error_code="UPSTREAM_BAD_RESPONSE") == 1


@pytest.mark.route_independent
def test_upstream_calls_are_timed_and_failures_counted_by_kind(client, sandbox):
    client.pay(payment_body(new_order(sandbox), reservationId="f47ac10b-58cc-4372-a567-0e02b2c3d479"))
    broken = new_order(sandbox)
    sandbox.script(f"/orders/{broken}", status=200, body="not json")
    client.pay(payment_body(broken))
    slow = new_order(sandbox)
    sandbox.script(f"/orders/{slow}", delay_ms=1500)
    client.pay(payment_body(slow))

    samples = scrape(client)
    assert value(samples, "payment_upstream_request_duration_seconds_count", service="ordering") == 3
    assert value(samples, "payment_upstream_request_duration_seconds_count", service="reservation") == 1
    assert value(samples, "payment_upstream_request_duration_seconds_sum", service="ordering") >= 1.0
    assert value(samples, "payment_upstream_errors_total", service="ordering", kind="bad_response") == 1
    assert value(samples, "payment_upstream_errors_total", service="ordering", kind="timeout") == 1
    assert never_counted(samples, "payment_upstream_errors_total", service="reservation", kind="timeout")


def test_pool_usage_is_reported(make_client, config, database):
    client = make_client(config, db_pool_max=5)
    client.app.get(f"/payments/{uuid.uuid4()}", expect_errors=True)
    # The pool opens in the background, and grows by one connection when the
    # first request has to wait for it; a connection still being made counts
    # in the pool's size but not as idle. Scrape once that one has arrived.
    deadline = time.monotonic() + 5
    samples = scrape(client)
    while value(samples, "payment_db_pool_connections", state="in_use") and time.monotonic() < deadline:
        time.sleep(0.05)
        samples = scrape(client)
    assert value(samples, "payment_db_pool_max_connections") == 5
    assert is_zero(samples, "payment_db_pool_connections", state="in_use")
    assert value(samples, "payment_db_pool_connections", state="idle") >= 1
    assert is_zero(samples, "payment_db_pool_requests_waiting")


def test_requests_waiting_for_a_connection_are_shown(config, database):
    # One connection, held here; two reads then wait for it (well inside
    # DB_TIMEOUT_S), and a scrape taken meanwhile must show them.
    web = build_web(dataclasses.replace(config, db_pool_max=1, db_timeout=10), start_relay=False)
    pool = web.core.pool
    try:
        held = pool.getconn()
        answers: list[int] = []
        readers = [threading.Thread(target=read_unknown_payment, args=(web.app, answers)) for _ in range(2)]
        for reader in readers:
            reader.start()
        eventually(lambda: pool.get_stats()["requests_waiting"] == 2, "two requests waiting")
        # The scrape itself needs the connection for the outbox figures, so it
        # is handed back shortly after the pool's figures have been sampled.
        release = threading.Timer(1.0, pool.putconn, args=(held,))
        release.start()
        while_waiting = scrape(Client(web.app))
        release.join()
        for reader in readers:
            reader.join(15)
        after = scrape(Client(web.app))
    finally:
        web.close(timeout=2)

    assert value(while_waiting, "payment_db_pool_requests_waiting") == 2
    assert value(while_waiting, "payment_db_pool_connections", state="in_use") == 1
    assert value(while_waiting, "payment_db_pool_max_connections") == 1
    # Both waited and were served once the connection came back: not timed out.
    assert answers == [404, 404]
    assert is_zero(after, "payment_db_pool_requests_waiting")
    assert is_zero(after, "payment_db_pool_connections", state="in_use")


def read_unknown_payment(app, answers: list[int]) -> None:
    """GET an unknown payment (a read that needs a connection); its status into `answers`."""
    response = Client(app).app.get(f"/payments/{uuid.uuid4()}", expect_errors=True)
    answers.append(response.status_int)


def test_outbox_backlog_and_oldest_age_come_from_the_database(client, sandbox, database):
    assert is_zero(scrape(client), "payment_outbox_unsent_events")
    assert is_zero(scrape(client), "payment_outbox_oldest_unsent_age_seconds")
    client.pay(payment_body(new_order(sandbox)))
    client.pay(payment_body(new_order(sandbox)))
    # Once the marker has marked both, so that no mark lands after the reset.
    assert len(database.outbox_once_sent()) == 2
    database.execute("UPDATE bc_payment.outbox SET sent_at = NULL, created_at = now() - interval '90 seconds'")

    samples = scrape(client)
    assert value(samples, "payment_outbox_unsent_events") == 2
    assert 90 <= value(samples, "payment_outbox_oldest_unsent_age_seconds") < 120


def test_reconciler_answers_are_counted_and_overdue_payments_shown(config, database, caplog):
    charged, unknown = uuid.uuid4(), uuid.uuid4()
    for payment_id in (charged, unknown):
        database.execute(
            "INSERT INTO bc_payment.payments (id, order_id, customer_id, amount, currency, payment_method,"
            " status, is_simulated, created_at) VALUES (%s, %s, %s, 150, 'USD', 'credit_card', 'pending',"
            " true, now() - interval '1 hour')", (payment_id, uuid.uuid4(), uuid.uuid4()))
    database.execute(
        "INSERT INTO bc_payment.simulator_charges (payment_id, order_id, amount, currency, succeeded,"
        " transaction_id, response) SELECT id, order_id, 150, 'USD', true, 'txn_1', 'Success' "
        " FROM bc_payment.payments WHERE id = %s", (charged,))
    web = build_web(config, start_relay=False)
    client = Client(web.app)
    # The gateway cannot answer for the second payment: its ledger row is
    # held by a transaction that outlasts the statement timeout.
    holder = psycopg.connect(database.url)
    try:
        assert value(scrape(client), "payment_pending_overdue_payments") == 2
        holder.execute("INSERT INTO bc_payment.simulator_ledger (payment_id, voided, voided_at)"
                       " VALUES (%s, true, now())", (unknown,))
        web.core.make_reconciler().run_once()
        holder.rollback()
        samples = scrape(client)
    finally:
        holder.close()
        web.close(timeout=2)

    assert value(samples, "payment_reconciliations_total", result="charged") == 1
    assert value(samples, "payment_reconciliations_total", result="unknown") == 1
    assert value(samples, "payment_pending_overdue_payments") == 1
    assert [r.paymentId for r in caplog.records if r.getMessage().startswith("gateway cannot say")] == [str(unknown)]
