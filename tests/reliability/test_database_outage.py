"""Database faults: PostgreSQL stopped mid-load. Requests fail fast with a 503
envelope, readiness says so, and payments succeed again within 5 seconds of
the database's return, with no restart of the service."""

from __future__ import annotations

import threading
import time

import requests

from tests.reliability.gateway_faults import FAST_RECONCILER, wait_for
from tests.support import Database, new_order, payment_body

DB_TIMEOUT_S = 1.0
UNAVAILABLE = {"success": False, "payment": None,
               "errorMessage": "Payment processing error: payment database is unavailable"}
# The simulated processor keeps its ledger in the same PostgreSQL: a request
# that reached it while the server went away finds the gateway unavailable.
GATEWAY_UNAVAILABLE = {"success": False, "payment": None,
                       "errorMessage": "Payment processing error: payment gateway is unavailable"}


class Load(threading.Thread):
    """Payments in a loop from 4 clients until stopped; records every answer."""

    def __init__(self, service, sandbox, order_ids):
        super().__init__(daemon=True)
        self.service, self.sandbox, self.order_ids = service, sandbox, order_ids
        self.stopping = threading.Event()
        self.answers: list[tuple[int, float, dict]] = []

    def run(self):
        def client(offset):
            i = offset
            while not self.stopping.is_set() and i < len(self.order_ids):
                started = time.monotonic()
                reply = self.service.post(payment_body(self.order_ids[i]), timeout=15)
                self.answers.append((reply.status_code, time.monotonic() - started, reply.json()))
                i += 4
        threads = [threading.Thread(target=client, args=(n,)) for n in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()


def test_database_stopped_mid_load(own_postgres, serve, service_env, sandbox):
    service = serve({**service_env, "DATABASE_URL": own_postgres.url},
                    **{**FAST_RECONCILER, "DB_TIMEOUT_S": DB_TIMEOUT_S})
    order_ids = [new_order(sandbox) for _ in range(400)]
    load = Load(service, sandbox, order_ids)
    load.start()
    time.sleep(1.0)

    own_postgres.stop()
    stopped_at = len(load.answers)
    time.sleep(2.0)
    ready = requests.get(f"{service.url}/health/ready", timeout=5)
    assert ready.status_code == 503
    assert ready.json()["checks"]["database"] == "unavailable"
    direct = service.post(payment_body(new_order(sandbox)))
    assert direct.status_code == 503 and direct.json() == UNAVAILABLE

    own_postgres.start()
    back_at = time.monotonic()
    while True:
        reply = service.post(payment_body(new_order(sandbox)))
        if reply.status_code == 200:
            break
        assert time.monotonic() - back_at < 5, "payments did not recover within 5 s"
        time.sleep(0.1)
    recovered_in = time.monotonic() - back_at
    time.sleep(0.5)
    load.stopping.set()
    load.join(30)

    during = load.answers[stopped_at:]
    statuses = {status for status, _, _ in load.answers}
    assert statuses <= {200, 502, 503}, statuses
    assert any(status == 503 for status, _, _ in during)
    for status, elapsed, body in load.answers:
        if status == 502:
            assert body == GATEWAY_UNAVAILABLE
        if status == 503:
            assert body == UNAVAILABLE
            # Fail fast: the pool wait plus the work, never a hang.
            assert elapsed < DB_TIMEOUT_S * 2 + 1, elapsed
    print(f"\nDATABASE-OUTAGE answers={len(load.answers)} status_503={sum(s == 503 for s, _, _ in load.answers)} "
          f"max_503_s={max((e for s, e, _ in load.answers if s == 503), default=0):.2f} recovered_in={recovered_in:.2f}s")
    assert recovered_in < 5
    assert requests.get(f"{service.url}/health/ready", timeout=5).status_code == 200
    assert_every_charge_recorded(Database(own_postgres.direct_url), load)


def assert_every_charge_recorded(database, load):
    """Once the reconciler has settled what the outage left pending: every
    charge the gateway took is a succeeded payment, every succeeded payment
    was charged, no order was charged twice, and every 200 is a succeeded row."""
    wait_for(lambda: not database.rows(where="status = 'pending'"), "no payment left pending")
    charged = {row["payment_id"]: row for row in database.rows("simulator_charges")}
    payments = {row["id"]: row for row in database.rows()}
    succeeded = {pid for pid, row in payments.items() if row["status"] == "succeeded"}
    assert {pid for pid, row in charged.items() if row["succeeded"]} == succeeded
    orders = [payments[pid]["order_id"] for pid in succeeded]
    assert len(orders) == len(set(orders)), "an order was charged twice"
    answered = {body["payment"]["id"] for status, _, body in load.answers if status == 200}
    assert answered <= {str(pid) for pid in succeeded}
    print(f"DATABASE-OUTAGE charges={len(charged)} succeeded={len(succeeded)} "
          f"settled_by_reconciler={len(succeeded) - len(answered)}")
