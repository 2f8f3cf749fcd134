"""The service as deployed: gunicorn with gunicorn.conf.py on a real port."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests

from payment import jsonio
from payment.devstack import free_port, wait_for_port
from tests.contract_examples import CONTRACT_EXAMPLES
from tests.support import new_order, payment_body

ROOT = Path(__file__).resolve().parents[2]


def start_gunicorn(env: dict, port: int, **extra) -> subprocess.Popen:
    full_env = {**os.environ, **env, "PORT": str(port), "WEB_CONCURRENCY": "2", **extra}
    process = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "app:app", "-c", "gunicorn.conf.py"],
        cwd=ROOT, env=full_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    wait_for_port(port, timeout=30, process=process)
    wait_for_worker(f"http://127.0.0.1:{port}", process)
    return process


def wait_for_worker(url: str, process: subprocess.Popen, timeout: float = 30) -> None:
    """The master listens before any worker has imported the app; a request
    sent then waits in the backlog, and a SIGTERM in that window resets it."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.poll() is None:
        try:
            if requests.get(f"{url}/health/live", timeout=2).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"no gunicorn worker answered at {url}")


@pytest.fixture
def gunicorn(service_env, database, sandbox, events):
    processes = []

    def start(**extra):
        port = free_port()
        processes.append(start_gunicorn(service_env, port, **extra))
        return f"http://127.0.0.1:{port}"

    start.processes = processes

    yield start
    for process in processes:
        if process.poll() is None:
            process.terminate()
            process.wait(30)


def post(url, body):
    return requests.post(f"{url}/payments", data=jsonio.dumps(body),
                         headers={"Content-Type": "application/json"}, timeout=15)


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
    assert event["value"]["paymentId"] == first.json()["payment"]["id"]
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
    assert len(events.read("payment-succeeded")) == 1


def test_sigterm_lets_requests_in_flight_finish(gunicorn, sandbox, database, events):
    url = gunicorn(SIMULATOR_LATENCY_MS="1500")
    order_id = new_order(sandbox)
    [master] = gunicorn.processes
    with ThreadPoolExecutor(max_workers=1) as pool:
        future = pool.submit(post, url, payment_body(order_id))
        time.sleep(0.5)
        master.send_signal(signal.SIGTERM)
        reply = future.result()
    assert master.wait(30) == 0
    assert reply.status_code == 200
    [row] = database.rows()
    assert row["status"] == "succeeded"
    [outbox] = database.rows("outbox")
    assert outbox["sent_at"] is not None
    assert len(events.read("payment-succeeded")) == 1


def test_bad_configuration_stops_startup_with_one_line(service_env):
    env = {**os.environ, **service_env, "PORT": str(free_port()), "DB_POOL_MAX": "lots"}
    result = subprocess.run([sys.executable, "-m", "gunicorn", "app:app", "-c", "gunicorn.conf.py"],
                            cwd=ROOT, env=env, capture_output=True, text=True, timeout=30)
    assert result.returncode != 0
    assert "payment-service: configuration error: DB_POOL_MAX must be an integer" in result.stderr
