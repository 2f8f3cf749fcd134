"""Every refusal of the refund routes, through falcon.testing over the app that
`create_app` builds, with the hand-written fakes of tests/fakes.py: the
status, the exact envelope (`"refund": null`) and its headers, and what the
fakes saw. A request refused by the HTTP layer (token scope, content type,
size, JSON, schema, numbers, key, ids) never reaches the store or the
gateway."""

from __future__ import annotations

import json
import uuid
from dataclasses import replace
from datetime import datetime, timezone
from decimal import Decimal

import falcon.testing
import pytest

from payment import jsonio, refunds, schemas, service
from payment.api.app import create_app
from payment.api.auth import TokenVerifier
from payment.config import MARK_DELAY_S, Config
from payment.metrics import Metrics
from payment.model import PaymentRequest, RefundRequest
from payment.ports import GatewayUnreachable
from tests.fakes import NOW, FakeDelivery, FakeGateway, FakeOrdering, FakeReservations, FakeStore
from tests.unit.test_refusals import access_lines  # noqa: F401 - a fixture
from tests.tokens import HS256_SECRET, bearer, claims, hs256

CUSTOMER = uuid.UUID("a8098c1a-f86e-11da-bd1a-00112444be1e")
ERRORS = "refund-response.schema.json"


class Refunds:
    """The app over fakes, with one succeeded payment of 150.00 USD."""

    def __init__(self, verifier: TokenVerifier | None = None, status: str = "succeeded"):
        self.store, self.gateway, self.metrics = FakeStore(), FakeGateway(), Metrics()
        self.delivery = FakeDelivery(self.store)
        request = PaymentRequest(uuid.uuid4(), CUSTOMER, None, Decimal("150.00"), "USD", "credit_card")
        pending = self.store.insert_pending(request, uuid.uuid4(), is_simulated=True)
        self.payment = self.store.payments[pending.id] = replace(pending, status=status, processed_at=NOW)
        self.store.log.clear()
        deps = service.Dependencies(
            store=self.store, ordering=FakeOrdering(), reservations=FakeReservations(), gateway=self.gateway,
            delivery=self.delivery, topic_succeeded="payment-succeeded", topic_failed="payment-failed",
            delivery_timeout=0.01, pending_timeout=Config.pending_timeout)
        refund_deps = refunds.RefundDependencies(
            store=self.store, gateway=self.gateway, delivery=self.delivery, topic_refunded="payment-refunded",
            topic_refund_failed="payment-refund-failed", delivery_timeout=0.01,
            pending_timeout=Config.pending_timeout, mark_delay=MARK_DELAY_S)
        self.http = falcon.testing.TestClient(create_app(
            deps, refund_deps=refund_deps, max_body_bytes=Config.max_body_bytes, metrics=self.metrics,
            verifier=verifier, refund_scope=Config.auth_refund_scope))

    def refund(self, body=b"{}", *, payment_id=None, key: str | None = "key-1",
               content_type: str | None = "application/json", headers=None):
        data = body if isinstance(body, bytes) else jsonio.dumps(body).encode()
        headers = {**({"Content-Type": content_type} if content_type else {}),
                   **({"Idempotency-Key": key} if key is not None else {}), **(headers or {})}
        result = self.http.simulate_post(f"/payments/{payment_id or self.payment.id}/refunds", body=data,
                                         headers=headers)
        assert result.headers["Content-Type"] == "application/json"
        answer = json.loads(result.text, parse_float=Decimal)
        schemas.validator(ERRORS).validate(answer)
        return result, answer

    def untouched(self) -> bool:
        """Nothing read, written, refunded or published."""
        return (self.store.reads == [] and self.store.log == [] and self.store.refunds == {}
                and self.gateway.refund_calls == 0 and self.delivery.sent == [])


def refused(message: str) -> dict:
    return {"success": False, "errorMessage": message, "refund": None}


