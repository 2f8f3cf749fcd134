"""What every responder and error handler writes: a JSON body with its
status, and the documented envelope of an answer that is not a success,
`{"success": false, "errorMessage": "...", "payment": null | {...}}`."""

from __future__ import annotations

import falcon

from payment import jsonio
from payment.model import Payment
from payment.representations import payment_document


def envelope(message: str, payment: Payment | None = None) -> dict[str, object]:
    return {
        "success": False,
        "errorMessage": message,
        "payment": payment_document(payment) if payment is not None else None,
    }


def write(resp: falcon.Response, status: int, body: dict[str, object]) -> None:
    resp.status = status
    resp.content_type = falcon.MEDIA_JSON
    resp.text = jsonio.dumps(body)
