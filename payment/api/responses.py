"""What every responder and error handler writes: a JSON body with its
status, and the documented envelope of an answer that is not a success,
`{"success": false, "errorMessage": "...", "payment": null | {...}}`; on the
refund routes, `{"success": false, "errorMessage": "...", "refund": null | {...}}`."""

from __future__ import annotations

import falcon

from payment import jsonio
from payment.model import Payment, Refund
from payment.representations import payment_document, refund_document

# The routes whose answers carry a refund where the others carry a payment
# (payment/api/app.py adds them).
REFUNDS_ROUTE = "/payments/{paymentId}/refunds"
REFUND_ROUTE = "/payments/{paymentId}/refunds/{refundId}"
_REFUND_ROUTES = frozenset({REFUNDS_ROUTE, REFUND_ROUTE})


def envelope(message: str, payment: Payment | None = None) -> dict[str, object]:
    return {
        "success": False,
        "errorMessage": message,
        "payment": payment_document(payment) if payment is not None else None,
    }


def refund_envelope(message: str, refund: Refund | None = None) -> dict[str, object]:
    return {
        "success": False,
        "errorMessage": message,
        "refund": refund_document(refund) if refund is not None else None,
    }


def error_envelope(req: falcon.Request, message: str) -> dict[str, object]:
    """The envelope of an error on the route the request took."""
    if req.uri_template in _REFUND_ROUTES:
        return refund_envelope(message)
    return envelope(message)


def write(resp: falcon.Response, status: int, body: dict[str, object]) -> None:
    resp.status = status
    resp.content_type = falcon.MEDIA_JSON
    resp.text = jsonio.dumps(body)
