"""The error handlers: every error leaves in the documented envelope,
`{"success": false, "errorMessage": "...", "payment": null}`, with its status
(payment/api/statuses.py). What a refusal of a payment request counts is the
resource's to record (payment/api/payments.py), not the handler's."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import falcon

from payment import errors
from payment.api.responses import envelope, write
from payment.api.statuses import status_of

log = logging.getLogger(__name__)


def handle_payment_error(req: falcon.Request, resp: falcon.Response, error: errors.PaymentError,
                         params: dict[str, Any]) -> None:
    if isinstance(error, errors.DependencyError):
        log.warning("dependency failed: %s", error.part)
    if error.retry_after_s:
        resp.set_header("Retry-After", str(error.retry_after_s))
    write(resp, status_of(error), envelope(error.message))


def handle_unauthenticated(req: falcon.Request, resp: falcon.Response, error: errors.Unauthenticated,
                           params: dict[str, Any]) -> None:
    resp.set_header("WWW-Authenticate", error.challenge)
    log.info("request not authenticated: %s", error.message)
    write(resp, 401, envelope(error.message))


def handle_http_error(req: falcon.Request, resp: falcon.Response, error: falcon.HTTPError,
                      params: dict[str, Any]) -> None:
    """Falcon's own errors (unknown route, wrong method...) in the envelope."""
    headers = error.headers or {}
    for name, value in headers.items() if isinstance(headers, Mapping) else headers:
        resp.set_header(name, value)
    message = error.title or str(error.status)
    if error.description:
        message = f"{message}: {error.description}"
    write(resp, error.status_code, envelope(message))


def handle_unexpected(req: falcon.Request, resp: falcon.Response, error: Exception,
                      params: dict[str, Any]) -> None:
    # The detail goes to the log, never to the client.
    log.exception("unexpected error on %s %s", req.method, req.path)
    write(resp, 500, envelope("Payment processing error: unexpected error"))


def register(app: falcon.App[falcon.Request, falcon.Response]) -> None:
    app.add_error_handler(Exception, handle_unexpected)
    app.add_error_handler(falcon.HTTPError, handle_http_error)
    app.add_error_handler(errors.PaymentError, handle_payment_error)
    app.add_error_handler(errors.Unauthenticated, handle_unauthenticated)
