"""The service as deployed: gunicorn with gunicorn.conf.py on a real port."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from devstack import free_port
from payment import jsonio
from tests.contract_examples import CONTRACT_EXAMPLES
from tests.expected_events import assert_event_of
from tests.support import ROOT, new_order, payment_body


def post(url, body):
    return requests.post(f"{url}/payments", data=jsonio.dumps(body),
                         headers={"Content-Type": "application/json"}, timeout=15)


@pytest.fixture
def gunicorn(serve):
    """gunicorn(**env) -> the base URL of a service started with `python -m payment serve`."""
    def start(**extra):
        start.served.append(serve(**extra))
        return start.served[-1].url

    start.served = []
    return start


def test_contract_example_through_gunicorn(gunicorn, database, events):
    url = gunicorn()
    body = CONTRACT_EXAMPLES["request"][1]

    first = post(url, body)
    second = post(url, body)

    assert first.status_code == 200 and first.json()["payment"]["status"] == "succeeded"
    assert second.status_code == 200 and second.headers["Idempotent-Replayed"] == "true"
    assert second.json() == first.json()
    assert len(database.rows()) == 1
    [event] = events.read("payment-succeeded")
    assert_event_of(event, database, first.json()["payment"]["id"], body)
    assert requests.get(f"{url}/health/ready", timeout=5).json()["checks"] == {"database": "ok", "broker": "ok"}


def test_concurrent_duplicates_charge_once(gunicorn, sandbox, database, events):
    url = gunicorn(SIMULATOR_LATENCY_MS="300")
    order_id = new_order(sandbox)
    body = payment_body(order_id)

    with ThreadPoolExecutor(max_workers=16) as pool:
        replies = list(pool.map(lambda _: post(url, body), range(16)))

    statuses = sorted(r.status_code for r in replies)
    assert set(statuses) <= {200, 409}, statuses
    assert 200 in statuses
    ids = {r.json()["payment"]["id"] for r in replies if r.status_code == 200}
    assert len(ids) == 1
    for reply in replies:
        if reply.status_code == 409:
            assert reply.json() == {"success": False, "payment": None,
                                    "errorMessage": "A payment for this order is already in progress"}
    rows = database.rows()
    assert [r["status"] for r in rows] == ["succeeded"]
    [event] = events.read("payment-succeeded")
    assert_event_of(event, database, ids.pop(), body)


def test_sigterm_lets_requests_in_flight_finish(gunicorn, sandbox, database, events):
    url = gunicorn(SIMULATOR_LATENCY_MS="1500")
    order_ids = [new_order(sandbox) for _ in range(6)]
    [served] = gunicorn.served
    master = served.process
    with ThreadPoolExecutor(max_workers=6) as pool:
        futures = [pool.submit(post, url, payment_body(order_id)) for order_id in order_ids]
        # Signal once every request is surely in flight: its pending row exists.
        deadline = time.monotonic() + 10
        while len(database.rows()) < 6 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert [row["status"] for row in database.rows()] == ["pending"] * 6
        master.send_signal(signal.SIGTERM)
        replies = [future.result() for future in futures]
    assert master.wait(30) == 0
    assert [reply.status_code for reply in replies] == [200] * 6
    # Nothing left pending, every event flushed and confirmed before exit.
    assert [row["status"] for row in database.rows()] == ["succeeded"] * 6
    assert database.rows("outbox", "sent_at IS NULL") == []
    assert len(database.rows("outbox")) == 6
    messages = events.read("payment-succeeded")
    assert sorted(e["key"] for e in messages) == sorted(order_ids)
    published = {event["key"]: event for event in messages}
    for order_id, reply in zip(order_ids, replies):
        assert_event_of(published[order_id], database, reply.json()["payment"]["id"], payment_body(order_id))


@pytest.mark.parametrize("command", [
    ["-m", "gunicorn", "app:app", "-c", "gunicorn.conf.py"],
    ["-m", "payment", "serve"],
    ["-m", "payment", "migrate"],
    ["-m", "payment", "relay"],
], ids=["gunicorn", "serve", "migrate", "relay"])
def test_bad_configuration_stops_startup_with_one_json_line(service_env, command):
    env = {**os.environ, **service_env, "PORT": str(free_port()), "DB_POOL_MAX": "lots"}
    result = subprocess.run([sys.executable, *command], cwd=ROOT, env=env, capture_output=True, text=True,
                            timeout=30)
    assert result.returncode != 0
    assert result.stderr == ""
    [line] = [json.loads(text) for text in result.stdout.splitlines()]
    assert line["level"] == "ERROR" and line["logger"] == "payment.startup"
    assert line["message"] == "configuration error: DB_POOL_MAX must be an integer"
    assert line["time"].endswith("Z")
