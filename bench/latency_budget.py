"""Where the time of one POST /payments goes, one request at a time.

    python -m bench.latency_budget [--payments 400]

The bench stack of `make bench` (bench/run.py: the database of
BENCH_DATABASE_URL or TEST_DATABASE_URL, a Tansu broker, bench/upstream.py),
then two measurements of the same payments, one request at a time:

1. **Served**: gunicorn with gunicorn.conf.py, one keep-alive HTTP client;
   the time from sending the request to the last byte of the answer.
2. **In process**: the WSGI app built as a worker builds it, called directly
   (no socket, no gunicorn), each collaborator the service uses wrapped in
   a timer: the idempotency look-up, the order and reservation calls, the
   pending insert, the gateway, the settling statement, the event's produce
   and delivery report. What is left of the app's time is the HTTP layer's
   own work: falcon, reading and checking the body, the answer's JSON, the
   access line and metrics.

Prints the CPU the in-process app spent per payment (all its threads:
the request's, the reservation call's, the producer's and the marker's),
the median of each part in ms and the share of the served median.
The reservation's request is sent before the order call and its answer read
after it (payment/service.py): the send (`reservations.start_reservation`) and
the wait for the answer once the order is in (`….result`) are both the
request thread's time, and both in the sum.
"""

from __future__ import annotations

import argparse
import http.client
import io
import os
import statistics
import tempfile
import time
import uuid
from collections import defaultdict
from pathlib import Path

import devstack
from bench.run import AMOUNT, CUSTOMER_ID, Service, empty_tables, start_stack
from payment.bootstrap import build_web
from payment.config import Config

BODY = ('{"orderId":"%s","customerId":"' + CUSTOMER_ID + '","reservationId":"f47ac10b-58cc-4372-a567-0e02b2c3d479",'
        '"amount":' + AMOUNT + ',"currency":"USD","paymentMethod":"credit_card"}')


class Timed:
    """A collaborator whose method calls are timed into `spent[name.method]`."""

    def __init__(self, name: str, inner, spent: dict):
        self._name, self._inner, self._spent = name, inner, spent

    def __getattr__(self, attr):
        value = getattr(self._inner, attr)
        if not callable(value):
            return value
        key = f"{self._name}.{attr}"

        def timed(*args, **kwargs):
            began = time.perf_counter()
            try:
                result = value(*args, **kwargs)
            finally:
                self._spent[key] += time.perf_counter() - began
            # A call sent and read later (upstream.Pending): its reading is timed too.
            return Timed(key, result, self._spent) if hasattr(result, "abandon") else result
        return timed


def served(port: int, payments: int) -> list[float]:
    conn = http.client.HTTPConnection("127.0.0.1", port)
    samples = []
    for _ in range(payments):
        body = (BODY % uuid.uuid4()).encode()
        began = time.perf_counter()
        conn.request("POST", "/payments", body=body, headers={"Content-Type": "application/json"})
        response = conn.getresponse()
        response.read()
        samples.append(time.perf_counter() - began)
        if response.status != 200:
            raise RuntimeError(f"payment answered {response.status}")
    conn.close()
    return samples


def in_process(stack, payments: int) -> tuple[list[float], dict[str, list[float]], float]:
    env = {**os.environ, "DATABASE_URL": stack.database_url, "KAFKA_BOOTSTRAP_SERVERS": stack.bootstrap,
           "ORDERING_SERVICE_URL": stack.upstream_url, "RESERVATION_SERVICE_URL": stack.upstream_url,
           "SIMULATOR_LATENCY_MS": "0", "LOG_LEVEL": "INFO"}
    built = build_web(Config.from_env(env), start_relay=False)
    deps = built.core.deps
    spent: dict[str, float] = defaultdict(float)
    for name in ("store", "ordering", "reservations", "gateway", "delivery"):
        setattr(deps, name, Timed(name, getattr(deps, name), spent))
    totals, parts = [], defaultdict(list)
    cpu_began = 0.0
    try:
        for n in range(payments + 20):
            if n == 20:
                cpu_began = time.process_time()
            spent.clear()
            body = (BODY % uuid.uuid4()).encode()
            environ = {
                "REQUEST_METHOD": "POST", "PATH_INFO": "/payments", "QUERY_STRING": "", "SERVER_NAME": "bench",
                "SERVER_PORT": "80", "SERVER_PROTOCOL": "HTTP/1.1", "wsgi.url_scheme": "http",
                "CONTENT_TYPE": "application/json", "CONTENT_LENGTH": str(len(body)),
                "wsgi.input": io.BytesIO(body), "wsgi.errors": io.StringIO(),
            }
            status = []
            began = time.perf_counter()
            b"".join(built.app(environ, lambda s, h, exc_info=None: status.append(s)))
            elapsed = time.perf_counter() - began
            if not status[0].startswith("200"):
                raise RuntimeError(f"payment answered {status[0]}")
            if n < 20:
                continue  # warm-up: connections, metadata
            totals.append(elapsed)
            for key, seconds in spent.items():
                parts[key].append(seconds)
        cpu = (time.process_time() - cpu_began) / payments
    finally:
        built.close()
    return totals, parts, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--payments", type=int, default=400)
    args = parser.parse_args()
    stack = start_stack(Path(tempfile.mkdtemp(prefix="payment-budget-")))
    try:
        empty_tables(stack.database_url)
        service = Service(stack)
        service.start()
        try:
            served(service.port, 20)
            http_samples = served(service.port, args.payments)
        finally:
            service.stop()
        totals, parts, cpu = in_process(stack, args.payments)
    finally:
        devstack.stop(stack.upstream)
        devstack.stop(stack.broker)
        empty_tables(stack.database_url)
    median = statistics.median
    whole = median(http_samples)
    app = median(totals)
    rows = [(key, median(values)) for key, values in sorted(parts.items(), key=lambda kv: -median(kv[1]))]
    counted = sum(v for k, v in rows)
    print(f"served, one request at a time: median {whole * 1000:.2f} ms (p90 "
          f"{sorted(http_samples)[int(len(http_samples) * 0.9)] * 1000:.2f} ms)")
    print(f"in process: median {app * 1000:.2f} ms, CPU of the process (all its threads) {cpu * 1000:.2f} ms per payment")
    print(f"{'part':42} {'ms':>7} {'share':>6}")
    print(f"{'gunicorn, sockets, HTTP parsing (served − app)':42} {(whole - app) * 1000:7.2f} {(whole - app) / whole:6.0%}")
    for key, value in rows:
        print(f"{key:42} {value * 1000:7.2f} {value / whole:6.0%}")
    print(f"{'HTTP layer: falcon, body, JSON, logs, metrics':42} {(app - counted) * 1000:7.2f} "
          f"{(app - counted) / whole:6.0%}")


if __name__ == "__main__":
    main()
