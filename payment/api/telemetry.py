"""Per-request metrics and the access log line, and GET /metrics."""

from __future__ import annotations

import logging
import time

import falcon

from payment.metrics import CONTENT_TYPE, Metrics

log = logging.getLogger("payment.access")

_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "CONNECT"})
# Probes and scrapes arrive every few seconds; their lines would drown the rest.
_QUIET_ROUTES = frozenset({"/health/live", "/health/ready", "/metrics"})


class TelemetryMiddleware:
    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics

    def process_request(self, req: falcon.Request, resp: falcon.Response) -> None:
        req.context.started = time.perf_counter()

    def process_response(self, req: falcon.Request, resp: falcon.Response, resource: object,
                         req_succeeded: bool) -> None:
        seconds = time.perf_counter() - req.context.started
        # The route template, not the path: one series per endpoint, whatever ids are asked for.
        route = req.uri_template or "unmatched"
        method = req.method if req.method in _METHODS else "other"
        status = resp.status_code
        self.metrics.request_done(route, method, status, seconds)
        # The fields bound while the request was served (its id, the order, a
        # payment's outcome) ride on this line: a request that goes well logs
        # nothing else, so each costs one formatted line.
        log.log(logging.DEBUG if route in _QUIET_ROUTES else logging.INFO, "request", extra={
            "method": method, "path": req.path, "route": route, "status": status,
            "durationMs": round(seconds * 1000, 1),
        })


class MetricsResource:
    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.content_type = CONTENT_TYPE
        resp.data = self.metrics.exposition()
