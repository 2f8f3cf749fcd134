"""POST /payments."""

from __future__ import annotations

from payment import service
from payment.api.errors import write
from payment.api.request_body import parse_payment_request, read_body
from payment.documents import payment_document


class PaymentsResource:
    def __init__(self, deps: service.Dependencies, *, max_body_bytes: int):
        self.deps = deps
        self.max_body_bytes = max_body_bytes

    def on_post(self, req, resp):
        request = parse_payment_request(read_body(req, self.max_body_bytes))
        outcome = service.pay(request, self.deps)
        if outcome.replayed:
            resp.set_header("Idempotent-Replayed", "true")
        write(resp, 200, {
            "success": True,
            "errorMessage": None,
            "payment": payment_document(outcome.payment),
        })
