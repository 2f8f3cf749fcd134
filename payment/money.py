"""Amounts as Decimal, with the precision of their currency.

Nothing here rounds. An amount is quantized to its currency's decimals in a
context that traps Inexact, so only trailing zeros may go (`150.000` is
150.00); any other digit past the currency's decimals refuses the amount.
The default context would have rounded it to 28 digits first.
"""

from __future__ import annotations

from decimal import Context, Decimal, Inexact, InvalidOperation

from payment.currencies import MINOR_UNITS

# numeric(20, 4) in the payments table; far above any real ticket order.
MAX_AMOUNT = Decimal("1e15")

# Enough digits for any amount the JSON reader holds (jsonio.MAX_NUMBER_DIGITS)
# at any currency's decimals; Inexact and InvalidOperation raise.
_EXACT = Context(prec=40, Emax=999999, Emin=-999999, traps=[Inexact, InvalidOperation])

# The most characters of an upstream's amount shown in a message: any number
# the JSON reader holds fits whole in scientific notation (sign, 34 digits,
# point, exponent), so only an amount from elsewhere is ever cut.
SHOWN_AMOUNT_CHARS = 48


class AmountError(ValueError):
    """The amount does not fit its currency; the message is safe to show a client."""


def _quantum(places: int) -> Decimal:
    return Decimal((0, (1,), -places))


def to_amount(value: int | Decimal, currency: str) -> Decimal:
    """The amount at its currency's precision, or AmountError."""
    amount = Decimal(value)  # an int or a Decimal: exact
    if not amount.is_finite() or amount <= 0:
        raise AmountError("amount must be greater than zero")
    if amount >= MAX_AMOUNT:
        raise AmountError("amount is too large")
    places = MINOR_UNITS[currency]
    try:
        return amount.quantize(_quantum(places), context=_EXACT)
    except Inexact:
        raise AmountError(f"amount has more decimals than {currency} allows ({places})") from None


def shown_amount(value: Decimal, places: int) -> str:
    """An amount for a message: at `places` decimals when that is exact, else
    as it is; never rounded, never longer than SHOWN_AMOUNT_CHARS."""
    try:
        text = format(value.quantize(_quantum(places), context=_EXACT), "f")
    except (Inexact, InvalidOperation):
        text = str(value)
    if len(text) > SHOWN_AMOUNT_CHARS:
        text = str(value)  # scientific notation: short whatever the exponent
    return shorten(text, SHOWN_AMOUNT_CHARS)


def places_of(amount: Decimal) -> int:
    """The decimals a finite amount is written with: 2 for 150.00."""
    exponent = amount.as_tuple().exponent
    if not isinstance(exponent, int):  # NaN or infinity: no amount
        raise ValueError("not a finite amount")
    return -exponent


def shorten(text: str, limit: int) -> str:
    """At most `limit` characters of text, an ellipsis marking a cut."""
    return text if len(text) <= limit else text[:limit - 1] + "…"
