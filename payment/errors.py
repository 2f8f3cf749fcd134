"""Domain errors: every answer but a payment (a success, a replay or a
decline, payment/service.py's Outcome). Each message is written for the
client and leaks nothing internal; the HTTP layer maps each class to its
status code."""

from __future__ import annotations


class PaymentError(Exception):
    """Base of every error the service answers on purpose. `retry_after_s`,
    when set, tells the client when a retry may succeed (Retry-After).
    `kind` says what went wrong in one stable word, for operators: the
    refusals metric and the access line's errorKind (api/telemetry.py);
    a class that sets none is known by its name (`UpstreamTimeout`:
    `upstream_timeout`)."""

    retry_after_s: int | None = None
    kind: str | None = None

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


# The kinds of an invalid request: a body that is not acceptable JSON, one
# whose values break the request's rules, an id in the path or query, a
# webhook delivery whose signature does not hold.
JSON, SCHEMA, PARAMETER, WEBHOOK_SIGNATURE = "json", "schema", "parameter", "webhook_signature"


class InvalidRequest(PaymentError):
    def __init__(self, message: str, kind: str = SCHEMA) -> None:
        super().__init__(message)
        self.kind = kind


class UnsupportedMediaType(PaymentError):
    kind = "content_type"


class BodyTooLarge(PaymentError):
    kind = "too_large"


class OrderNotFound(PaymentError):
    kind = "not_found"

    def __init__(self) -> None:
        super().__init__("Order not found")


class PaymentNotFound(PaymentError):
    kind = "not_found"

    def __init__(self) -> None:
        super().__init__("Payment not found")


class CustomerMismatch(PaymentError):
    kind = "forbidden"

    def __init__(self) -> None:
        super().__init__("Unauthorized: Customer does not own this order")


class Unauthenticated(PaymentError):
    """No usable bearer token. `why` says what is wrong with it, never what it holds;
    `challenge` is the WWW-Authenticate value (RFC 6750 section 3). Its kind
    tells a missing token, an expired one and any other refused one apart."""

    def __init__(self, why: str, *, token_sent: bool = True, expired: bool = False) -> None:
        super().__init__(f"Unauthorized: {why}")
        self.challenge = 'Bearer error="invalid_token"' if token_sent else "Bearer"
        self.kind = "auth_expired" if expired else "auth_invalid" if token_sent else "auth_missing"


class OrderInvalid(PaymentError):
    kind = "order_invalid"

    def __init__(self, why: str) -> None:
        super().__init__(f"Order validation failed: {why}")


class ReservationInvalid(PaymentError):
    kind = "reservation_invalid"

    def __init__(self, why: str) -> None:
        super().__init__(f"Reservation validation failed: {why}")


class PaymentInProgress(PaymentError):
    kind = "conflict"

    def __init__(self, retry_after_s: int = 1) -> None:
        super().__init__("A payment for this order is already in progress")
        self.retry_after_s = retry_after_s


class PaymentAlreadySettled(Exception):
    """A step meant for a pending payment found it settled by another path."""


class DependencyError(PaymentError):
    """A part the service depends on failed; `part` names it for the client."""

    retry_after_s: int | None = 1

    def __init__(self, part: str, message: str) -> None:
        super().__init__(f"Payment processing error: {message}")
        self.part = part


class UpstreamUnavailable(DependencyError):
    def __init__(self, part: str) -> None:
        super().__init__(part, f"{part} is unavailable")


class UpstreamTimeout(DependencyError):
    def __init__(self, part: str) -> None:
        super().__init__(part, f"{part} did not answer in time")


class UpstreamBadResponse(DependencyError):
    def __init__(self, part: str) -> None:
        super().__init__(part, f"{part} returned an invalid response")


class StorageError(DependencyError):
    """The payment database failed; what psycopg raised stays in the adapter
    (payment/db/pool.py) and its log line."""

    def __init__(self, message: str) -> None:
        super().__init__("payment database", message)


class DatabaseUnavailable(StorageError):
    """Out of reach, or too slow (a timeout, a lock not had): a retry may succeed."""

    def __init__(self) -> None:
        super().__init__("payment database is unavailable")


class DatabaseFault(StorageError):
    """The database refused an operation (a constraint, a privilege, a
    statement it cannot run): a fault of the service, which a retry does not
    mend, so no Retry-After. Answered 500."""

    retry_after_s = None

    def __init__(self) -> None:
        super().__init__("payment database could not complete the operation")


class GatewayUnavailable(DependencyError):
    def __init__(self) -> None:
        super().__init__("payment gateway", "payment gateway is unavailable")


class GatewayProcessing(DependencyError):
    """The gateway took the charge and has not decided yet: the payment stays
    pending until its report (a webhook) or the reconciler settles it."""

    def __init__(self) -> None:
        super().__init__("payment gateway", "payment gateway is still processing the payment")


class AuthorizationKeysUnavailable(DependencyError):
    """The JWKS endpoint could not be read: tokens cannot be checked, which
    says nothing about the token, so a 503 rather than a 401."""

    def __init__(self) -> None:
        super().__init__("authorization keys", "authorization keys are unavailable")


# --- refunds -----------------------------------------------------------------


class Forbidden(PaymentError):
    """The token is good but does not carry the scope the operation needs."""

    kind = "forbidden"

    def __init__(self, action: str, scope: str) -> None:
        super().__init__(f"Forbidden: {action} needs a token with the {scope} scope")


class RefundInvalid(InvalidRequest):
    """A refund the payment cannot take as asked (an amount past what is left,
    or finer than its currency)."""

    def __init__(self, why: str) -> None:
        super().__init__(f"Refund validation failed: {why}", "refund_invalid")


class PaymentNotRefundable(PaymentError):
    kind = "not_refundable"

    def __init__(self, status: str) -> None:
        super().__init__(f"Refund not possible: the payment is {status}")


class RefundNotFound(PaymentError):
    kind = "not_found"

    def __init__(self) -> None:
        super().__init__("Refund not found")


class RefundInProgress(PaymentError):
    kind = "conflict"

    def __init__(self, retry_after_s: int = 1) -> None:
        super().__init__("A refund with this Idempotency-Key is already in progress")
        self.retry_after_s = retry_after_s


class IdempotencyKeyReused(PaymentError):
    kind = "idempotency_key_reused"

    def __init__(self) -> None:
        super().__init__("Idempotency-Key was already used with another body or for another payment")
