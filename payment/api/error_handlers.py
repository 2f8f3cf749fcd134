"""The error handlers: every error leaves in the documented envelope,
`{"success": false, "errorMessage": "...", "payment": null}` (`"refund": null`
on the refund routes), with its status (payment/api/statuses.py).

Each handler notes the answer's kind on the request (`req.context.error_kind`)
for the refusals metric and the access line (api/telemetry.py). An error
answer to POST /payments, whatever refused it (the content type, the body,
the token, the order, a fault), is also counted here, once, as a rejected
(4xx) or failed (5xx) payment request; one to POST
/payments/{paymentId}/refunds likewise, as a refund request."""

from __future__ import annotations

import logging
from typing import Any

import falcon

from payment import errors
from payment.api.responses import REFUNDS_ROUTE, error_envelope, write
from payment.api.statuses import status_of
from payment.metrics import Metrics, error_code, error_kind

log = logging.getLogger(__name__)

# The kinds of Falcon's own answers (no route, no such method...), by status.
_HTTP_KINDS = {404: "not_found", 405: "method_not_allowed"}
NO_SUCH_ROUTE = "Not found: no such resource (GET /openapi.json lists the service's endpoints)"
UNEXPECTED = "unexpected"

PAYMENTS_ROUTE = "/payments"


class Handlers:
    """The handlers of one app, counting on its metrics."""

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics

    def answer(self, req: falcon.Request, resp: falcon.Response, status: int, message: str, *,
               kind: str, code: str) -> None:
        req.context.error_kind = kind
        if req.method == "POST" and req.uri_template == PAYMENTS_ROUTE:
            self.metrics.payment_refused(code, status)
        elif req.method == "POST" and req.uri_template == REFUNDS_ROUTE:
            self.metrics.refund_refused(code, status)
        write(resp, status, error_envelope(req, message))

    def payment_error(self, req: falcon.Request, resp: falcon.Response, error: errors.PaymentError,
                      params: dict[str, Any]) -> None:
        if isinstance(error, errors.DependencyError):
            log.warning("dependency failed: %s", error.part)
        if error.retry_after_s:
            resp.set_header("Retry-After", str(error.retry_after_s))
        self.answer(req, resp, status_of(error), error.message, kind=error_kind(error), code=error_code(error))

    def unauthenticated(self, req: falcon.Request, resp: falcon.Response, error: errors.Unauthenticated,
                        params: dict[str, Any]) -> None:
        resp.set_header("WWW-Authenticate", error.challenge)
        log.info("request not authenticated: %s", error.message)
        self.answer(req, resp, 401, error.message, kind=error_kind(error), code=error_code(error))

    def http_error(self, req: falcon.Request, resp: falcon.Response, error: falcon.HTTPError,
                   params: dict[str, Any]) -> None:
        """Falcon's own errors (unknown route, wrong method...) in the envelope,
        in the service's words."""
        headers = _headers(error)
        for name, value in headers.items():
            resp.set_header(name, value)
        status = error.status_code
        kind = _HTTP_KINDS.get(status, "bad_request" if status == 400 else f"http_{status}")
        self.answer(req, resp, status, _http_message(error, headers), kind=kind, code=kind.upper())

    def unexpected(self, req: falcon.Request, resp: falcon.Response, error: Exception,
                   params: dict[str, Any]) -> None:
        # The detail goes to the log, never to the client.
        log.exception("unexpected error on %s %s", req.method, req.path)
        self.answer(req, resp, 500, "Payment processing error: unexpected error", kind=UNEXPECTED,
                    code=UNEXPECTED.upper())


def _headers(error: falcon.HTTPError) -> dict[str, str]:
    """The error's headers, given as a mapping or as pairs."""
    return dict(error.headers or {})


def _http_message(error: falcon.HTTPError, headers: dict[str, str]) -> str:
    if isinstance(error, falcon.HTTPRouteNotFound):
        return NO_SUCH_ROUTE
    if isinstance(error, falcon.HTTPMethodNotAllowed):
        return f"Method not allowed: this resource answers {headers.get('Allow', '')}"
    message = error.title or error.status
    if error.description:
        message = f"{message}: {error.description}"
    return str(message)


def register(app: falcon.App[falcon.Request, falcon.Response], metrics: Metrics) -> None:
    handlers = Handlers(metrics)
    app.add_error_handler(Exception, handlers.unexpected)
    app.add_error_handler(falcon.HTTPError, handlers.http_error)
    app.add_error_handler(errors.PaymentError, handlers.payment_error)
    app.add_error_handler(errors.Unauthenticated, handlers.unauthenticated)
