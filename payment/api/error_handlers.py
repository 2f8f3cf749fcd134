"""The error handlers: every error leaves in the documented envelope,
`{"success": false, "errorMessage": "...", "payment": null}`, with its status.

A refusal of a payment request (anything POST /payments raises once the body
is read) is also counted here, once, by the status it is answered with."""

from __future__ import annotations

import logging

import falcon

from payment import errors
from payment.api.responses import envelope, write

log = logging.getLogger(__name__)

STATUS = {
    errors.InvalidRequest: 400,
    errors.OrderInvalid: 400,
    errors.ReservationInvalid: 400,
    errors.Unauthenticated: 401,
    errors.CustomerMismatch: 403,
    errors.OrderNotFound: 404,
    errors.PaymentNotFound: 404,
    errors.PaymentInProgress: 409,
    errors.BodyTooLarge: 413,
    errors.UnsupportedMediaType: 415,
    errors.UpstreamBadResponse: 502,
    errors.GatewayUnavailable: 502,
    errors.UpstreamUnavailable: 503,
    errors.DatabaseUnavailable: 503,
    errors.AuthorizationKeysUnavailable: 503,
    errors.UpstreamTimeout: 504,
    errors.DatabaseFault: 500,
}


def status_of(error: errors.PaymentError) -> int:
    for cls in type(error).__mro__:
        if cls in STATUS:
            return STATUS[cls]
    return 500


class PaymentErrorHandler:
    def __init__(self, metrics):
        self.metrics = metrics

    def __call__(self, req, resp, error: errors.PaymentError, params) -> None:
        status = status_of(error)
        # Set by the responder once the body is a payment request: a body
        # refused before that is no payment's outcome.
        if req.context.get("payment_request") is not None:
            self.metrics.payment_refused(error, status)
        if isinstance(error, errors.DependencyError):
            log.warning("dependency failed: %s", error.part)
        if error.retry_after_s:
            resp.set_header("Retry-After", str(error.retry_after_s))
        write(resp, status, envelope(error.message))


def handle_unauthenticated(req, resp, error: errors.Unauthenticated, params) -> None:
    resp.set_header("WWW-Authenticate", error.challenge)
    log.info("request not authenticated: %s", error.message)
    write(resp, 401, envelope(error.message))


def handle_http_error(req, resp, error: falcon.HTTPError, params) -> None:
    """Falcon's own errors (unknown route, wrong method...) in the envelope."""
    for name, value in (error.headers or {}).items():
        resp.set_header(name, value)
    message = error.title or error.status
    if error.description:
        message = f"{message}: {error.description}"
    write(resp, error.status_code, envelope(message))


def handle_unexpected(req, resp, error: Exception, params) -> None:
    # The detail goes to the log, never to the client.
    log.exception("unexpected error on %s %s", req.method, req.path)
    write(resp, 500, envelope("Payment processing error: unexpected error"))


def register(app: falcon.App, metrics) -> None:
    app.add_error_handler(Exception, handle_unexpected)
    app.add_error_handler(falcon.HTTPError, handle_http_error)
    app.add_error_handler(errors.PaymentError, PaymentErrorHandler(metrics))
    app.add_error_handler(errors.Unauthenticated, handle_unauthenticated)
