"""What logging and metrics cost one successful POST /payments, in one process:
the service's own code against the earlier way, which is kept here, and only
here, to be measured against (two JSON lines per payment with the date
formatted for each, a `labels()` lookup for every metric write, the pool
gauges sampled on every request).

    python -m bench.telemetry_cost [--requests 20000] [--rounds 7]

A request's telemetry is what a payment with a reservation goes through: the
request id and orderId bound, the ordering and reservation calls timed, the
payment counted, the request counted and timed, its log lines formatted and
written (to /dev/null). Metrics are in prometheus-client's multiprocess mode,
in a temporary PROMETHEUS_MULTIPROC_DIR, as under gunicorn; the pool gauges
come from a real psycopg pool (never opened). Rounds alternate the two ways;
each way's fastest round is reported, in µs per request, at INFO (as deployed)
and at WARNING (no line written: the metrics and the binding alone).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import tempfile
import time
import uuid
from datetime import datetime, timezone
from types import SimpleNamespace

# Neither imports prometheus-client, which must wait for the environment (measure).
from payment import logs
from payment.api.payments import _bind_outcome
from payment.service import Outcome

ROUTE, METHOD, STATUS = "/payments", "POST", 200


# --- the earlier way -----------------------------------------------------------


class OldJsonFormatter(logging.Formatter):
    """payment/logs.py's formatter before: the date formatted and every
    attribute of the record walked for each line, an encoder made per line."""

    def format(self, record: logging.LogRecord) -> str:
        moment = datetime.fromtimestamp(record.created, timezone.utc)
        line = {
            "time": moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "pid": record.process,
        }
        line.update(logs._bound.get())
        for key, value in vars(record).items():
            if key not in logs._RECORD_ATTRIBUTES and not key.startswith("_"):
                line[key] = value
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str, ensure_ascii=False)


def old_metrics(pool_stats):
    """payment/metrics.py's recording before: `labels()` on every write, the
    pool sampled on every request."""
    from payment.metrics import Metrics

    class OldMetrics(Metrics):
        def request_done(self, route, method, status, seconds):
            self.http_requests.labels(route, method, str(status)).inc()
            self.http_duration.labels(route, method).observe(seconds)
            self.sample_pool()

        def payment_settled(self, payment, replayed=False):
            self.payments.labels(payment.status, payment.error_code or "").inc()

        def upstream_call(self, service, seconds, error_kind=None):
            self.upstream_duration.labels(service).observe(seconds)
            if error_kind:
                self.upstream_errors.labels(service, error_kind).inc()

    return OldMetrics(pool_stats=pool_stats)


def old_request(metrics, payment) -> None:
    """The resource's "payment succeeded" line, then the access line."""
    started = time.perf_counter()
    token = logs.bind(requestId="bench-request-1")
    logs.bind(orderId=str(payment.order_id))
    metrics.upstream_call("ordering", 0.004)
    metrics.upstream_call("reservation", 0.003)
    metrics.payment_settled(payment)
    logging.getLogger("payment.api.payments").info("payment succeeded", extra={
        "paymentId": str(payment.id), "orderId": str(payment.order_id),
        "paymentStatus": payment.status, "errorCode": payment.error_code,
    })
    seconds = time.perf_counter() - started
    metrics.request_done(ROUTE, METHOD, STATUS, seconds)
    logging.getLogger("payment.access").log(logging.INFO, "request", extra={
        "method": METHOD, "path": ROUTE, "route": ROUTE, "status": STATUS,
        "durationMs": round(seconds * 1000, 1),
    })
    logs.unbind(token)


# --- the service's way ---------------------------------------------------------


def new_request(metrics, middleware, payment) -> None:
    """The same steps through the service's code: the resource binds the
    outcome, the telemetry middleware counts the request and writes its line."""
    req = SimpleNamespace(context=SimpleNamespace(), uri_template=ROUTE, method=METHOD, path=ROUTE)
    resp = SimpleNamespace(status_code=STATUS)
    token = logs.bind(requestId="bench-request-1")
    middleware.process_request(req, resp)
    logs.bind(orderId=str(payment.order_id))
    metrics.upstream_call("ordering", 0.004)
    metrics.upstream_call("reservation", 0.003)
    metrics.payment_settled(payment)
    _bind_outcome(Outcome(payment))
    middleware.process_response(req, resp, None, True)
    logs.unbind(token)


# --- measuring -----------------------------------------------------------------


def per_request_us(request, requests: int) -> float:
    started = time.perf_counter()
    for _ in range(requests):
        request()
    return (time.perf_counter() - started) / requests * 1e6


def measure(requests: int, rounds: int) -> str:
    # Imported only now: prometheus-client picks its multiprocess mode from
    # the environment when first imported.
    from psycopg_pool import ConnectionPool

    from payment.api.telemetry import TelemetryMiddleware
    from payment.logs import JsonFormatter
    from payment.metrics import Metrics

    pool = ConnectionPool("host=127.0.0.1 dbname=telemetry_cost", open=False, min_size=4, max_size=8)
    payment = SimpleNamespace(id=uuid.uuid4(), order_id=uuid.uuid4(), status="succeeded", error_code=None)
    old = old_metrics(pool.get_stats)
    new = Metrics(pool_stats=pool.get_stats)
    middleware = TelemetryMiddleware(new)
    devnull = open(os.devnull, "w")
    handlers = {}
    for name, formatter in (("old", OldJsonFormatter()), ("new", JsonFormatter())):
        handlers[name] = logging.StreamHandler(devnull)
        handlers[name].setFormatter(formatter)
    ways = {"old": lambda: old_request(old, payment), "new": lambda: new_request(new, middleware, payment)}

    root = logging.getLogger()
    kept_handlers, kept_level = root.handlers, root.level
    lines = [f"{requests} requests a round, best of {rounds} rounds, pid {os.getpid()}"]
    try:
        for level in (logging.INFO, logging.WARNING):
            root.setLevel(level)
            best = {"old": float("inf"), "new": float("inf")}
            for name, request in ways.items():  # first calls: label children, caches
                root.handlers = [handlers[name]]
                per_request_us(request, 1000)
            for _ in range(rounds):
                for name, request in ways.items():
                    root.handlers = [handlers[name]]
                    best[name] = min(best[name], per_request_us(request, requests))
            lines.append(f"{logging.getLevelName(level):8} old {best['old']:6.1f} µs/request   "
                         f"new {best['new']:6.1f} µs/request   new/old {best['new'] / best['old']:.2f}")
    finally:
        root.handlers = kept_handlers
        root.setLevel(kept_level)
        devnull.close()
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=20000, help="requests a round")
    parser.add_argument("--rounds", type=int, default=7, help="rounds of each way, alternated")
    args = parser.parse_args()
    directory = tempfile.mkdtemp(prefix="telemetry-cost-")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = directory
    try:
        print(measure(args.requests, args.rounds))
    finally:
        shutil.rmtree(directory)


if __name__ == "__main__":
    main()
