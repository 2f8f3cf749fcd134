"""The service's Prometheus metrics.

Under gunicorn every worker is a process of its own, so counters and
histograms are kept in prometheus-client's multiprocess mode: each worker
writes its values to files in PROMETHEUS_MULTIPROC_DIR (made afresh by
gunicorn.conf.py at every start) and a scrape, whichever worker answers it,
adds up the files of all of them. Without that variable (a single process,
as in the tests) the values stay in this object's own registry.

In that mode every change is a write to the worker's file under a lock, so
a request writes only what it counts (the request, the payment, the upstream
calls), through label children looked up once, and the pool gauges are
sampled at most once a second per worker (and whenever the worker answers a
scrape), not on every request.

The outbox figures are read from the database when scraped: they describe
the database, not a worker.
"""

from __future__ import annotations

import logging
import os
import re
import time
from collections.abc import Callable, Iterable
from typing import Generic, TypeVar

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4
from prometheus_client.metrics import MetricWrapperBase
from prometheus_client.multiprocess import MultiProcessCollector

from payment.errors import PaymentError
from payment.model import Payment, Refund

log = logging.getLogger(__name__)

# Prometheus' classic text format, which every Prometheus version scrapes.
CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

# The pool gauges describe a moment; a second old is as good to a scrape
# every few seconds, and sampling costs four writes and the pool's lock.
POOL_SAMPLE_INTERVAL_S = 1.0


def error_code(error: PaymentError) -> str:
    """`OrderNotFound` -> `ORDER_NOT_FOUND`: a stable label for each error kind."""
    return re.sub(r"(?<!^)(?=[A-Z])", "_", type(error).__name__).upper()


def error_kind(error: PaymentError) -> str:
    """The error's `kind`, else its class name in snake case (`upstream_timeout`)."""
    return error.kind or error_code(error).lower()


# The route label of a request the gunicorn worker answers itself, before
# the app has read it (payment/server/read_ahead_worker.py): no route is known.
UNREAD_ROUTE = "unread"


M = TypeVar("M", bound=MetricWrapperBase)


class _Children(dict[tuple[object, ...], M], Generic[M]):
    """A labelled metric's children by label values, each looked up once:
    `labels()` checks and converts the values and takes a lock every time.
    The label values a request can bring are few (route templates, methods,
    statuses, outcomes), so the dict stays small."""

    def __init__(self, metric: M) -> None:
        super().__init__()
        self.metric = metric

    def __missing__(self, values: tuple[object, ...]) -> M:
        child = self[values] = self.metric.labels(*values)
        return child


