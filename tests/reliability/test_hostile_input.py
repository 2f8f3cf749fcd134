"""Hostile input: bodies drawn from the request schema (valid ones, and ones
broken on purpose), arbitrary bytes, and the classic traps. Each gets a 4xx
envelope with a message a person can act on; never a 5xx, a row or an event."""

from __future__ import annotations

import json
import os
import string
from decimal import ROUND_UP, Decimal

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis_jsonschema import from_schema
from psycopg.rows import dict_row

from payment import jsonio, schemas
from payment.currencies import MINOR_UNITS
from tests.expected_events import assert_as_committed
from tests.support import TOPICS, payment_body
from tests.timing import eventually

# Input handling: the same whichever way the service reaches PostgreSQL.
pytestmark = pytest.mark.route_independent

REQUEST_SCHEMA = schemas.load("payment-request.schema.json")
FIELDS = list(REQUEST_SCHEMA["properties"])
# `make reliability-soak` draws ten times as many.
EXAMPLES = 60 * int(os.environ.get("RELIABILITY_SCALE", "1"))
SETTINGS = settings(max_examples=EXAMPLES, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=40),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=12,
)


def assert_refused(reply):
    assert 400 <= reply.status < 500, (reply.status, reply.text)
    assert reply.body["success"] is False and reply.body["payment"] is None
    message = reply.body["errorMessage"]
    assert message.startswith("Invalid request: ") and len(message) < 200, message


# What a request may write, each row known by its key.
KEYS = {"payments": "id", "outbox": "event_id", "simulator_charges": "payment_id"}


class Writes:
    """The rows and events added since it was made: what one request wrote.
    A hypothesis test runs many examples in one test function, so each
    example takes its own (the `nothing_happened` fixture sees only the end)."""

    def __init__(self, database, events):
        self.database, self.events = database, events
        self.before = self._rows()
        events.mark()

    def _rows(self) -> dict[str, dict]:
        with psycopg.connect(self.database.url, row_factory=dict_row) as conn:
            return {table: {row[key]: row for row in conn.execute(f"SELECT * FROM bc_payment.{table}")}
                    for table, key in KEYS.items()}

    def rows(self) -> dict[str, list[dict]]:
        now = self._rows()
        return {table: [row for key, row in now[table].items() if key not in self.before[table]] for table in KEYS}

    def assert_none(self) -> None:
        assert self.rows() == {table: [] for table in KEYS}
        assert self.events.all() == {topic: [] for topic in TOPICS}

    def assert_one_payment(self, body: dict, status: str) -> None:
        """One payment of the body's order, settled as `status`, with its one
        charge in the gateway's ledger, its one outbox row and its event on
        its topic, and nothing else."""
        rows = self.rows()
        [payment] = rows["payments"]
        assert (str(payment["order_id"]), str(payment["customer_id"]), payment["status"]) == (
            body["orderId"].lower(), body["customerId"].lower(), status), payment
        assert payment["amount"] == Decimal(str(body["amount"])), (payment["amount"], body["amount"])
        [charge] = rows["simulator_charges"]
        assert (charge["payment_id"], charge["succeeded"], charge["amount"]) == (
            payment["id"], status == "succeeded", payment["amount"]), charge
        topic = "payment-succeeded" if status == "succeeded" else "payment-failed"
        [outbox] = rows["outbox"]
        assert (outbox["payment_id"], outbox["topic"]) == (payment["id"], topic), outbox
        # Confirmed at request time, or soon after by the producer.
        eventually(lambda: self.events.read(topic), f"the event on {topic}")
        [event] = self.events.read(topic)
        assert_as_committed(event, outbox)
        assert {other: self.events.read(other) for other in TOPICS if other != topic} == {
            other: [] for other in TOPICS if other != topic}


def at_currency_precision(body_and_flag):
    """Half the bodies get an amount their currency can carry, and an order
    that matches them, so that the whole flow runs, declines included."""
    body, fits = body_and_flag
    if fits:
        currency = body.get("currency", "USD")
        amount = Decimal(str(body["amount"])).quantize(Decimal(1).scaleb(-MINOR_UNITS[currency]), ROUND_UP)
        body = {**body, "amount": amount}
    return body, fits


valid_bodies = st.tuples(from_schema(REQUEST_SCHEMA), st.booleans()).map(at_currency_precision)


@SETTINGS
@given(body_and_order=valid_bodies)
def test_schema_valid_bodies_never_fail_the_server(client, sandbox, database, events, body_and_order):
    body, order_exists = body_and_order
    if order_exists:
        sandbox.put_order(body["orderId"], customer_id=body["customerId"], total=float(body["amount"]),
                          currency=body.get("currency", "USD"))
    writes = Writes(database, events)
    reply = client.pay(jsonio.dumps(body) if order_exists else json.dumps(body))
    # 403: an order id drawn twice, already paid by the customer drawn first.
    assert reply.status in (200, 400, 402, 403, 404), (reply.status, reply.text)
    if reply.status == 200:
        assert reply.body["payment"]["orderId"] == body["orderId"].lower()
    if reply.status == 200 and reply.headers.get("Idempotent-Replayed") != "true":
        writes.assert_one_payment(body, "succeeded")
    elif reply.status == 402:
        writes.assert_one_payment(body, "failed")
    else:
        # A refusal, or the order's earlier success replayed.
        writes.assert_none()


def broken(body_and_damage):
    body, (kind, field, junk) = body_and_damage
    body = dict(body)
    if kind == "drop" and field in ("orderId", "customerId", "amount"):
        body.pop(field)
    elif kind == "replace":
        body[field] = junk
    else:
        body["x" + field] = junk  # an unknown field
    return body