BAD = [
    (b"", "Invalid request: body is not valid JSON (Expecting value at position 0)"),
    (b"[]", "Invalid request: body must be a JSON object"),
    (b'{"amount": 1, "amount": 2}', "Invalid request: duplicate key 'amount'"),
    (b'{"amount": NaN}', "Invalid request: NaN is not a JSON number"),
    (b'{"amount": 1' + b"0" * 40 + b"}", "Invalid request: number has more than 34 digits and cannot be held exactly"),
    (b'{"amount": "10.00"}', "Invalid request: amount must be a number"),
    (b'{"amount": null}', "Invalid request: amount must be a number"),
    (b'{"amount": -1}', "Invalid request: amount must be greater than zero"),
    (b'{"amount": 1e15}', "Invalid request: amount is too large"),
    (b'{"reason": "goodwill"}',
     "Invalid request: reason must be one of requested_by_customer, event_cancelled, duplicate, fraudulent"),
    (b'{"paymentId": "x"}', "Invalid request: unknown field 'paymentId'"),
    (b'"\\ud800"', "Invalid request: body must be a JSON object"),
]


@pytest.mark.parametrize("body, message", BAD)
def test_a_bad_body_is_400_and_reaches_nothing(body, message):
    app = Refunds()
    result, answer = app.refund(body)
    assert (result.status_code, answer) == (400, refused(message))
    assert app.untouched()


@pytest.mark.parametrize("key, message", [
    (None, "Invalid request: the Idempotency-Key header is required"),
    ("", "Invalid request: the Idempotency-Key header is required"),
    ("x" * 256, "Invalid request: Idempotency-Key must be 1 to 255 printable ASCII characters"),
    ("café", "Invalid request: Idempotency-Key must be 1 to 255 printable ASCII characters"),
    ("tab\there", "Invalid request: Idempotency-Key must be 1 to 255 printable ASCII characters"),
])
def test_a_missing_or_malformed_key_is_400_and_reaches_nothing(key, message):
    app = Refunds()
    result, answer = app.refund(key=key)
    assert (result.status_code, answer) == (400, refused(message))
    assert app.untouched()


def test_every_printable_ascii_key_of_1_to_255_characters_is_taken():
    app = Refunds()
    for key in ("k", "x" * 255, "".join(chr(c) for c in range(0x21, 0x7f)), "order 42: refund #1"):
        result, _ = app.refund({"amount": Decimal("1.00")}, key=key)
        assert result.status_code == 200, key
    assert len(app.store.refunds) == 4


@pytest.mark.parametrize("content_type, body, status, message", [
    (None, b"{}", 415, "Invalid request: Content-Type must be application/json"),
    ("text/plain", b"{}", 415, "Invalid request: Content-Type must be application/json"),
    ("application/json", b'{"reason": "' + b"x" * (Config.max_body_bytes + 1) + b'"}', 413,
     "Invalid request: body is larger than 64 KiB"),
])
def test_content_type_and_size_are_the_payments_rules(content_type, body, status, message):
    app = Refunds()
    result, answer = app.refund(body, content_type=content_type)
    assert (result.status_code, answer) == (status, refused(message))
    assert app.untouched()


@pytest.mark.parametrize("path_id", ["not-a-guid", "7c9e6679742540de944be07fc1f90ae7",
                                     "{7c9e6679-7425-40de-944b-e07fc1f90ae7}"])
def test_a_payment_id_that_is_not_a_guid_is_400(path_id):
    app = Refunds()
    result, answer = app.refund(payment_id=path_id)
    assert (result.status_code, answer) == (400, refused("Invalid request: paymentId must be a GUID"))
    assert app.untouched()


def test_a_token_without_the_refund_scope_is_403_before_anything_is_read():
    app = Refunds(TokenVerifier(hs256_secret=HS256_SECRET, service_scope=Config.auth_service_scope,
                                refund_scope=Config.auth_refund_scope, leeway=0))
    own = bearer(hs256(claims(sub=str(CUSTOMER))))
    for body in (b"{}", b"not json"):
        result, answer = app.refund(body, headers=own)
        assert (result.status_code, answer) == (
            403, refused("Forbidden: refunding needs a token with the payments:refund scope"))
    assert app.untouched()
    result, _ = app.refund(headers=bearer(hs256(claims(sub=str(CUSTOMER), scope="payments:refund"))))
    assert result.status_code == 200


