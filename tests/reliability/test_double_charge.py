"""No double charge: a retry storm for one order, spread over three service
instances (three gunicorn masters sharing one database, as a scaled-out
deployment runs), reaches the gateway once: one row in the simulated
processor's own ledger."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.expected_events import assert_event_of
from tests.support import Database, deployment_env, new_order, payment_body, start_served_together, stop_all_served

IN_PROGRESS = {"success": False, "payment": None, "errorMessage": "A payment for this order is already in progress"}


@pytest.fixture(scope="module")
def ledger_file(tmp_path_factory, db_route):
    """The simulator's optional file of charges (SIMULATOR_LEDGER_PATH), shared by the instances."""
    return tmp_path_factory.mktemp(f"ledger-{db_route}") / "charges.jsonl"


@pytest.fixture(scope="module")
def instances(server_url, database_url, db_route, broker, sandbox_url, ledger_file):
    """Three instances, started once for this module's tests (on each
    route): each test pays for an order of its own, and reads the ledger and
    the database for that order. The tables are emptied first: an event an
    earlier module left unsent would otherwise be relayed by these
    instances' relays while a test reads its events."""
    Database(server_url).truncate()
    env = {**deployment_env(database_url, broker, sandbox_url, db_route),
           "SIMULATOR_LATENCY_MS": "200", "SIMULATOR_LEDGER_PATH": str(ledger_file)}
    started: list = []
    try:
        start_served_together(started, 3, env, workers=2, GUNICORN_THREADS=4)
        yield started
    finally:
        stop_all_served(started)


def file_charges(ledger_file, order_id) -> list[bool]:
    lines = ledger_file.read_text().splitlines() if ledger_file.exists() else []
    return [line["succeeded"] for line in map(json.loads, lines) if line["orderId"] == order_id]


def storm(instances, body, count=100):
    with ThreadPoolExecutor(max_workers=50) as pool:
        return list(pool.map(lambda i: instances[i % len(instances)].post(body, timeout=30), range(count)))


def assert_one_success(replies, database, order_id):
    statuses = [r.status_code for r in replies]
    assert set(statuses) <= {200, 409}, [r.text for r in replies if r.status_code not in (200, 409)][:2]
    succeeded = [r.json()["payment"] for r in replies if r.status_code == 200]
    assert succeeded, "no request succeeded"
    assert len({p["id"] for p in succeeded}) == 1
    assert all(p["status"] == "succeeded" for p in succeeded)
    assert all(r.json() == IN_PROGRESS for r in replies if r.status_code == 409)
    assert all(r.headers["Retry-After"] == "1" for r in replies if r.status_code == 409)
    rows = database.rows(where="order_id = %s AND status = 'succeeded'", params=(order_id,))
    assert [str(r["id"]) for r in rows] == [succeeded[0]["id"]]


def test_hundred_concurrent_duplicates_over_three_instances_charge_once(instances, sandbox, database, events,
                                                                        ledger_file):
    order_id = new_order(sandbox)

    replies = storm(instances, payment_body(order_id))

    assert_one_success(replies, database, order_id)
    assert [c["succeeded"] for c in database.charges(order_id)] == [True]
    assert file_charges(ledger_file, order_id) == [True]
    [payment] = database.rows()
    [event] = events.read("payment-succeeded")
    assert_event_of(event, database, payment["id"], payment_body(order_id))


def test_concurrent_retries_after_a_decline_charge_once_more(instances, sandbox, database, events, ledger_file):
    order_id = new_order(sandbox, total=150.13)
    assert instances[0].post(payment_body(order_id, amount="150.13")).status_code == 402
    sandbox.put_order(order_id, total=150.00)

    replies = storm(instances, payment_body(order_id, amount="150.00"))

    assert_one_success(replies, database, order_id)
    assert sorted(c["succeeded"] for c in database.charges(order_id)) == [False, True]
    assert file_charges(ledger_file, order_id) == [False, True]
    declined, paid = database.rows()
    assert (declined["status"], paid["status"]) == ("failed", "succeeded")
    [failed] = events.read("payment-failed")
    assert_event_of(failed, database, declined["id"], payment_body(order_id, amount="150.13"),
                    failure=("CARD_DECLINED", "Card declined", "Issuing bank rejected the transaction"))
    [succeeded] = events.read("payment-succeeded")
    assert_event_of(succeeded, database, paid["id"], payment_body(order_id, amount="150.00"))