class Metrics:
    def __init__(self, *, pool_stats: Callable[[], dict[str, int]] | None = None,
                 outbox_backlog: Callable[[], tuple[int, float | None]] | None = None,
                 overdue_payments: Callable[[], int] | None = None,
                 overdue_refunds: Callable[[], int] | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.pool_stats = pool_stats
        self.outbox_backlog = outbox_backlog
        self.overdue_payments = overdue_payments
        self.overdue_refunds = overdue_refunds
        self.clock = clock
        self._pool_sample_due = float("-inf")
        self.registry = CollectorRegistry()
        r = self.registry
        self.http_requests = Counter(
            "payment_http_requests", "HTTP requests answered, by route template, method and status.",
            ["route", "method", "status"], registry=r)
        self.refusals = Counter(
            "payment_http_refusals", "Requests answered with a 4xx, by route template and kind: what was wrong "
            "with the request (schema, json, too_large, content_type, auth_missing, auth_expired, ...).",
            ["route", "kind"], registry=r)
        self.http_duration = Histogram(
            "payment_http_request_duration_seconds", "Time to answer an HTTP request, by route template and method.",
            ["route", "method"], buckets=_LATENCY_BUCKETS, registry=r)
        self.payments = Counter(
            "payment_payments", "POST /payments outcomes: succeeded, failed (declined), replayed, rejected "
            "(any other 4xx) or error (5xx), with the gateway's errorCode or the kind of error.",
            ["outcome", "error_code"], registry=r)
        self.upstream_duration = Histogram(
            "payment_upstream_request_duration_seconds", "Calls to the ordering and reservation services.",
            ["service"], buckets=_LATENCY_BUCKETS, registry=r)
        self.upstream_errors = Counter(
            "payment_upstream_errors", "Failed calls to the ordering and reservation services, by kind.",
            ["service", "kind"], registry=r)
        self.reconciliations = Counter(
            "payment_reconciliations", "Overdue pending payments the reconciler asked the gateway about, by "
            "answer: charged, declined, never_charged, or unknown (the payment stays pending).",
            ["result"], registry=r)
        self.gateway_errors = Counter(
            "payment_gateway_errors", "Failed calls to the payment gateway, by kind: auth, permission, "
            "rate_limit, network, server, idempotency, invalid_request, other (payment/gateways/stripe_health.py). "
            "A decline is not an error.",
            ["kind"], registry=r)
        self.webhooks = Counter(
            "payment_gateway_webhooks", "Webhook deliveries from the payment gateway, by result: settled, "
            "already_settled, duplicate, ignored, refused (a missing, bad or stale signature).",
            ["result"], registry=r)
        self.refunds = Counter(
            "payment_refunds", "POST /payments/{paymentId}/refunds outcomes: succeeded, failed (refused by "
            "the gateway), replayed, rejected (4xx) or error (5xx), with the errorCode or the kind of error.",
            ["outcome", "error_code"], registry=r)
        self.refund_reconciliations = Counter(
            "payment_refund_reconciliations", "Overdue pending refunds the reconciler asked the gateway about, "
            "by answer: refunded, refused, never_refunded, or unknown (the refund stays pending).",
            ["result"], registry=r)
        # Gauges of a worker's own pool; `livesum` adds up the workers alive.
        self.pool_connections = Gauge(
            "payment_db_pool_connections", "Database connections held by the pools, in use or idle.",
            ["state"], multiprocess_mode="livesum", registry=r)
        self.pool_max = Gauge(
            "payment_db_pool_max_connections", "The most connections the pools may open.",
            multiprocess_mode="livesum", registry=r)
        self.pool_waiting = Gauge(
            "payment_db_pool_requests_waiting", "Requests waiting for a database connection.",
            multiprocess_mode="livesum", registry=r)
        self._http_requests = _Children(self.http_requests)
        self._http_duration = _Children(self.http_duration)
        self._refusals = _Children(self.refusals)
        self._payments = _Children(self.payments)
        self._upstream_duration = _Children(self.upstream_duration)
        self._upstream_errors = _Children(self.upstream_errors)
        self._refunds = _Children(self.refunds)

    # --- recording -----------------------------------------------------------

    def request_done(self, route: str, method: str, status: int, seconds: float,
                     kind: str | None = None) -> None:
        """One request answered; `kind`, for a 4xx, what was wrong with it."""
        self._http_requests[route, method, status].inc()
        self._http_duration[route, method].observe(seconds)
        if 400 <= status < 500:
            self._refusals[route, kind or "other"].inc()
        if self.clock() >= self._pool_sample_due:
            self.sample_pool()

    def refused_unread(self, method: str, status: int, kind: str, *, payment_code: str | None) -> None:
        """A request the gunicorn worker answered itself, before the app read
        it (408, 413, 431, a malformed chunked body): counted as the app
        counts its own answers, under the route UNREAD_ROUTE, and as a
        rejected payment (`payment_code`) when its request line was POST /payments."""
        self._http_requests[UNREAD_ROUTE, method, status].inc()
        self._refusals[UNREAD_ROUTE, kind].inc()
        if payment_code:
            self._payments["rejected", payment_code].inc()

    def payment_settled(self, payment: Payment, replayed: bool = False) -> None:
        if replayed:
            self._payments["replayed", ""].inc()
        else:
            self._payments[payment.status, payment.error_code or ""].inc()

    def payment_refused(self, code: str, status: int) -> None:
        """A POST /payments answered with an error, whatever refused it."""
        self._payments["error" if status >= 500 else "rejected", code].inc()

    def refund_settled(self, refund: Refund, replayed: bool = False) -> None:
        if replayed:
            self._refunds["replayed", ""].inc()
        else:
            self._refunds[refund.status, refund.error_code or ""].inc()

    def refund_refused(self, code: str, status: int) -> None:
        """A POST /payments/{paymentId}/refunds answered with an error, whatever refused it."""
        self._refunds["error" if status >= 500 else "rejected", code].inc()

    def refund_reconciled(self, result: str) -> None:
        self.refund_reconciliations.labels(result).inc()

    def upstream_call(self, service: str, seconds: float, error_kind: str | None = None) -> None:
        self._upstream_duration[(service,)].observe(seconds)
        if error_kind:
            self._upstream_errors[service, error_kind].inc()

    def reconciled(self, result: str) -> None:
        self.reconciliations.labels(result).inc()

    def gateway_error(self, kind: str) -> None:
        self.gateway_errors.labels(kind).inc()

    def webhook(self, result: str) -> None:
        self.webhooks.labels(result).inc()

    def sample_pool(self) -> None:
        """Set the pool gauges from the pool as it is now."""
        if self.pool_stats is None:
            return
        # Several threads may find a sample due at once; one extra sample is harmless.
        self._pool_sample_due = self.clock() + POOL_SAMPLE_INTERVAL_S
        stats = self.pool_stats()
        size, idle = stats.get("pool_size", 0), stats.get("pool_available", 0)
        self.pool_connections.labels("in_use").set(size - idle)
        self.pool_connections.labels("idle").set(idle)
        self.pool_max.set(stats.get("pool_max", 0))
        self.pool_waiting.set(stats.get("requests_waiting", 0))

    # --- exposition ----------------------------------------------------------

    def exposition(self) -> bytes:
        self.sample_pool()
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            registry = CollectorRegistry()
            MultiProcessCollector(registry)
        else:
            registry = CollectorRegistry()
            registry.register(_Own(self.registry))
        registry.register(_OutboxCollector(self.outbox_backlog))
        registry.register(_OverdueCollector(self.overdue_payments, OVERDUE_PAYMENTS))
        registry.register(_OverdueCollector(self.overdue_refunds, OVERDUE_REFUNDS))
        return generate_latest(registry)


class _Own:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry

    def collect(self) -> Iterable[Metric]:
        return self.registry.collect()


class _OutboxCollector:
    def __init__(self, backlog: Callable[[], tuple[int, float | None]] | None) -> None:
        self.backlog = backlog

    def collect(self) -> Iterable[Metric]:
        if self.backlog is None:
            return
        try:
            unsent, oldest_age = self.backlog()
        except PaymentError:
            # The database is away: no figure rather than a wrong one.
            log.warning("outbox backlog not available for metrics")
            return
        yield GaugeMetricFamily("payment_outbox_unsent_events",
                                "Events committed to the outbox and not yet confirmed by the broker.",
                                value=unsent)
        yield GaugeMetricFamily("payment_outbox_oldest_unsent_age_seconds",
                                "Age of the oldest unsent outbox event; 0 when none is waiting.",
                                value=oldest_age or 0.0)


# (name, help, what) of the gauges of what is still pending past PENDING_TIMEOUT_S.
OVERDUE_PAYMENTS = ("payment_pending_overdue_payments",
                    "Payments still pending past PENDING_TIMEOUT_S: the reconciler is asking the gateway "
                    "about them; above 0 for long, the gateway cannot say.", "payments")
OVERDUE_REFUNDS = ("payment_pending_overdue_refunds",
                   "Refunds still pending past PENDING_TIMEOUT_S: the reconciler is asking the gateway "
                   "about them; above 0 for long, the gateway cannot say.", "refunds")


class _OverdueCollector:
    def __init__(self, overdue: Callable[[], int] | None, gauge: tuple[str, str, str]) -> None:
        self.overdue = overdue
        self.name, self.help, self.what = gauge

    def collect(self) -> Iterable[Metric]:
        if self.overdue is None:
            return
        try:
            count = self.overdue()
        except PaymentError:
            log.warning("overdue %s not available for metrics", self.what)
            return
        yield GaugeMetricFamily(self.name, self.help, value=count)
