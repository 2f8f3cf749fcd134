"""POST /payments, GET /payments?orderId=..., GET /payments/{paymentId}."""

from __future__ import annotations

import re
from uuid import UUID

import falcon

from payment import logs, schemas, service
from payment.api.request_body import parse_payment_request, read_body
from payment.api.responses import envelope, write
from payment.errors import PARAMETER, InvalidRequest, PaymentNotFound
from payment.metrics import Metrics
from payment.representations import payment_document

# The request schema's GUID, so that a path or query id is held to the same
# form as one in a body (uuid.UUID alone also takes braces, URNs, no dashes).
_GUID = re.compile(schemas.load("payment-request.schema.json")["$defs"]["guid"]["pattern"])


def guid(value: object, name: str) -> UUID:
    if not isinstance(value, str) or not _GUID.fullmatch(value):
        raise InvalidRequest(f"Invalid request: {name} must be a GUID", PARAMETER)
    return UUID(value)


class PaymentCollectionResource:
    """/payments: POST takes a payment, GET lists an order's."""

    # AuthMiddleware puts the caller on req.context (api/auth.py).
    auth_required = True

    def __init__(self, deps: service.Dependencies, *, max_body_bytes: int, metrics: Metrics) -> None:
        self.deps = deps
        self.max_body_bytes = max_body_bytes
        self.metrics = metrics

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        request = parse_payment_request(read_body(req, self.max_body_bytes))
        # Unbound with the request id when the request ends (request_id.py).
        logs.bind(orderId=str(request.order_id))
        # Before anything is looked up: another customer's token learns nothing.
        req.context.caller.check_pays_for(request.customer_id)
        # Every refusal, a body refused before it is a payment request
        # included, is raised and counted once by the error handler
        # (error_handlers.py); an outcome is counted here.
        outcome = service.pay(request, self.deps)
        self.metrics.payment_settled(outcome.payment, replayed=outcome.replayed)
        _bind_outcome(outcome)
        if outcome.declined:
            write(resp, 402, envelope(f"Payment failed: {outcome.payment.error_message}", outcome.payment))
            return
        if outcome.replayed:
            resp.set_header("Idempotent-Replayed", "true")
        write(resp, 200, {
            "success": True,
            "errorMessage": None,
            "payment": payment_document(outcome.payment),
        })

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        given = req.params.get("orderId")
        if given is None:
            raise InvalidRequest("Invalid request: orderId is required", PARAMETER)
        order_id = guid(given, "orderId")
        caller = req.context.caller
        payments = [p for p in self.deps.store.list_for_order(order_id) if caller.may_read(p)]
        write(resp, 200, {
            "success": True,
            "errorMessage": None,
            "payments": [payment_document(p) for p in payments],
        })


class PaymentItemResource:
    """/payments/{paymentId}: one payment."""

    auth_required = True

    def __init__(self, deps: service.Dependencies) -> None:
        self.deps = deps

    # paymentId: the name in the route and the OpenAPI document.
    def on_get(self, req: falcon.Request, resp: falcon.Response, paymentId: str) -> None:  # noqa: N803
        payment = self.deps.store.find(guid(paymentId, "paymentId"))
        # Another customer's payment is "not found": its existence does not leak.
        if payment is None or not req.context.caller.may_read(payment):
            raise PaymentNotFound()
        write(resp, 200, {"success": True, "errorMessage": None, "payment": payment_document(payment)})


def _bind_outcome(outcome: service.Outcome) -> None:
    """The payment's fields, for the request's access line (api/telemetry.py):
    one line per request says what became of it, rather than a line of its own."""
    payment = outcome.payment
    logs.bind(**logs.payment_fields(payment), paymentStatus=payment.status, errorCode=payment.error_code,
              paymentOutcome=outcome.kind, transactionId=payment.transaction_id,
              gatewayReference=payment.gateway_reference)
