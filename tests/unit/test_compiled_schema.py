"""The compiled validator (jsonschema-rs) gives the verdict jsonschema gives.

The service takes a request body's verdict from `schemas.conforms` and asks
jsonschema only for a refused body's message, so the two must agree: on
bodies drawn from the request schema, and on bodies broken on purpose (fields
dropped, added or replaced by junk, GUIDs and amounts just off, currencies and
payment methods misspelt, any JSON object). The events and the payment object
are drawn too, with broken date-times, so that every format the files use is
exercised.

How many bodies each property draws is a hypothesis settings profile:
`unit`, the default, a quarter of `full`, keeps the unit tier fast (`make
unit`); `make test` draws the full count (HYPOTHESIS_PROFILE=full). The
draws are derandomized: each profile draws the same bodies every run.
"""

from __future__ import annotations

import os
import string
from decimal import Decimal

import jsonschema_rs
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis_jsonschema import from_schema

from payment import schemas
from tests.contract_examples import CONTRACT_EXAMPLES
from tests.support import json_refs

REQUEST = "payment-request.schema.json"
REQUEST_SCHEMA = schemas.load(REQUEST)
FIELDS = list(REQUEST_SCHEMA["properties"])
GUID = "7c9e6679-7425-40de-944b-e07fc1f90ae7"

