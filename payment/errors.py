"""Domain errors: every answer but a payment (a success, a replay or a
decline, payment/service.py's Outcome). Each message is written for the
client and leaks nothing internal; the HTTP layer maps each class to its
status code."""

from __future__ import annotations


class PaymentError(Exception):
    """Base of every error the service answers on purpose. `retry_after_s`,
    when set, tells the client when a retry may succeed (Retry-After)."""

    retry_after_s: int | None = None

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidRequest(PaymentError):
    pass


class UnsupportedMediaType(PaymentError):
    pass


class BodyTooLarge(PaymentError):
    pass


class OrderNotFound(PaymentError):
    def __init__(self) -> None:
        super().__init__("Order not found")


class PaymentNotFound(PaymentError):
    def __init__(self) -> None:
        super().__init__("Payment not found")


class CustomerMismatch(PaymentError):
    def __init__(self) -> None:
        super().__init__("Unauthorized: Customer does not own this order")


class Unauthenticated(PaymentError):
    """No usable bearer token. `why` says what is wrong with it, never what it holds;
    `challenge` is the WWW-Authenticate value (RFC 6750 section 3)."""

    def __init__(self, why: str, *, token_sent: bool = True) -> None:
        super().__init__(f"Unauthorized: {why}")
        self.challenge = 'Bearer error="invalid_token"' if token_sent else "Bearer"


class OrderInvalid(PaymentError):
    def __init__(self, why: str) -> None:
        super().__init__(f"Order validation failed: {why}")


class ReservationInvalid(PaymentError):
    def __init__(self, why: str) -> None:
        super().__init__(f"Reservation validation failed: {why}")


class PaymentInProgress(PaymentError):
    def __init__(self, retry_after_s: int = 1) -> None:
        super().__init__("A payment for this order is already in progress")
        self.retry_after_s = retry_after_s


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
