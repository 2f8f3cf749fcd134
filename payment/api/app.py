"""The WSGI application factory: routes, middleware, error handlers, nothing global."""

from __future__ import annotations

from collections.abc import Callable

import falcon

from payment import refunds, service
from payment.api import error_handlers
from payment.api.auth import AuthMiddleware, TokenVerifier
from payment.api.health import LiveResource, ReadyResource
from payment.api.openapi import OpenApiResource, SchemaFileResource
from payment.api.payments import PaymentCollectionResource, PaymentItemResource
from payment.api.refunds import RefundCollectionResource, RefundItemResource
from payment.api.request_id import RequestIdMiddleware
from payment.api.responses import REFUND_ROUTE, REFUNDS_ROUTE
from payment.api.telemetry import MetricsResource, TelemetryMiddleware
from payment.metrics import Metrics


def create_app(deps: service.Dependencies, *, refund_deps: refunds.RefundDependencies,
               ready_checks: dict[str, Callable[[], bool]] | None = None, max_body_bytes: int,
               metrics: Metrics | None = None, verifier: TokenVerifier | None = None, refund_scope: str,
               webhook: object | None = None) -> falcon.App[falcon.Request, falcon.Response]:
    """`verifier`: the bearer-token check of the /payments routes; None, the
    default, leaves them open as the documented deployment has them.
    `refund_scope`: the scope a token needs to refund, when tokens are checked.
    `webhook`: POST /webhooks/stripe's resource (api/webhooks.py); None, no such route."""
    metrics = metrics or Metrics()
    # The request id first: the other middleware's log lines carry it; a
    # refused token is still timed, counted and logged.
    app = falcon.App(media_type=falcon.MEDIA_JSON,
                     middleware=(RequestIdMiddleware(), TelemetryMiddleware(metrics), AuthMiddleware(verifier)))
    error_handlers.register(app, metrics)
    app.add_route("/payments", PaymentCollectionResource(deps, max_body_bytes=max_body_bytes, metrics=metrics))
    app.add_route("/payments/{paymentId}", PaymentItemResource(deps))
    app.add_route(REFUNDS_ROUTE, RefundCollectionResource(refund_deps, max_body_bytes=max_body_bytes,
                                                          metrics=metrics, refund_scope=refund_scope))
    app.add_route(REFUND_ROUTE, RefundItemResource(refund_deps))
    app.add_route("/health/live", LiveResource())
    app.add_route("/health/ready", ReadyResource(ready_checks or {}))
    app.add_route("/metrics", MetricsResource(metrics))
    app.add_route("/openapi.json", OpenApiResource())
    app.add_route("/schemas/{file}", SchemaFileResource())
    if webhook is not None:
        app.add_route("/webhooks/stripe", webhook)
    return app