def test_refunds_are_counted_by_outcome_and_error_code():
    app = Refunds()
    app.refund({"amount": Decimal("10.00")}, key="a")
    app.refund({"amount": Decimal("10.00")}, key="a")
    app.refund({"amount": Decimal("1.77")}, key="b")
    app.refund({"amount": Decimal("500.00")}, key="c")
    app.refund({"amount": Decimal("1.00")}, key="a")
    app.refund(payment_id=uuid.uuid4(), key="d")
    app.gateway.fail_with = GatewayUnreachable()
    assert app.refund({"amount": Decimal("2.00")}, key="e")[0].status_code == 502
    counted = {(s.labels["outcome"], s.labels["error_code"]): s.value
               for metric in app.metrics.refunds.collect() for s in metric.samples
               if s.name == "payment_refunds_total"}
    assert counted == {("succeeded", ""): 1, ("replayed", ""): 1, ("failed", "REFUND_DECLINED"): 1,
                       ("rejected", "REFUND_INVALID"): 1, ("rejected", "IDEMPOTENCY_KEY_REUSED"): 1,
                       ("rejected", "PAYMENT_NOT_FOUND"): 1, ("error", "GATEWAY_UNAVAILABLE"): 1}


REFUNDS_ROUTE = "/payments/{paymentId}/refunds"


def in_flight(app: Refunds) -> None:
    """A refund under the key "key-1" still pending, then the same request again."""
    body = {"amount": Decimal("5.00")}
    app.store.insert_pending_refund(
        RefundRequest(app.payment.id, Decimal("5.00"), "requested_by_customer", "key-1",
                      refunds.fingerprint(app.payment.id, Decimal("5.00"), "requested_by_customer")),
        uuid.uuid4(), is_simulated=True, created_at=datetime.now(timezone.utc))
    app.refund(body)


def scoped() -> Refunds:
    return Refunds(TokenVerifier(hs256_secret=HS256_SECRET, service_scope=Config.auth_service_scope,
                                 refund_scope=Config.auth_refund_scope, leeway=0))


# (the app, what is sent, status, kind): each refusal of POST /payments/{paymentId}/refunds
# counted once by its kind (docs/api.md, Refunds; test_refusal_kinds.py holds that table to these).
REFUND_KINDS = [
    (Refunds, lambda app: app.refund(b"[]"), 400, "schema"),
    (Refunds, lambda app: app.refund({"reason": "goodwill"}), 400, "schema"),
    (Refunds, lambda app: app.refund(b'{"amount": '), 400, "json"),
    (Refunds, lambda app: app.refund(key=None), 400, "parameter"),
    (Refunds, lambda app: app.refund(payment_id="nope"), 400, "parameter"),
    (Refunds, lambda app: app.refund({"amount": Decimal("150.01")}), 400, "refund_invalid"),
    (Refunds, lambda app: app.refund({"amount": Decimal("1.001")}), 400, "refund_invalid"),
    (Refunds, lambda app: app.refund(payment_id=uuid.uuid4()), 404, "not_found"),
    (lambda: Refunds(status="failed"), lambda app: app.refund(), 409, "not_refundable"),
    (Refunds, in_flight, 409, "conflict"),
    (Refunds, lambda app: (app.refund({"amount": Decimal("1.00")}), app.refund({"amount": Decimal("2.00")})),
     422, "idempotency_key_reused"),
    (scoped, lambda app: app.refund(headers=bearer(hs256(claims(sub=str(CUSTOMER))))), 403, "forbidden"),
    (scoped, lambda app: app.refund(), 401, "auth_missing"),
    (Refunds, lambda app: app.refund(content_type="text/plain"), 415, "content_type"),
    (Refunds, lambda app: app.refund(b'{"reason": "' + b"x" * 65536 + b'"}'), 413, "too_large"),
    (Refunds, lambda app: app.refund({"amount": Decimal("1.77")}), 402, "declined"),
]


@pytest.mark.parametrize("make, send, status, kind", REFUND_KINDS,
                         ids=[f"{i}-{kind}" for i, (_, _, _, kind) in enumerate(REFUND_KINDS)])
def test_every_refusal_is_counted_by_kind_and_its_access_line_says_it(make, send, status, kind, access_lines):
    app = make()
    send(app)
    refused = {(s.labels["route"], s.labels["kind"]): s.value
               for metric in app.metrics.refusals.collect() for s in metric.samples
               if s.name == "payment_http_refusals_total"}
    assert refused == {(REFUNDS_ROUTE, kind): 1.0}
    line = access_lines()[-1]
    assert (line["status"], line["route"], line["errorKind"]) == (status, REFUNDS_ROUTE, kind)
