"""Sequential payments through a transaction-pooling PgBouncer with two
server connections: what the service answers, whether it is ready, and the
exceptions it logged.

    python -m bench.through_pgbouncer --count 60
    python -m bench.through_pgbouncer --count 60 --ignore-startup-parameters extra_float_digits,options

PgBouncer comes from this tree's devstack/__init__.py, loaded by its path, so
that the service measured may come from another tree on PYTHONPATH (an older
commit, say: `git archive <commit> | tar -x -C /tmp/old`, then
`PYTHONPATH=/tmp/old python bench/through_pgbouncer.py`). The database is
BENCH_DATABASE_URL, else TEST_DATABASE_URL; its schema must exist.
"""

from __future__ import annotations

import argparse
import collections
import importlib.util
import json
import logging
import os
import sys
import threading
import uuid
from pathlib import Path

CUSTOMER = "a8098c1a-f86e-11da-bd1a-00112444be1e"


def load_devstack():
    path = Path(__file__).resolve().parents[1] / "payment" / "devstack.py"
    spec = importlib.util.spec_from_file_location("pgbouncer_devstack", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


class ExceptionCounter(logging.Handler):
    def __init__(self):
        super().__init__()
        self.counts = collections.Counter()

    def emit(self, record):
        if record.exc_info and record.exc_info[0]:
            self.counts[record.exc_info[0].__name__] += 1


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--count", type=int, default=60)
    parser.add_argument("--ignore-startup-parameters", default="extra_float_digits")
    args = parser.parse_args()
    server_url = os.environ.get("BENCH_DATABASE_URL") or os.environ["TEST_DATABASE_URL"]

    import requests
    import webtest

    from devstack.sandbox import make_sandbox_server
    from payment.bootstrap import build_web
    from payment.config import Config
    from payment.outbox.producer import ensure_topics

    devstack = load_devstack()
    logged = ExceptionCounter()
    logging.getLogger().addHandler(logged)
    logging.getLogger().setLevel(logging.WARNING)
    bouncer = devstack.start_pgbouncer(server_url, pool_size=2,
                                       ignore_startup_parameters=args.ignore_startup_parameters)
    port = devstack.free_port()
    broker = devstack.start_broker(port)
    sandbox = make_sandbox_server()
    threading.Thread(target=sandbox.serve_forever, daemon=True).start()
    sandbox_url = f"http://127.0.0.1:{sandbox.server_port}"
    try:
        ensure_topics(f"127.0.0.1:{port}", ["payment-succeeded", "payment-failed"])
        web = build_web(Config.from_env({
            "DATABASE_URL": bouncer.url_for(server_url), "KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{port}",
            "ORDERING_SERVICE_URL": sandbox_url, "DB_TIMEOUT_S": "1", "DB_POOL_MAX": "3"}), start_relay=False)
        app = webtest.TestApp(web.app)
        ready = app.get("/health/ready", expect_errors=True).status_int
        statuses = collections.Counter()
        for _ in range(args.count):
            order = str(uuid.uuid4())
            requests.put(f"{sandbox_url}/orders/{order}", timeout=5, json={
                "id": order, "customerId": CUSTOMER, "totalAmount": 150.00, "currency": "USD",
                "status": "pending"}).raise_for_status()
            body = json.dumps({"orderId": order, "customerId": CUSTOMER, "amount": 150.00,
                               "currency": "USD", "paymentMethod": "credit_card"})
            statuses[app.post("/payments", params=body, content_type="application/json",
                              expect_errors=True).status_int] += 1
        web.close(timeout=2)
        print(f"ignore_startup_parameters = {args.ignore_startup_parameters}: /health/ready {ready}; "
              f"answers {dict(statuses)}; exceptions logged {dict(logged.counts)}")
    finally:
        bouncer.stop()
        devstack.stop(broker)
        sandbox.shutdown()


if __name__ == "__main__":
    main()
