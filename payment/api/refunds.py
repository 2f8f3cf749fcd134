"""POST and GET /payments/{paymentId}/refunds, GET /payments/{paymentId}/refunds/{refundId}.

A refund is asked for with an Idempotency-Key; the refund routes answer in
the envelope `{"success", "errorMessage", "refund"}` (their errors too,
payment/api/responses.py). Reading refunds follows the payment's read rules:
a payment the caller may not read is "not found", and so are its refunds.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID

import falcon

from payment import logs, refunds
from payment.api.payments import guid
from payment.api.request_body import idempotency_key, parse_refund_request, read_body
from payment.api.responses import refund_envelope, write
from payment.errors import PaymentNotFound, RefundNotFound
from payment.metrics import Metrics
from payment.model import Payment, Refund
from payment.representations import refund_document

IDEMPOTENCY_KEY_HEADER = "Idempotency-Key"


def _readable_payment(req: falcon.Request, deps: refunds.RefundDependencies, payment_id: UUID) -> Payment:
    payment = deps.store.find(payment_id)
    # Another customer's payment is "not found": its existence does not leak.
    if payment is None or not req.context.caller.may_read(payment):
        raise PaymentNotFound()
    return payment


def _success(refund: Refund) -> dict[str, Any]:
    return {"success": True, "errorMessage": None, "refund": refund_document(refund)}


class RefundCollectionResource:
    """/payments/{paymentId}/refunds: POST refunds, GET lists the payment's refunds."""

    # AuthMiddleware puts the caller on req.context (api/auth.py).
    auth_required = True

    def __init__(self, deps: refunds.RefundDependencies, *, max_body_bytes: int, metrics: Metrics,
                 refund_scope: str) -> None:
        self.deps = deps
        self.max_body_bytes = max_body_bytes
        self.metrics = metrics
        self.refund_scope = refund_scope

    # paymentId: the name in the route and the OpenAPI document.
    def on_post(self, req: falcon.Request, resp: falcon.Response, paymentId: str) -> None:  # noqa: N803
        # Before anything is read: a token without the scope learns nothing.
        req.context.caller.check_refunds(self.refund_scope)
        payment_id = guid(paymentId, "paymentId")
        key = idempotency_key(req.get_header(IDEMPOTENCY_KEY_HEADER))
        request = parse_refund_request(read_body(req, self.max_body_bytes), payment_id, key)
        # Unbound with the request id when the request ends (request_id.py).
        logs.bind(paymentId=str(payment_id))
        payment = _readable_payment(req, self.deps, payment_id)
        logs.bind(orderId=str(payment.order_id))
        # Every refusal is raised and counted once by the error handler
        # (error_handlers.py); an outcome is counted here.
        outcome = refunds.refund(request, payment, self.deps)
        self.metrics.refund_settled(outcome.refund, replayed=outcome.replayed)
        _bind_outcome(outcome)
        if outcome.replayed:
            resp.set_header("Idempotent-Replayed", "true")
        if outcome.failed:
            write(resp, 402, refund_envelope(f"Refund failed: {outcome.refund.error_message}", outcome.refund))
            return
        write(resp, 200, _success(outcome.refund))

    def on_get(self, req: falcon.Request, resp: falcon.Response, paymentId: str) -> None:  # noqa: N803
        payment = _readable_payment(req, self.deps, guid(paymentId, "paymentId"))
        write(resp, 200, {
            "success": True,
            "errorMessage": None,
            "refunds": [refund_document(r) for r in self.deps.store.list_refunds(payment.id)],
        })


class RefundItemResource:
    """/payments/{paymentId}/refunds/{refundId}: one refund, whatever its status."""

    auth_required = True

    def __init__(self, deps: refunds.RefundDependencies) -> None:
        self.deps = deps

    def on_get(self, req: falcon.Request, resp: falcon.Response, paymentId: str,  # noqa: N803
               refundId: str) -> None:  # noqa: N803
        payment_id, refund_id = guid(paymentId, "paymentId"), guid(refundId, "refundId")
        payment = _readable_payment(req, self.deps, payment_id)
        refund = self.deps.store.find_refund(refund_id)
        if refund is None or refund.payment_id != payment.id:
            raise RefundNotFound()
        write(resp, 200, _success(refund))


def _bind_outcome(outcome: refunds.RefundOutcome) -> None:
    """The refund's fields, for the request's access line (api/telemetry.py)."""
    refund = outcome.refund
    logs.bind(**logs.refund_fields(refund), refundStatus=refund.status, errorCode=refund.error_code,
              refundOutcome=outcome.kind)
