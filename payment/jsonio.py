"""JSON in and out with money kept as Decimal.

Numbers with a fraction or exponent are parsed as Decimal, never float, and
Decimals are written back digit for digit (`150.00` stays `150.00`). NaN,
Infinity and duplicate keys are rejected: JSON allows neither meaningfully,
and a duplicated `amount` would otherwise pass with whichever value came last.

Every number, wherever it is in the document, is held exactly or refused:
at most MAX_NUMBER_DIGITS digits as written (leading zeros aside) and an
exponent within Decimal's default range. Nothing is rounded on the way in,
and a number too long for Python's int conversion never reaches it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from decimal import (
    Clamped,
    Context,
    Decimal,
    Inexact,
    InvalidOperation,
    Overflow,
    Rounded,
    Subnormal,
    Underflow,
)
from typing import Any, NoReturn

# Decimal128's precision: an amount (below 10^15, four decimals at most) needs
# 19 digits; no real order or request needs more than 34.
MAX_NUMBER_DIGITS = 34

# Reading a number in this context raises instead of rounding it (Rounded,
# Inexact) or moving it into range (Overflow, Underflow, Subnormal, Clamped).
_HOLD = Context(prec=MAX_NUMBER_DIGITS, Emax=999999, Emin=-999999,
                traps=[InvalidOperation, Inexact, Rounded, Overflow, Underflow, Subnormal, Clamped])


class JSONInputError(ValueError):
    """The bytes are not acceptable JSON; the message is safe to show a client."""


def _reject_constant(name: str) -> NoReturn:
    raise JSONInputError(f"{name} is not a JSON number")


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj: dict[str, Any] = {}
    for key, value in pairs:
        if key in obj:
            raise JSONInputError(f"duplicate key {key[:40]!r}")
        obj[key] = value
    return obj


def _held(literal: str) -> Decimal:
    """The JSON number literal as a Decimal, exactly, or JSONInputError."""
    try:
        return _HOLD.create_decimal(literal)
    except (Overflow, Underflow, Subnormal, Clamped, InvalidOperation):
        # The exponent: past the context's range, or past what Decimal takes
        # at all. Checked first: such a number is often also rounded.
        raise JSONInputError("number is out of range and cannot be held exactly") from None
    except (Inexact, Rounded):
        raise JSONInputError(
            f"number has more than {MAX_NUMBER_DIGITS} digits and cannot be held exactly") from None


def _held_int(literal: str) -> int:
    return int(_held(literal))


def loads(data: bytes | str) -> Any:
    """The JSON value: a dict, list, str, int, Decimal, bool or None."""
    if isinstance(data, bytes):
        try:
            data = data.decode("utf-8")
        except UnicodeDecodeError:
            raise JSONInputError("body is not valid UTF-8") from None
    try:
        return json.loads(
            data,
            parse_float=_held,
            parse_int=_held_int,
            parse_constant=_reject_constant,
            object_pairs_hook=_no_duplicate_keys,
        )
    except JSONInputError:
        raise
    except RecursionError:
        raise JSONInputError("body is nested too deeply") from None
    except json.JSONDecodeError as exc:
        raise JSONInputError(f"body is not valid JSON ({_decode_problem(exc)})") from None


def _decode_problem(exc: json.JSONDecodeError) -> str:
    """`Expecting value at position 12`. A few of the json module's messages
    end in "at" already (`Unterminated string starting at`), which would
    read "at at position"."""
    return f"{exc.msg.removesuffix(' at')} at position {exc.pos}"


def dumps(obj: object) -> str:
    """Compact JSON; Decimal values are written as JSON numbers, exactly."""
    return "".join(_encode(obj))


_encode_str = json.encoder.encode_basestring_ascii


def _encode(obj: object) -> Iterator[str]:
    if obj is None:
        yield "null"
    elif obj is True:
        yield "true"
    elif obj is False:
        yield "false"
    elif isinstance(obj, str):
        yield _encode_str(obj)
    elif isinstance(obj, Decimal):
        if not obj.is_finite():
            raise ValueError("cannot encode a non-finite Decimal")
        yield format(obj, "f")
    elif isinstance(obj, int):
        yield int.__repr__(obj)
    elif isinstance(obj, dict):
        yield "{"
        first = True
        for key, value in obj.items():
            if not first:
                yield ","
            first = False
            yield _encode_str(str(key))
            yield ":"
            yield from _encode(value)
        yield "}"
    elif isinstance(obj, (list, tuple)):
        yield "["
        for index, value in enumerate(obj):
            if index:
                yield ","
            yield from _encode(value)
        yield "]"
    else:
        raise TypeError(f"cannot encode {type(obj).__name__} as JSON")
