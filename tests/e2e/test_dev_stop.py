"""Ctrl-C under `make run` (`python -m devstack`), as a terminal sends it: SIGINT
to the whole foreground process group. A payment in flight finishes, the
service stops before the broker it publishes to, and nothing on the way
logs a warning or an error."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from devstack import free_port, wait_for_port
from payment import jsonio
from tests.support import ROOT, Sandbox, new_order, payment_body
from tests.timing import eventually

# The sandbox answers each order this late: the payment is in flight when Ctrl-C comes.
LATENCY_MS = 2500


def worrying(line: str) -> bool:
    """A line at WARNING or above: a JSON line by its level, any other by its words."""
    if line.startswith("{"):
        return json.loads(line)["level"] in ("WARNING", "ERROR", "CRITICAL")
    return any(word in line for word in ("WARNING", "ERROR", "Traceback", "Error"))


def test_ctrl_c_lets_a_payment_in_flight_finish_and_stops_quietly(server_url, database, tmp_path, processes):
    service_port, broker_port, sandbox_port = free_port(), free_port(), free_port()
    env = {**os.environ, "DATABASE_URL": server_url, "PORT": str(service_port), "WEB_CONCURRENCY": "1",
           "DEV_KAFKA_PORT": str(broker_port), "DEV_SANDBOX_PORT": str(sandbox_port)}
    for name in ("PROMETHEUS_MULTIPROC_DIR", "KAFKA_BOOTSTRAP_SERVERS", "ORDERING_SERVICE_URL"):
        env.pop(name, None)
    # A session of its own: its process group is the terminal's foreground group.
    stack = processes.add(subprocess.Popen(
        [sys.executable, "-m", "devstack", "--data-dir", str(tmp_path)], cwd=ROOT, env=env,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True))
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(line.rstrip("\n") for line in stack.stdout), daemon=True)
    reader.start()

    wait_for_port(service_port, timeout=60, process=stack)
    url = f"http://127.0.0.1:{service_port}"
    eventually(lambda: requests.get(f"{url}/health/ready", timeout=2).status_code == 200, "ready", timeout_s=30)
    sandbox = Sandbox(f"http://127.0.0.1:{sandbox_port}")
    order_id = new_order(sandbox)
    sandbox.latency(LATENCY_MS)

    with ThreadPoolExecutor(1) as pool:
        paying = pool.submit(requests.post, f"{url}/payments", data=jsonio.dumps(payment_body(order_id)),
                             headers={"Content-Type": "application/json"}, timeout=30)
        eventually(lambda: sandbox.calls() != [], "the order asked for", timeout_s=10)
        os.killpg(stack.pid, signal.SIGINT)
        started = time.monotonic()
        reply = paying.result()

    assert reply.status_code == 200, reply.text
    assert reply.json()["payment"]["status"] == "succeeded"
    assert stack.wait(60) == 0
    reader.join(5)
    assert time.monotonic() - started < 30
    assert [row["status"] for row in database.rows()] == ["succeeded"]
    # gunicorn was asked to drain (TERM), not to quit (INT, QUIT).
    records = [json.loads(line) for line in lines if line.startswith("{")]
    assert any(r["message"] == "Handling signal: term" for r in records), "\n".join(lines)
    assert not any(r["message"] in ("Handling signal: int", "Handling signal: quit") for r in records)
    assert [line for line in lines if worrying(line)] == []
    # Everything it started is gone.
    for port in (service_port, broker_port, sandbox_port):
        with pytest.raises(requests.ConnectionError):
            requests.get(f"http://127.0.0.1:{port}/", timeout=1)
