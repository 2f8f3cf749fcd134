"""The HTTP status each domain error is answered with: the error handlers
answer by it, and POST /payments and POST /payments/{paymentId}/refunds count
their refusals by it."""

from __future__ import annotations

from payment import errors

STATUS = {
    errors.InvalidRequest: 400,
    errors.OrderInvalid: 400,
    errors.ReservationInvalid: 400,
    errors.Unauthenticated: 401,
    errors.CustomerMismatch: 403,
    errors.OrderNotFound: 404,
    errors.PaymentNotFound: 404,
    errors.PaymentInProgress: 409,
    errors.Forbidden: 403,
    errors.RefundNotFound: 404,
    errors.PaymentNotRefundable: 409,
    errors.RefundInProgress: 409,
    errors.IdempotencyKeyReused: 422,
    errors.BodyTooLarge: 413,
    errors.UnsupportedMediaType: 415,
    errors.UpstreamBadResponse: 502,
    errors.GatewayUnavailable: 502,
    errors.GatewayProcessing: 502,
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
