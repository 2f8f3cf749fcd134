"""Numbers are held exactly or refused: the JSON reader's digit and range
rules, amounts at their currency's precision without rounding, and order
fields shown in messages exactly and cut short."""

from __future__ import annotations

import uuid
from datetime import datetime, timezone
from decimal import Decimal

import pytest

from payment import jsonio, service
from payment.errors import OrderInvalid, ReservationInvalid
from payment.model import Order, PaymentRequest, Reservation
from payment.money import SHOWN_AMOUNT_CHARS, AmountError, shown_amount, to_amount

DIGITS = jsonio.MAX_NUMBER_DIGITS
TOO_MANY = f"has more than {DIGITS} digits"
OUT_OF_RANGE = "is out of range"


def test_the_limit_is_far_above_any_amount_and_far_below_the_int_conversion_limit():
    assert 20 <= DIGITS <= 100


@pytest.mark.parametrize("literal", [
    "1" * DIGITS,                      # an integer at the limit
    "-" + "9" * DIGITS,
    "0." + "1" * DIGITS,               # leading zeros are not digits held
    "1." + "0" * (DIGITS - 1),         # trailing zeros are
    "1e-400", "1e309", "1E+999999", "-0", "-0.0", "0",
])
def test_numbers_that_can_be_held_are_read_exactly(literal):
    value = jsonio.loads(f'{{"n": {literal}}}')["n"]
    if isinstance(value, int):
        assert value == int(literal)
    else:
        assert str(value) == str(Decimal(literal))  # digit for digit, exponent included


def test_integers_stay_integers_and_fractions_decimals():
    data = jsonio.loads(b'{"i": 3, "d": 3.0, "e": 3e0}')
    assert type(data["i"]) is int and data["i"] == 3
    assert type(data["d"]) is Decimal and str(data["d"]) == "3.0"
    assert type(data["e"]) is Decimal


@pytest.mark.parametrize("literal, message", [
    ("1" * 4301, TOO_MANY),            # past Python's int conversion limit: was a bare ValueError
    ("-" + "1" * 4301, TOO_MANY),
    ("1" * (DIGITS + 1), TOO_MANY),    # one past the limit
    ("1." + "1" * DIGITS, TOO_MANY),
    ("149." + "9" * 40, TOO_MANY),
    ("1." + "0" * DIGITS, TOO_MANY),   # exact in value, but more digits than are held
    ("1e9999999999999999999999", OUT_OF_RANGE),   # the Decimal constructor itself refuses it
    ("1e999999999", OUT_OF_RANGE),
    ("1e-999999999", OUT_OF_RANGE),
    ("0e999999999", OUT_OF_RANGE),
])
def test_numbers_that_cannot_be_held_are_refused_wherever_they_are(literal, message):
    for document in (f'{{"amount": {literal}}}', f'{{"x": [1, {{"y": {literal}}}]}}', literal):
        with pytest.raises(jsonio.JSONInputError, match=message) as raised:
            jsonio.loads(document)
        assert "cannot be held exactly" in str(raised.value)
        assert len(str(raised.value)) < 120


@pytest.mark.parametrize("literal", [
    "149." + "9" * 30,                 # measured: was charged as 150.00
    "150." + "0" * 29 + "1",           # measured: was charged as 150.00
    "149.99999999999999999999999999999",
    "150.000000000000000000000000000001",
    "0.001",
])
def test_amounts_are_never_rounded_to_their_currency(literal):
    with pytest.raises(AmountError, match=r"amount has more decimals than USD allows \(2\)"):
        to_amount(jsonio.loads(literal), "USD")


@pytest.mark.parametrize("literal, currency, expected", [
    ("150." + "0" * 30, "USD", "150.00"),   # only zeros past the currency's decimals: the same amount
    ("15000." + "0" * 25, "JPY", "15000"),
    ("1.125" + "0" * 28, "KWD", "1.125"),
    ("99999999999999.99", "USD", "99999999999999.99"),
])
def test_trailing_zeros_are_not_decimals(literal, currency, expected):
    assert str(to_amount(jsonio.loads(literal), currency)) == expected


@pytest.mark.parametrize("total, places, expected", [
    (Decimal("150"), 2, "150.00"),
    (Decimal("150.0"), 2, "150.00"),
    (Decimal("150.004"), 2, "150.004"),            # shown as it is, never rounded to look equal
    (Decimal("1E+30"), 2, "1000000000000000000000000000000.00"),   # quantize raised: a 500
    (Decimal("1E+999999"), 2, "1E+999999"),
    (Decimal("1." + "1" * 33), 2, "1." + "1" * 33),
    (Decimal("1E-999999"), 2, "1E-999999"),
])
def test_amounts_are_shown_exactly_and_short(total, places, expected):
    assert shown_amount(total, places) == expected


def test_the_longest_held_number_is_shown_whole():
    longest = jsonio.loads("-0." + "9" * DIGITS + "e-999965")
    assert shown_amount(longest, 2) == str(longest)
    assert len(shown_amount(Decimal("1" * 100), 2)) == SHOWN_AMOUNT_CHARS


CUSTOMER = uuid.uuid4()


def request(amount="150.00", currency="USD") -> PaymentRequest:
    return PaymentRequest(order_id=uuid.uuid4(), customer_id=CUSTOMER, reservation_id=None,
                          amount=Decimal(amount), currency=currency, payment_method="credit_card")


def order(total="150.00", currency="USD", status="pending") -> Order:
    return Order(id=uuid.uuid4(), customer_id=CUSTOMER, total_amount=Decimal(total), currency=currency,
                 status=status)


def refusal(req, the_order) -> str:
    with pytest.raises(OrderInvalid) as raised:
        service.validate_order(req, the_order)
    return raised.value.message


def test_an_order_total_too_large_to_quantize_is_a_mismatch_not_a_crash():
    assert refusal(request(), order(total="1E+30")) == (
        "Order validation failed: amount 150.00 does not match the order total 1000000000000000000000000000000.00")
    assert refusal(request(), order(total="1E+999999")) == (
        "Order validation failed: amount 150.00 does not match the order total 1E+999999")


def test_an_order_total_with_more_decimals_is_a_mismatch_shown_as_it_is():
    assert refusal(request(), order(total="150.0000000000000000000000000001")) == (
        "Order validation failed: amount 150.00 does not match the order total 150.0000000000000000000000000001")


def test_order_and_reservation_fields_in_messages_are_cut_short():
    huge = "X" * 5000
    message = refusal(request(), order(currency=huge))
    assert message.startswith("Order validation failed: currency USD does not match the order currency XXXX")
    assert message.endswith("…") and len(message) < 200
    with pytest.raises(ReservationInvalid) as raised:
        service.validate_reservation(
            request(), Reservation(id=uuid.uuid4(), customer_id=CUSTOMER, status="held" + "y" * 5000,
                                   expires_at=datetime(2099, 1, 1, tzinfo=timezone.utc)))
    assert raised.value.message.startswith("Reservation validation failed: reservation is heldyyy")
    assert len(raised.value.message) < 200
