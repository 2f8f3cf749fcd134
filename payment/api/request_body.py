"""From the raw request body to a PaymentRequest or a RefundRequest, or a 4xx
that says what to fix."""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any, cast
from uuid import UUID

import falcon
from jsonschema import ValidationError

from payment import jsonio, schemas
from payment.errors import JSON, PARAMETER, BodyTooLarge, InvalidRequest, UnsupportedMediaType
from payment.model import PAYMENT_METHODS, REFUND_REASONS, PaymentRequest, RefundRequest
from payment.money import AmountError, to_amount
from payment.refunds import fingerprint

REQUEST_SCHEMA = "payment-request.schema.json"
REFUND_REQUEST_SCHEMA = "refund-request.schema.json"
# The IETF Idempotency-Key draft's key: printable ASCII, here 1 to 255 characters.
_IDEMPOTENCY_KEY = re.compile(r"[\x20-\x7e]{1,255}")


def read_body(req: falcon.Request, max_bytes: int) -> bytes:
    content_type = (req.content_type or "").split(";")[0].strip().lower()
    if content_type != "application/json":
        raise UnsupportedMediaType("Invalid request: Content-Type must be application/json")
    if req.content_length is not None and req.content_length > max_bytes:
        raise BodyTooLarge(f"Invalid request: body is larger than {max_bytes // 1024} KiB")
    body = req.bounded_stream.read(max_bytes + 1)
    if len(body) > max_bytes:
        raise BodyTooLarge(f"Invalid request: body is larger than {max_bytes // 1024} KiB")
    return body


def _json_object(body: bytes) -> dict[str, Any]:
    try:
        data = jsonio.loads(body)
    except jsonio.JSONInputError as exc:
        raise InvalidRequest(f"Invalid request: {exc}", JSON) from None
    if not isinstance(data, dict):
        raise InvalidRequest("Invalid request: body must be a JSON object")
    return data


def parse_payment_request(body: bytes) -> PaymentRequest:
    data = _json_object(body)
    _check_schema(data)
    currency = data.get("currency", "USD")
    try:
        amount = to_amount(data["amount"], currency)
    except AmountError as exc:
        raise InvalidRequest(f"Invalid request: {exc}") from None
    reservation = data.get("reservationId")
    return PaymentRequest(
        order_id=UUID(data["orderId"]),
        customer_id=UUID(data["customerId"]),
        reservation_id=UUID(reservation) if reservation is not None else None,
        amount=amount,
        currency=currency,
        payment_method=data.get("paymentMethod", "credit_card"),
        payment_token=data.get("paymentToken"),
    )


def idempotency_key(header: str | None) -> str:
    """The Idempotency-Key header's value, or a 400 that says what it must be."""
    if header is None or not header.strip():
        raise InvalidRequest("Invalid request: the Idempotency-Key header is required", PARAMETER)
    if not _IDEMPOTENCY_KEY.fullmatch(header):
        raise InvalidRequest("Invalid request: Idempotency-Key must be 1 to 255 printable ASCII characters",
                             PARAMETER)
    return header


def parse_refund_request(body: bytes, payment_id: UUID, key: str) -> RefundRequest:
    """The refund asked for; the amount is held to the payment's currency
    later, once the payment is read (payment/refunds.py)."""
    data = _json_object(body)
    _check_schema(data, REFUND_REQUEST_SCHEMA)
    amount = None if data.get("amount") is None else Decimal(data["amount"])
    reason = str(data.get("reason", REFUND_REASONS[0]))
    return RefundRequest(payment_id=payment_id, amount=amount, reason=reason, idempotency_key=key,
                         fingerprint=fingerprint(payment_id, amount, reason))


def _check_schema(data: dict[str, Any], schema: str = REQUEST_SCHEMA) -> None:
    # The compiled validator gives the verdict for a fraction of the CPU; only
    # a body it refuses pays for jsonschema, whose errors name the field. Where
    # jsonschema finds no error after all, it is the reference: the body passes.
    if schemas.conforms(schema, data):
        return
    errors = sorted(schemas.validator(schema).iter_errors(data), key=_error_order)
    if errors:
        raise InvalidRequest(f"Invalid request: {describe(errors[0])}")


def _error_order(error: ValidationError) -> tuple[bool, list[str | int]]:
    # Missing and unknown fields first: they explain the rest.
    return (error.validator not in ("required", "additionalProperties"), list(error.absolute_path))


def _field(error: ValidationError) -> str:
    path = [str(p) for p in error.absolute_path]
    return ".".join(path) if path else "body"


def describe(error: ValidationError) -> str:
    """A short message a person can act on; never echoes the (maybe huge) value."""
    field, kind = _field(error), error.validator
    # An error a validator raised has its instance, schema and value set.
    instance, schema, value = cast(Any, error.instance), cast(Any, error.schema), cast(Any, error.validator_value)
    if kind == "required":
        missing = [name for name in value if name not in instance]
        return f"{missing[0]} is required"
    if kind == "additionalProperties":
        allowed = set(schema.get("properties", {}))
        unknown = sorted(k for k in instance if k not in allowed)
        return f"unknown field {unknown[0][:60]!r}"
    if field in ("orderId", "customerId", "reservationId"):
        return f"{field} must be a GUID" + (" or null" if field == "reservationId" else "")
    if field == "amount":
        if kind in ("exclusiveMinimum", "minimum"):
            return "amount must be greater than zero"
        if kind in ("exclusiveMaximum", "maximum"):
            return "amount is too large"
        return "amount must be a number"
    if field == "currency":
        return "currency must be a three-letter ISO 4217 code, such as USD, EUR or GBP"
    if field == "paymentToken":
        # The rule, never the value: a token is as good as a card to whoever holds it.
        return "paymentToken must be 1 to 255 letters, digits, underscores or hyphens"
    if field == "paymentMethod":
        return "paymentMethod must be one of " + ", ".join(PAYMENT_METHODS)
    if field == "reason":
        return "reason must be one of " + ", ".join(REFUND_REASONS)
    return f"{field} is invalid ({kind})"
