from decimal import Decimal

import pytest

from payment import jsonio
from payment.money import AmountError, to_amount


@pytest.mark.parametrize("value, currency, expected", [
    (Decimal("150"), "USD", "150.00"),
    (150, "USD", "150.00"),
    (Decimal("150.1"), "USD", "150.10"),
    (Decimal("150.00"), "JPY", "150"),
    (Decimal("1.125"), "KWD", "1.125"),
    (Decimal("150.000000"), "USD", "150.00"),
])
def test_amount_takes_its_currency_precision(value, currency, expected):
    assert str(to_amount(value, currency)) == expected


@pytest.mark.parametrize("value, currency, message", [
    (Decimal("150.001"), "USD", "amount has more decimals than USD allows (2)"),
    (Decimal("150.5"), "JPY", "amount has more decimals than JPY allows (0)"),
    (Decimal("0.1234"), "KWD", "amount has more decimals than KWD allows (3)"),
    (Decimal("0." + "1" * 30), "USD", "amount has more decimals than USD allows (2)"),
    (Decimal("1e309"), "USD", "amount is too large"),
    (Decimal("0"), "USD", "amount must be greater than zero"),
    (Decimal("-0"), "USD", "amount must be greater than zero"),
    (Decimal("NaN"), "USD", "amount must be greater than zero"),
])
def test_amounts_that_do_not_fit_are_refused(value, currency, message):
    with pytest.raises(AmountError, match=message.replace("(", r"\(").replace(")", r"\)")):
        to_amount(value, currency)


def test_json_keeps_decimals_both_ways():
    data = jsonio.loads(b'{"amount": 150.00, "n": 3, "list": [1.5, null, true, "x"]}')
    assert data["amount"] == Decimal("150.00") and isinstance(data["amount"], Decimal)
    assert jsonio.dumps(data) == '{"amount":150.00,"n":3,"list":[1.5,null,true,"x"]}'


def test_json_writes_exponents_as_plain_digits_and_escapes_strings():
    assert jsonio.dumps({"a": Decimal("1E+3"), "s": 'quote " and é'}) == '{"a":1000,"s":"quote \\" and \\u00e9"}'


@pytest.mark.parametrize("raw, message", [
    (b'{"a": NaN}', "NaN is not a JSON number"),
    (b'{"a": Infinity}', "Infinity is not a JSON number"),
    (b'{"a": -Infinity}', "-Infinity is not a JSON number"),
    (b'{"a": 1, "a": 2}', "duplicate key 'a'"),
    (b'\xfe\xff', "body is not valid UTF-8"),
    (b'{', "body is not valid JSON"),
])
def test_json_refuses_what_is_not_plain_json(raw, message):
    with pytest.raises(jsonio.JSONInputError, match=message):
        jsonio.loads(raw)


def test_json_refuses_non_finite_decimals_on_the_way_out():
    with pytest.raises(ValueError):
        jsonio.dumps({"a": Decimal("NaN")})