settings.register_profile("full", max_examples=200)
settings.register_profile("unit", max_examples=50)
# A parent rather than a profile loaded for the whole process: other tiers'
# property tests keep their own counts.
SETTINGS = settings(settings.get_profile(os.environ.get("HYPOTHESIS_PROFILE", "unit")),
                    deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
# Drawing from the larger schemas is slow; they are here for their formats.
OTHER_SETTINGS = settings(SETTINGS, max_examples=SETTINGS.max_examples // 5)


def agree(filename: str, instance) -> bool:
    reference = schemas.validator(filename).is_valid(instance)
    assert schemas.conforms(filename, instance) == reference, (filename, reference, instance)
    return reference


# --- what a JSON body can hold, as jsonio.loads gives it ------------------------

as_parsed = st.integers() | st.decimals(allow_nan=False, allow_infinity=False)
json_values = st.recursive(
    st.none() | st.booleans() | as_parsed | st.text(max_size=40),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=12,
)


def parsed(body):
    """A drawn body as the service sees it: numbers with a fraction as Decimal."""
    if isinstance(body, dict):
        return {key: parsed(value) for key, value in body.items()}
    if isinstance(body, list):
        return [parsed(value) for value in body]
    if isinstance(body, float):
        return Decimal(repr(body))
    return body


# --- values just off what the schema takes ----------------------------------------

hex_digit = st.sampled_from(string.hexdigits)


@st.composite
def near_guids(draw):
    guid = str(draw(st.uuids()))
    guid = draw(st.sampled_from([guid, guid.upper()]))
    at = draw(st.integers(0, len(guid) - 1))
    junk = draw(st.characters(exclude_categories=["Cs"]) | hex_digit | st.just("-"))
    return draw(st.sampled_from([
        guid,                                   # valid, either case
        guid[:at] + junk + guid[at + 1:],       # one character replaced
        guid[:at] + junk + guid[at:],           # one inserted
        guid[:at] + guid[at + 1:],              # one dropped
        guid + "\n", " " + guid, "{" + guid + "}", "urn:uuid:" + guid,
        guid.replace("-", ""),
    ]))


amounts = st.one_of(
    st.decimals(allow_nan=False, allow_infinity=False),
    st.decimals(min_value=Decimal("-1e16"), max_value=Decimal("1e16"), allow_nan=False, places=4),
    st.integers(min_value=-10**34, max_value=10**34),
    st.sampled_from([
        0, Decimal("0"), Decimal("-0"), Decimal("-0.0"), Decimal("0E-999999"), Decimal("1E-999999"),
        Decimal("-1E-999999"), 10**15, 10**15 - 1, Decimal("1E+15"), Decimal("999999999999999.99"),
        Decimal("999999999999999.9999999999999999999"), Decimal("1000000000000000.000000000000000001"),
        Decimal("1E+999999"), 10**34, True, False, "150.00", None,
    ]),
)
currencies = st.one_of(
    st.sampled_from(REQUEST_SCHEMA["$defs"]["currency"]["enum"]).flatmap(
        lambda code: st.sampled_from([code, code.lower(), code + " ", code[:2], code + "X"])),
    st.text(max_size=4),
)
methods = st.one_of(
    st.sampled_from(REQUEST_SCHEMA["$defs"]["paymentMethod"]["enum"]).flatmap(
        lambda name: st.sampled_from([name, name.upper(), name.replace("_", "-"), name + "\n"])),
    st.text(max_size=12),
)
# A date-time the pattern (^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$) takes
# but the calendar or the clock may not: month 13, February 30th, hour 24.
# Seconds stop at 59 and years start at 1: see DATE_TIME_DIFFERENCES.
near_date_times = st.builds(
    "{:04d}-{:02d}-{:02d}T{:02d}:{:02d}:{:02d}{}Z".format,
    st.integers(1, 9999), st.integers(0, 19), st.integers(0, 39), st.integers(0, 29),
    st.integers(0, 69), st.integers(0, 59),
    st.sampled_from(["", ".5", ".000001", ".123456789123"]),
)

token_characters = string.ascii_letters + string.digits + "_-"
# Tokens the pattern takes, and just past it: a character outside the set,
# a final newline (which Python's `$` alone would let through), one too long.
tokens = st.one_of(
    st.text(token_characters, min_size=1, max_size=255),
    st.text(token_characters, min_size=1, max_size=20).flatmap(lambda token: st.sampled_from([
        token + "\n", "\n" + token, token + " ", token + "é", token + ".", "", token * 300])),
    st.text(max_size=12),
)

FIELD_JUNK = {
    "orderId": near_guids(), "customerId": near_guids(), "reservationId": near_guids() | st.none(),
    "amount": amounts, "currency": currencies, "paymentMethod": methods, "paymentToken": tokens,
}


# --- the request -------------------------------------------------------------------

valid_requests = from_schema(REQUEST_SCHEMA).map(parsed)


@SETTINGS
@given(body=valid_requests)
def test_both_accept_bodies_drawn_from_the_request_schema(body):
    assert agree(REQUEST, body)


@pytest.mark.parametrize("token, valid", [
    ("pm_1Pq2Rs3Tu", True), ("a" * 255, True), ("pm_1\n", False), ("\npm_1", False), ("pm 1", False),
    ("pm_é", False), ("", False), ("a" * 256, False), ("pm_1\r", False),
])
def test_both_judge_payment_tokens_alike(token, valid):
    assert agree(REQUEST, {"orderId": GUID, "customerId": GUID, "amount": 1, "paymentToken": token}) is valid


def damaged(body, kind, field, junk):
    body = dict(body)
    if kind == "drop":
        body.pop(field, None)
    elif kind == "replace":
        body[field] = junk
    else:
        body["x" + field] = junk  # an unknown field
    return body


junk_for_field = st.sampled_from(FIELDS).flatmap(
    lambda field: st.tuples(st.just(field), FIELD_JUNK[field] | json_values))
damaged_requests = st.builds(
    lambda body, kind, field_junk: damaged(body, kind, *field_junk),
    valid_requests, st.sampled_from(["drop", "replace", "replace", "replace", "extra"]), junk_for_field,
)


def test_both_judge_damaged_request_bodies_alike():
    verdicts = []

    @SETTINGS
    @given(body=damaged_requests)
    def check(body):
        verdicts.append(agree(REQUEST, body))
    check()
    # Worth its runs only if the damage reaches both verdicts, mostly a refusal.
    assert verdicts.count(False) > len(verdicts) / 2 and True in verdicts


@SETTINGS
@given(body=st.fixed_dictionaries({}, optional=FIELD_JUNK))
def test_both_judge_near_miss_fields_alike(body):
    agree(REQUEST, body)


@SETTINGS
@given(body=st.dictionaries(st.sampled_from(FIELDS) | st.text(max_size=10), json_values, max_size=7))
def test_both_judge_any_json_object_alike(body):
    agree(REQUEST, body)


@pytest.mark.parametrize("body", [
    {"orderId": "\ud800", "customerId": GUID, "amount": 1},
    {"orderId": GUID, "customerId": GUID, "amount": 1, "\udfff": 1},
], ids=["in a value", "in a key"])
def test_a_lone_surrogate_is_left_to_jsonschema(body):
    # json.loads turns "\ud800" into a str jsonschema-rs cannot hand to Rust.
    with pytest.raises(UnicodeEncodeError):
        schemas.compiled(REQUEST).is_valid(body)
    assert agree(REQUEST, body) is False


# --- the events and the payment object: date-time and the shared $defs --------------

def drawn(filename: str):
    # hypothesis-jsonschema resolves no $ref to another file: draw from the
    # schema with those inlined.
    inlined = jsonschema_rs.dereference(schemas.load(filename), registry=schemas._compiled_registry())
    return from_schema(inlined).map(parsed)


@st.composite
def with_one_value_replaced(draw, document, junk):
    """The document with one value, at any depth, replaced."""
    document = draw(document)
    paths, stack = [], [((), document)]
    while stack:
        path, node = stack.pop()
        children = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
        for key, child in children:
            paths.append(path + (key,))
            stack.append((path + (key,), child))
    if not paths:
        return document
    *parents, last = draw(st.sampled_from(paths))
    node = document
    for key in parents:
        node = node[key]
    node[last] = draw(junk)
    return document


OTHER_FILES = ["payment.schema.json", "payment-succeeded.schema.json", "payment-failed.schema.json"]
other_junk = near_date_times | near_guids() | amounts | json_values


@pytest.mark.parametrize("filename", OTHER_FILES)
def test_both_accept_documents_drawn_from_the_other_schemas(filename):
    @OTHER_SETTINGS
    @given(document=drawn(filename))
    def check(document):
        assert agree(filename, document)
    check()


@pytest.mark.parametrize("filename", OTHER_FILES)
def test_both_judge_damaged_documents_alike(filename):
    @OTHER_SETTINGS
    @given(document=with_one_value_replaced(drawn(filename), other_junk))
    def check(document):
        agree(filename, document)
    check()


@SETTINGS
@given(value=near_date_times)
def test_both_judge_date_times_alike(value):
    agree("payment.schema.json", {**payment_example(), "createdAt": value})


def payment_example() -> dict:
    return dict(CONTRACT_EXAMPLES["response_200_success"][1]["payment"])


# jsonschema (rfc3339-validator, and Python's `$`, which matches before a final
# newline) and jsonschema-rs differ on these date-times, which only responses
# and events carry. The service writes its own date-times and checks none in a
# request with the compiled validator; the request schema must stay so.
DATE_TIME_DIFFERENCES = ["2016-12-31T23:59:60Z", "0000-01-01T00:00:00Z", "2026-03-04T15:30:00Z\n"]


@pytest.mark.parametrize("value", DATE_TIME_DIFFERENCES)
def test_date_times_the_two_judge_differently(value):
    document = {**payment_example(), "createdAt": value}
    assert schemas.validator("payment.schema.json").is_valid(document) != \
        schemas.conforms("payment.schema.json", document)


def test_the_request_schema_holds_no_date_time():
    def formats(node):
        if isinstance(node, dict):
            yield from ([node["format"]] if "format" in node else [])
            for value in node.values():
                yield from formats(value)
        elif isinstance(node, list):
            for value in node:
                yield from formats(value)
    assert set(formats(REQUEST_SCHEMA)) == {"uuid"}
    assert all(ref.startswith("#") for ref in json_refs(REQUEST_SCHEMA))


@pytest.mark.parametrize("name", sorted(CONTRACT_EXAMPLES))
def test_the_contract_examples_are_valid_to_both(name):
    filename, example = CONTRACT_EXAMPLES[name]
    assert agree(filename, example)
