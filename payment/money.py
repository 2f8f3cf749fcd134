"""Amounts as Decimal, with the precision of their currency."""

from __future__ import annotations

from decimal import Decimal

from payment.currencies import MINOR_UNITS

# numeric(20, 4) in the payments table; far above any real ticket order.
MAX_AMOUNT = Decimal("1e15")


class AmountError(ValueError):
    """The amount does not fit its currency; the message is safe to show a client."""


def to_amount(value, currency: str) -> Decimal:
    """The amount at its currency's precision, or AmountError."""
    amount = Decimal(value)
    if not amount.is_finite() or amount <= 0:
        raise AmountError("amount must be greater than zero")
    if amount >= MAX_AMOUNT:
        raise AmountError("amount is too large")
    places = MINOR_UNITS[currency]
    exponent = amount.normalize().as_tuple().exponent
    if exponent < -places:
        raise AmountError(f"amount has more decimals than {currency} allows ({places})")
    return amount.quantize(Decimal(1).scaleb(-places))
