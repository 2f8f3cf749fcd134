"""Per-request metrics and the access log line, and GET /metrics.

An answer with an error carries its kind (set by api/error_handlers.py; a
decline, a 402, is `declined`): the access line's `errorKind`, and for a
4xx the label of payment_http_refusals_total."""

from __future__ import annotations

import logging
import time

import falcon

from payment.metrics import CONTENT_TYPE, Metrics

log = logging.getLogger("payment.access")

_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "CONNECT"})
DECLINED = "declined"
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
        kind = _error_kind(req, status)
        self.metrics.request_done(route, method, status, seconds, kind)
        # The fields bound while the request was served (its id, the order, a
        # payment's outcome, the gateway's reference) ride on this line: a
        # request that goes well logs nothing else, so each costs one
        # formatted line.
        fields = {"method": method, "path": req.path, "route": route, "status": status,
                  "durationMs": round(seconds * 1000, 1)}
        if kind is not None:
            fields["errorKind"] = kind
        # A refusal on a quiet route (a POST to a probe) is not a probe.
        quiet = route in _QUIET_ROUTES and not 400 <= status < 500
        log.log(logging.DEBUG if quiet else logging.INFO, "request", extra=fields)


def _error_kind(req: falcon.Request, status: int) -> str | None:
    if status < 400:
        return None
    if status == 402:
        return DECLINED
    return req.context.get("error_kind")


class MetricsResource:
    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.content_type = CONTENT_TYPE
        resp.data = self.metrics.exposition()