damaged_bodies = st.tuples(
    from_schema(REQUEST_SCHEMA),
    st.tuples(st.sampled_from(["drop", "replace", "extra"]), st.sampled_from(FIELDS), json_values),
).map(broken).filter(lambda body: not schemas.validator("payment-request.schema.json").is_valid(body))


@SETTINGS
@given(body=damaged_bodies)
def test_schema_invalid_bodies_are_4xx(client, nothing_happened, body):
    assert_refused(client.pay(json.dumps(body)))


@SETTINGS
@given(value=json_values)
def test_any_json_that_is_not_a_request_is_4xx(client, nothing_happened, value):
    assert_refused(client.pay(json.dumps(value)))


@SETTINGS
@given(raw=st.binary(max_size=200))
def test_arbitrary_bytes_are_4xx(client, nothing_happened, raw):
    assert_refused(client.pay(raw))


GOOD = '"orderId": "7c9e6679-7425-40de-944b-e07fc1f90ae7", "customerId": "a8098c1a-f86e-11da-bd1a-00112444be1e"'
CLASSICS = {
    "not JSON": (b"orderId=1&amount=2", 400, "body is not valid JSON"),
    "JSON string": (b'"hello"', 400, "body must be a JSON object"),
    "JSON null": (b"null", 400, "body must be a JSON object"),
    "duplicate keys": (f'{{{GOOD}, "amount": 1, "amount": 150}}'.encode(), 400, "duplicate key 'amount'"),
    "NaN": (f'{{{GOOD}, "amount": NaN}}'.encode(), 400, "NaN is not a JSON number"),
    "Infinity": (f'{{{GOOD}, "amount": Infinity}}'.encode(), 400, "Infinity is not a JSON number"),
    "1e309": (f'{{{GOOD}, "amount": 1e309}}'.encode(), 400, "amount is too large"),
    "-0": (f'{{{GOOD}, "amount": -0}}'.encode(), 400, "amount must be greater than zero"),
    "-0.0": (f'{{{GOOD}, "amount": -0.0}}'.encode(), 400, "amount must be greater than zero"),
    "30 decimals": (f'{{{GOOD}, "amount": 1.{"1" * 30}}}'.encode(), 400,
                    "amount has more decimals than USD allows (2)"),
    "1e-400": (f'{{{GOOD}, "amount": 1e-400}}'.encode(), 400, "amount has more decimals than USD allows (2)"),
    "huge string": (f'{{{GOOD}, "amount": 1, "currency": "{"A" * 60000}"}}'.encode(), 400,
                    "currency must be a three-letter ISO 4217 code"),
    "huge key": (f'{{{GOOD}, "amount": 1, "{"k" * 60000}": 1}}'.encode(), 400, "unknown field 'kkkk"),
    "deep nesting": (b'{"a":' * 5000 + b"1" + b"}" * 5000, 400, "body is nested too deeply"),
    "over the limit": (b'{"a": "' + b"x" * (64 * 1024) + b'"}', 413, "body is larger than 64 KiB"),
    "non-UTF-8": (f'{{{GOOD}, "currency": "\xe9"}}'.encode("latin-1"), 400, "body is not valid UTF-8"),
    "UTF-16": (f'{{{GOOD}, "amount": 1}}'.encode("utf-16"), 400, "body is not valid UTF-8"),
    "control characters": (f'{{{GOOD}, "paymentMethod": "\x00\x01"}}'.encode(), 400, "body is not valid JSON"),
    # JSON escapes that decode to a lone surrogate: a str with no UTF-8 form.
    "lone surrogate value": (b'{"orderId": "\\ud800", "customerId": "a8098c1a-f86e-11da-bd1a-00112444be1e", '
                             b'"amount": 1}', 400, "orderId must be a GUID"),
    "lone surrogate key": (f'{{{GOOD}, "amount": 1, "\\udfff": 1}}'.encode(), 400, "unknown field"),
}


@pytest.mark.parametrize("name", list(CLASSICS))
def test_classic_traps(client, nothing_happened, name):
    raw, status, message = CLASSICS[name]
    reply = client.pay(raw)
    assert reply.status == status
    assert_refused(reply)
    assert message in reply.body["errorMessage"]


@pytest.mark.parametrize("content_type, status", [
    ("text/plain", 415), ("application/x-www-form-urlencoded", 415), ("application/xml", 415),
    ("", 415), ("application/json; charset=utf-8", 200),
])
def test_content_types(client, sandbox, database, events, content_type, status):
    body = payment_body("7c9e6679-7425-40de-944b-e07fc1f90ae7")
    writes = Writes(database, events)
    reply = client.pay(body, content_type=content_type or None)
    assert reply.status == status
    if status == 415:
        assert reply.body["errorMessage"] == "Invalid request: Content-Type must be application/json"
        writes.assert_none()
    else:
        writes.assert_one_payment(body, "succeeded")


def test_unicode_lookalike_guid_is_refused(client, nothing_happened):
    lookalike = "7c9e6679-7425-40de-944b-e07fc1f90ae٧"  # an Arabic-Indic seven
    assert all(c in string.hexdigits + "-" for c in lookalike[:-1])
    reply = client.pay(json.dumps({"orderId": lookalike, "customerId": "a8098c1a-f86e-11da-bd1a-00112444be1e",
                                   "amount": 1}))
    assert reply.status == 400
    assert reply.body["errorMessage"] == "Invalid request: orderId must be a GUID"
