"""Never more refunded than was paid, whatever the concurrency: refunds of one
payment sent at once to two service instances (two gunicorn masters with two
workers each, sharing one database, as a scaled-out deployment runs),
against the simulated processor's own ledger."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal

import pytest
import requests

from payment import jsonio
from tests.support import Database, deployment_env, new_order, payment_body, start_served_together, stop_all_served

NOTHING_LEFT = {"success": False, "refund": None,
                "errorMessage": "Refund validation failed: nothing is left to refund (refundable amount 0.00)"}
IN_FLIGHT = {"success": False, "refund": None,
             "errorMessage": "A refund with this Idempotency-Key is already in progress"}


@pytest.fixture(scope="module")
def instances(server_url, database_url, db_route, broker, sandbox_url):
    """Two instances for this module's tests; each test refunds a payment of
    its own. The tables are emptied first, so that no earlier module's
    unsent event is relayed into a test's reading window."""
    Database(server_url).truncate()
    # Each refund spends 200 ms at the processor: many are in flight at once.
    env = {**deployment_env(database_url, broker, sandbox_url, db_route), "SIMULATOR_LATENCY_MS": "200"}
    started: list = []
    try:
        start_served_together(started, 2, env, workers=2, GUNICORN_THREADS=8)
        yield started
    finally:
        stop_all_served(started)


def refund(instance, payment_id: str, body: dict, key: str) -> requests.Response:
    return requests.post(f"{instance.url}/payments/{payment_id}/refunds", data=jsonio.dumps(body), timeout=30,
                         headers={"Content-Type": "application/json", "Idempotency-Key": key})


def all_at_once(instances, payment_id: str, bodies_and_keys: list[tuple[dict, str]]) -> list[requests.Response]:
    """Every refund on a thread of its own, spread over the instances in turn."""
    with ThreadPoolExecutor(max_workers=len(bodies_and_keys)) as threads:
        return list(threads.map(lambda n: refund(instances[n % len(instances)], payment_id, *bodies_and_keys[n]),
                                range(len(bodies_and_keys))))


def a_payment(instances, sandbox) -> dict:
    reply = instances[0].post(payment_body(new_order(sandbox)))
    assert reply.status_code == 200, reply.text
    return reply.json()["payment"]


def test_twenty_refunds_of_ten_on_a_hundred_and_fifty_over_two_instances(instances, sandbox, database, events):
    payment = a_payment(instances, sandbox)

    replies = all_at_once(instances, payment["id"], [({"amount": Decimal("10.00")}, f"k{n}") for n in range(20)])

    statuses = sorted(r.status_code for r in replies)
    assert statuses == [200] * 15 + [400] * 5, [r.text for r in replies if r.status_code not in (200, 400)]
    assert all(r.json() == NOTHING_LEFT for r in replies if r.status_code == 400)
    made = {r.json()["refund"]["id"] for r in replies if r.status_code == 200}
    assert len(made) == 15
    # The processor refunded exactly those fifteen, and nothing more.
    ledger = database.gateway_refunds(payment["id"])
    assert {str(r["refund_id"]) for r in ledger} == made and all(r["succeeded"] for r in ledger)
    assert sum(r["amount"] for r in ledger) == Decimal("150.00")
    # Each event's total refunded counts every refund settled before it: one event per step of 10.00.
    published = events.read("payment-refunded", settle_s=0.5)
    assert {m["value"]["refundId"] for m in published} == made
    assert sorted(m["value"]["amountRefunded"] for m in published) == [Decimal(10 * n) for n in range(1, 16)]


def test_ten_refunds_with_one_key_over_two_instances_make_one(instances, sandbox, database):
    payment = a_payment(instances, sandbox)

    replies = all_at_once(instances, payment["id"], [({"amount": Decimal("25.00")}, "one-key")] * 10)

    assert {r.status_code for r in replies} <= {200, 409}, [r.text for r in replies]
    answered = [r.json()["refund"] for r in replies if r.status_code == 200]
    assert answered and len({refund["id"] for refund in answered}) == 1
    assert all(r.json() == IN_FLIGHT and int(r.headers["Retry-After"]) >= 1
               for r in replies if r.status_code == 409)
    [made] = database.gateway_refunds(payment["id"])
    assert str(made["refund_id"]) == answered[0]["id"] and made["amount"] == Decimal("25.00")
    # Asked again once settled: the same refund, replayed.
    again = refund(instances[1], payment["id"], {"amount": Decimal("25.00")}, "one-key")
    assert again.status_code == 200 and again.headers["Idempotent-Replayed"] == "true"
    assert again.json()["refund"] == answered[0]
