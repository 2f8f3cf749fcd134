"""Stripe's decline codes (and the codes of a PaymentIntent create refused
for the payment itself) mapped onto the contract's errorCode, errorMessage
and failureReason (the table in docs/gateways.md, "Stripe").

The customer sees errorCode and errorMessage, and failureReason is in the
payment object too. Stripe asks that a card reported lost or stolen, or a
charge blocked as fraudulent, be shown as a generic decline so that a fraudster
learns nothing; those codes are disguised here and only logged as they came.
"""

from __future__ import annotations

from payment.model import ChargeResult

CARD_DECLINED = ("CARD_DECLINED", "Card declined")
INVALID_PAYMENT_METHOD = ("INVALID_PAYMENT_METHOD", "Payment method not usable")

# Stripe code (a decline_code, else the error code) -> (errorCode, errorMessage)
DECLINES: dict[str, tuple[str, str]] = {
    "card_declined": CARD_DECLINED,
    "generic_decline": CARD_DECLINED,
    "do_not_honor": CARD_DECLINED,
    "call_issuer": CARD_DECLINED,
    "no_action_taken": CARD_DECLINED,
    "not_permitted": CARD_DECLINED,
    "restricted_card": CARD_DECLINED,
    "revocation_of_authorization": CARD_DECLINED,
    "transaction_not_allowed": CARD_DECLINED,
    "insufficient_funds": ("INSUFFICIENT_FUNDS", "Card declined due to insufficient funds"),
    "card_velocity_exceeded": ("LIMIT_EXCEEDED", "Card declined: limit exceeded"),
    "withdrawal_count_limit_exceeded": ("LIMIT_EXCEEDED", "Card declined: limit exceeded"),
    "expired_card": ("EXPIRED_CARD", "Card expired"),
    "incorrect_cvc": ("INCORRECT_CVC", "Incorrect card security code"),
    "invalid_cvc": ("INCORRECT_CVC", "Incorrect card security code"),
    "incorrect_number": ("INCORRECT_NUMBER", "Incorrect card number"),
    "invalid_number": ("INCORRECT_NUMBER", "Incorrect card number"),
    "invalid_expiry_month": ("INVALID_EXPIRY", "Invalid card expiry date"),
    "invalid_expiry_year": ("INVALID_EXPIRY", "Invalid card expiry date"),
    "incorrect_zip": ("INCORRECT_ZIP", "Incorrect postal code"),
    "processing_error": ("PROCESSING_ERROR", "The card could not be processed, try again"),
    "try_again_later": ("PROCESSING_ERROR", "The card could not be processed, try again"),
    "issuer_not_available": ("PROCESSING_ERROR", "The card could not be processed, try again"),
    "authentication_required": ("AUTHENTICATION_REQUIRED", "The card issuer requires authentication"),
    "payment_intent_authentication_failure": ("AUTHENTICATION_FAILED", "Card authentication failed"),
    "card_not_supported": ("CARD_NOT_SUPPORTED", "Card not supported for this purchase"),
    "currency_not_supported": ("CURRENCY_NOT_SUPPORTED", "Card does not support this currency"),
    "amount_too_large": ("AMOUNT_TOO_LARGE", "Amount too large"),
    "amount_too_small": ("AMOUNT_TOO_SMALL", "Amount too small"),
    "invalid_amount": ("INVALID_AMOUNT", "Amount not accepted by the card issuer"),
    # A PaymentIntent create refused for the payment itself (below).
    "resource_missing": INVALID_PAYMENT_METHOD,
    "payment_method_invalid_parameter": INVALID_PAYMENT_METHOD,
    "payment_method_unexpected_state": INVALID_PAYMENT_METHOD,
    "payment_method_not_available": INVALID_PAYMENT_METHOD,
    "payment_method_unactivated": INVALID_PAYMENT_METHOD,
    "payment_method_provider_decline": CARD_DECLINED,
    "payment_method_customer_decline": CARD_DECLINED,
    "payment_method_currency_mismatch": ("CURRENCY_NOT_SUPPORTED", "Card does not support this currency"),
}

# Stripe's error codes of a PaymentIntent create refused for the payment
# itself: the amount, the currency or the payment method will not do, and
# no intent was made. `resource_missing` counts only for the payment method
# (the one object the create names).
REFUSAL_CODES = frozenset({
    "amount_too_small", "amount_too_large", "currency_not_supported", "resource_missing",
    "payment_method_invalid_parameter", "payment_method_unexpected_state", "payment_method_not_available",
    "payment_method_unactivated", "payment_method_provider_decline", "payment_method_customer_decline",
    "payment_method_currency_mismatch",
})
# Without a code, the parameter Stripe names says what was refused.
REFUSED_PARAMS = {"amount": "invalid_amount", "currency": "currency_not_supported",
                  "payment_method": "payment_method_invalid_parameter"}

# Shown to the customer as a generic decline (Stripe's advice); logged as they came.
DISGUISED = frozenset({
    "lost_card", "stolen_card", "pickup_card", "fraudulent", "merchant_blacklist",
    "security_violation",
})


def decline(code: str | None, *, reason: str = "Stripe declined the charge") -> ChargeResult:
    """The declined ChargeResult for a Stripe decline code (None: unknown)."""
    code = (code or "card_declined").lower()
    shown = "generic_decline" if code in DISGUISED else code
    error_code, message = DECLINES.get(shown, CARD_DECLINED)
    return ChargeResult(
        succeeded=False,
        transaction_id=None,
        simulated_response=None,
        error_code=error_code,
        error_message=message,
        failure_reason=f"{reason}: {shown}",
    )


def refusal_code(code: str | None, param: str | None, http_status: int | None) -> str | None:
    """The Stripe code of a PaymentIntent create refused for the payment
    itself (an InvalidRequestError's code, param and status), or None when
    the refusal is about the service's own request, which no customer can mend."""
    if code in REFUSAL_CODES and (code != "resource_missing" or param in (None, "payment_method")):
        return code
    if code is None and param in REFUSED_PARAMS:
        return REFUSED_PARAMS[param]
    if code is None and param is None and http_status in (400, 404):
        # localstripe answers a PaymentMethod it does not know with a bare
        # 404, and one whose id is not a PaymentMethod's with a bare 400
        # (the create's other parameters are the service's own, which it
        # takes); Stripe says resource_missing, param payment_method.
        return "resource_missing"
    return None


def refused(code: str) -> ChargeResult:
    """The declined ChargeResult of a create refused for the payment itself."""
    return decline(code, reason="Stripe refused the payment before charging")


def interrupted() -> ChargeResult:
    """An intent cancelled before it was confirmed: the charge never ran."""
    return ChargeResult(
        succeeded=False,
        transaction_id=None,
        simulated_response=None,
        error_code="PROCESSING_INTERRUPTED",
        error_message="Payment processing was interrupted",
        failure_reason="The Stripe PaymentIntent was cancelled before it was confirmed",
    )
