"""What operators rely on, against the service as deployed (`python -m payment
serve`: gunicorn, two workers): JSON log lines, request ids passed upstream,
metrics that add up across workers, and the image's health check command."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from contextlib import contextmanager

import requests
from prometheus_client.parser import text_string_to_metric_families
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from devstack import free_port
from payment import jsonio
from tests.support import new_order, payment_body

CANARY = "canary-pw-3f9c"


def test_every_line_is_json_with_request_ids_and_no_secret(serve, service_env, sandbox):
    # The test server trusts local connections, so a password is accepted and
    # ignored: it can only show up in the output if the service printed it.
    url = make_conninfo(**{**conninfo_to_dict(service_env["DATABASE_URL"]), "password": CANARY})
    served = serve(DATABASE_URL=url)
    order_id = new_order(sandbox)

    reply = requests.post(f"{served.url}/payments", data=jsonio.dumps(payment_body(order_id)), timeout=15,
                          headers={"Content-Type": "application/json", "X-Request-ID": "e2e-req-1"})
    assert reply.status_code == 200 and reply.headers["X-Request-ID"] == "e2e-req-1"
    assert sandbox.request_ids() == ["e2e-req-1"]
    assert served.stop() == 0

    records = served.records()  # raises on any line that is not JSON
    assert all(isinstance(r, dict) and {"time", "level", "logger", "message"} <= set(r) for r in records)
    assert not any(CANARY in line for line in served.lines())
    # The payment's one line: the access line, carrying what became of it.
    [access] = [r for r in records if r.get("requestId") == "e2e-req-1" and r["level"] == "INFO"]
    assert access["message"] == "request" and access["route"] == "/payments" and access["status"] == 200
    assert access["orderId"] == order_id and access["paymentId"] == reply.json()["payment"]["id"]
    assert access["paymentOutcome"] == "succeeded" and access["paymentStatus"] == "succeeded"
    [migrated] = [r for r in records if r["message"] == "schema applied; topics ready"]
    assert "password=***" in migrated["database"]
    # One start-up line, first of the service's own, says what this instance is.
    [started] = [r for r in records if r["logger"] == "payment.startup"]
    assert records.index(started) < records.index(migrated)
    assert started["message"] == ("payment service starting: gateway simulator, authorization off, database pool "
                                  "1 to 8, topics payment-succeeded, payment-failed")
    assert (started["gateway"], started["authorization"]) == ("simulator", "off")
    assert started["authorizationEnabled"] is False
    assert (started["dbPoolMin"], started["dbPoolMax"], started["workers"], started["threads"]) == (1, 8, 2, 8)
    assert started["topics"] == ["payment-succeeded", "payment-failed"]
    assert "password=***" in started["database"]
    # A run and a normal stop: nothing at WARNING or above.
    assert [r for r in records if r["level"] not in ("DEBUG", "INFO")] == []
    assert any(r["logger"] == "gunicorn.error" and "Booting worker" in r["message"] for r in records)


def test_metrics_add_up_across_workers(serve):
    served = serve(DB_POOL_MAX="3")
    first, second = served.worker_pids()

    with only(served, first):
        missing(served, 3)
    with only(served, second):
        missing(served, 4)
    with only(served, first):
        from_first = scrape(served)
    with only(served, second):
        from_second = scrape(served)

    assert lookups_404(from_first) == lookups_404(from_second) == 7
    assert from_first[("payment_db_pool_max_connections", ())] == 6

    # A worker that dies keeps its counts, and its pool leaves the sums.
    os.kill(first, signal.SIGKILL)
    served.wait_for(lambda: len(served.worker_pids()) == 3, "a new worker")
    third = served.worker_pids()[-1]
    with only(served, third):
        missing(served, 1)
        after = scrape(served)
    assert lookups_404(after) == 8
    assert after[("payment_db_pool_max_connections", ())] == 6


def test_the_health_check_command(serve):
    served = serve()
    env = dict(served.env)
    for extra in ([], ["--ready"]):
        assert subprocess.run([sys.executable, "-m", "payment", "healthcheck", *extra], env=env).returncode == 0
    env["PORT"] = str(free_port())
    assert subprocess.run([sys.executable, "-m", "payment", "healthcheck", "--timeout", "1"], env=env).returncode == 1


# --- helpers ----------------------------------------------------------------


@contextmanager
def only(served, pid: int):
    """Only this worker takes connections: the others are stopped meanwhile."""
    others = [p for p in served.worker_pids() if p != pid and _alive(p)]
    for other in others:
        os.kill(other, signal.SIGSTOP)
    try:
        yield
    finally:
        for other in others:
            os.kill(other, signal.SIGCONT)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False


def missing(served, count: int) -> None:
    for _ in range(count):
        # A new connection each time, so the worker that takes it is the one running.
        response = requests.get(f"{served.url}/payments/00000000-0000-4000-8000-000000000000", timeout=10,
                                headers={"Connection": "close"})
        assert response.status_code == 404


def scrape(served) -> dict:
    response = requests.get(f"{served.url}/metrics", timeout=10, headers={"Connection": "close"})
    assert response.status_code == 200
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(response.text) for s in family.samples}


def lookups_404(samples) -> float:
    labels = (("method", "GET"), ("route", "/payments/{paymentId}"), ("status", "404"))
    return samples.get(("payment_http_requests_total", labels), 0.0)
