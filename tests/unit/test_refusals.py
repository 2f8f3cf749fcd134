"""Every refusal of the API, through falcon.testing over the app that
`create_app` builds, with hand-written fakes for the store, the ordering and
reservation services, the gateway and the delivery of events
(tests/fakes.py): the status, the exact envelope and its headers, and what
the fakes saw: nothing written, nothing charged, nothing published.

A request refused by the HTTP layer (content type, size, JSON, schema,
numbers, ids in the path or query) never reaches the store; one refused by
the payment flow (order, reservation, a charge in flight, a part at fault)
is read about but writes nothing. A decline and a replay, answers with a
payment, are here too. tests/integration/test_rejections.py keeps what needs
the real stack."""

from __future__ import annotations

import io
import json
import logging
import uuid
from datetime import datetime, timezone
from decimal import Decimal

import falcon.testing
import pytest

from payment import jsonio, refunds, schemas, service
from payment.api.app import create_app
from payment.config import MARK_DELAY_S, Config
from payment.errors import UpstreamBadResponse, UpstreamTimeout, UpstreamUnavailable
from payment.gateways.port import GatewayUnreachable
from payment.logs import JsonFormatter
from payment.metrics import Metrics
from payment.model import Order, PaymentRequest, Reservation
from tests.fakes import NOW, FakeDelivery, FakeGateway, FakeOrdering, FakeReservations, FakeStore

CUSTOMER = "a8098c1a-f86e-11da-bd1a-00112444be1e"
ORDER = "7c9e6679-7425-40de-944b-e07fc1f90ae7"
RESERVATION = "f47ac10b-58cc-4372-a567-0e02b2c3d479"
LATER = datetime(2099, 1, 1, tzinfo=timezone.utc)
RESPONSE_SCHEMA = "payment-response.schema.json"
GOOD = {"orderId": ORDER, "customerId": CUSTOMER, "amount": 150}


def refused(message: str) -> dict:
    return {"success": False, "errorMessage": message, "payment": None}


class Answer:
    def __init__(self, result: falcon.testing.Result):
        self.status = result.status_code
        self.headers = result.headers
        self.text = result.text
        assert result.headers["Content-Type"] == "application/json"
        self.body = json.loads(result.text, parse_float=Decimal)
        if self.status >= 300:
            schemas.validator(RESPONSE_SCHEMA).validate(self.body)


class Service:
    """The app over fakes. The contract's example order (150.00 USD) and
    reservation are known; `order()` adds others."""

    def __init__(self, verifier=None):
        self.store = FakeStore()
        self.ordering = FakeOrdering([Order(uuid.UUID(ORDER), uuid.UUID(CUSTOMER), Decimal("150.00"), "USD",
                                            "pending")])
        self.reservations = FakeReservations([Reservation(uuid.UUID(RESERVATION), uuid.UUID(CUSTOMER), "active",
                                                          LATER)])
        self.gateway = FakeGateway()
        self.delivery = FakeDelivery(self.store)
        self.metrics = Metrics()
        deps = service.Dependencies(
            store=self.store, ordering=self.ordering, reservations=self.reservations, gateway=self.gateway,
            delivery=self.delivery, topic_succeeded="payment-succeeded", topic_failed="payment-failed",
            delivery_timeout=0.01, pending_timeout=Config.pending_timeout)
        refund_deps = refunds.RefundDependencies(
            store=self.store, gateway=self.gateway, delivery=self.delivery, topic_refunded="payment-refunded",
            topic_refund_failed="payment-refund-failed", delivery_timeout=0.01,
            pending_timeout=Config.pending_timeout, mark_delay=MARK_DELAY_S)
        self.http = falcon.testing.TestClient(create_app(
            deps, refund_deps=refund_deps, max_body_bytes=Config.max_body_bytes, metrics=self.metrics,
            verifier=verifier, refund_scope=Config.auth_refund_scope))

    def order(self, total="150.00", customer=CUSTOMER, currency="USD", status="pending") -> str:
        order_id = uuid.uuid4()
        self.ordering.answers[order_id] = Order(order_id, uuid.UUID(customer), Decimal(total), currency, status)
        return str(order_id)

    def reservation(self, customer=CUSTOMER, status="active", expires_at=LATER) -> str:
        reservation_id = uuid.uuid4()
        self.reservations.answers[reservation_id] = Reservation(reservation_id, uuid.UUID(customer), status,
                                                                expires_at)
        return str(reservation_id)

    def pay(self, body, *, content_type: str | None = "application/json", headers=None) -> Answer:
        data = body if isinstance(body, bytes) else jsonio.dumps(body).encode()
        headers = {**({"Content-Type": content_type} if content_type else {}), **(headers or {})}
        return Answer(self.http.simulate_post("/payments", body=data, headers=headers))

    def get(self, path: str, **params) -> Answer:
        return Answer(self.http.simulate_get(path, params=params or None))

    def refusals_counted(self) -> dict:
        """payment_payments_total by (outcome, error_code)."""
        return {(s.labels["outcome"], s.labels["error_code"]): s.value
                for metric in self.metrics.payments.collect() for s in metric.samples
                if s.name == "payment_payments_total"}

    def assert_nothing_written(self):
        assert self.store.payments == {} and self.store.outbox == [] and self.store.log == []
        assert self.gateway.charges == 0
        assert self.delivery.sent == []


@pytest.fixture
def app():
    return Service()


def body(order_id=ORDER, amount="150.00", **fields) -> dict:
    return {"orderId": order_id, "customerId": CUSTOMER, "amount": Decimal(amount), "currency": "USD",
            "paymentMethod": "credit_card", **fields}


# --- refused by the HTTP layer: nothing reaches the store -----------------------------

BAD_BODIES = [
    ({k: v for k, v in GOOD.items() if k != "orderId"}, "orderId is required"),
    ({k: v for k, v in GOOD.items() if k != "customerId"}, "customerId is required"),
    ({k: v for k, v in GOOD.items() if k != "amount"}, "amount is required"),
    ({**GOOD, "orderId": "not-a-guid"}, "orderId must be a GUID"),
    ({**GOOD, "customerId": "7c9e6679742540de944be07fc1f90ae7"}, "customerId must be a GUID"),
    ({**GOOD, "reservationId": "123"}, "reservationId must be a GUID or null"),
    ({**GOOD, "orderId": 42}, "orderId must be a GUID"),
    ({**GOOD, "amount": 0}, "amount must be greater than zero"),
    ({**GOOD, "amount": -5}, "amount must be greater than zero"),
    ({**GOOD, "amount": "150.00"}, "amount must be a number"),
    ({**GOOD, "amount": True}, "amount must be a number"),
    ({**GOOD, "currency": "XYZ"}, "currency must be a three-letter ISO 4217 code, such as USD, EUR or GBP"),
    ({**GOOD, "currency": "usd"}, "currency must be a three-letter ISO 4217 code, such as USD, EUR or GBP"),
    ({**GOOD, "paymentMethod": "cash"},
     "paymentMethod must be one of credit_card, debit_card, paypal, apple_pay, google_pay"),
    ({**GOOD, "ammount": 150}, "unknown field 'ammount'"),
]


@pytest.mark.parametrize("bad, why", BAD_BODIES, ids=[why for _, why in BAD_BODIES])
def test_schema_violations_are_400(app, bad, why):
    reply = app.pay(bad)
    assert reply.status == 400
    assert reply.body == refused(f"Invalid request: {why}")
    assert app.store.reads == []
    app.assert_nothing_written()


PREFIX = b'{"orderId": "7c9e6679-7425-40de-944b-e07fc1f90ae7", "customerId": "a8098c1a-f86e-11da-bd1a-00112444be1e", '
DIGITS = jsonio.MAX_NUMBER_DIGITS
UNREADABLE = [
    (PREFIX + b'"amount": 150.001}', "amount has more decimals than USD allows (2)"),
    (PREFIX + b'"amount": 150.5, "currency": "JPY"}', "amount has more decimals than JPY allows (0)"),
    (PREFIX + b'"amount": 1e309}', "amount is too large"),
    (PREFIX + b'"amount": NaN}', "NaN is not a JSON number"),
    (PREFIX + b'"amount": Infinity}', "Infinity is not a JSON number"),
    (PREFIX + b'"amount": 1, "amount": 150}', "duplicate key 'amount'"),
    (PREFIX + b'"amount": -0}', "amount must be greater than zero"),
    (b'[1, 2]', "body must be a JSON object"),
    (b'"a string"', "body must be a JSON object"),
    (b'', "body is not valid JSON (Expecting value at position 0)"),
    (b'{"orderId": ', "body is not valid JSON (Expecting value at position 12)"),
    # The json module's message ends in "at" itself: said once, not "at at".
    (b'{"orderId": "7c9e6679', "body is not valid JSON (Unterminated string starting at position 12)"),
    (b'{"orderId": "\x01"}', "body is not valid JSON (Invalid control character at position 13)"),
    (b'{"orderId": "\xff"}', "body is not valid UTF-8"),
    (b'[' * 10_000 + b']' * 10_000, "body is nested too deeply"),
    # Numbers that cannot be held exactly, wherever they are: refused, never rounded.
    (PREFIX + b'"amount": ' + b"1" * 4301 + b"}",
     f"number has more than {DIGITS} digits and cannot be held exactly"),
    (PREFIX + b'"amount": 150.00, "x": [{"y": ' + b"1" * 4301 + b"}]}",
     f"number has more than {DIGITS} digits and cannot be held exactly"),
    (PREFIX + b'"amount": 150.' + b"0" * (DIGITS - 3) + b"1}",
     f"number has more than {DIGITS} digits and cannot be held exactly"),
    (PREFIX + b'"amount": 1e9999999999999999999999}', "number is out of range and cannot be held exactly"),
    (PREFIX + b'"amount": 1e-999999999}', "number is out of range and cannot be held exactly"),
    (PREFIX + b'"amount": 149.' + b"9" * 30 + b"}", "amount has more decimals than USD allows (2)"),
    (PREFIX + b'"amount": 150.' + b"0" * 29 + b"1}", "amount has more decimals than USD allows (2)"),
]


@pytest.mark.parametrize("raw, why", UNREADABLE, ids=[why[:50] for _, why in UNREADABLE])
def test_unreadable_bodies_and_numbers_that_cannot_be_held_are_400(app, raw, why):
    reply = app.pay(raw)
    assert reply.status == 400
    assert reply.body == refused(f"Invalid request: {why}")
    assert app.store.reads == []
    app.assert_nothing_written()


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", None])
def test_a_body_that_is_not_json_by_its_content_type_is_415(app, content_type):
    reply = app.pay(body(), content_type=content_type)
    assert reply.status == 415
    assert reply.body == refused("Invalid request: Content-Type must be application/json")
    assert app.store.reads == []
    app.assert_nothing_written()


def test_a_content_type_with_parameters_is_json_all_the_same(app):
    assert app.pay(body(), content_type="Application/JSON; charset=utf-8").status == 200


def test_a_body_over_64_kib_is_413(app):
    reply = app.pay(b'{"pad": "' + b"x" * 65536 + b'"}')
    assert reply.status == 413
    assert reply.body == refused("Invalid request: body is larger than 64 KiB")
    assert app.store.reads == []
    app.assert_nothing_written()


@pytest.mark.parametrize("path", [
    "/payments/x", "/payments/7c9e6679742540de944be07fc1f90ae7", "/payments/{7c9e6679-7425-40de-944b-e07fc1f90ae7}",
    "/payments/urn:uuid:7c9e6679-7425-40de-944b-e07fc1f90ae7", "/payments/7c9e6679-7425-40de-944b-e07fc1f90ae7%0A",
])
def test_a_payment_id_that_is_not_a_guid_is_400(app, path):
    reply = app.get(path)
    assert reply.status == 400
    assert reply.body == refused("Invalid request: paymentId must be a GUID")
    assert app.store.reads == []


@pytest.mark.parametrize("params, why", [
    ({}, "orderId is required"),
    ({"orderId": "nope"}, "orderId must be a GUID"),
    ({"orderId": "7c9e6679742540de944be07fc1f90ae7"}, "orderId must be a GUID"),
    ({"orderId": " 7c9e6679-7425-40de-944b-e07fc1f90ae7"}, "orderId must be a GUID"),
])
def test_an_order_id_query_that_is_not_a_guid_is_400(app, params, why):
    reply = app.get("/payments", **params)
    assert reply.status == 400
    assert reply.body == refused(f"Invalid request: {why}")
    assert app.store.reads == []


def test_unknown_route_and_method_get_the_services_own_messages(app):
    reply = Answer(app.http.simulate_get("/nowhere"))
    assert reply.status == 404
    assert reply.body == refused("Not found: no such resource (GET /openapi.json lists the service's endpoints)")
    # GET /payments lists an order's payments; DELETE is not a method it has.
    reply = Answer(app.http.simulate_delete("/payments"))
    assert reply.status == 405
    assert reply.body == refused("Method not allowed: this resource answers GET, POST, OPTIONS")
    assert set(reply.headers["Allow"].replace(" ", "").split(",")) == {"GET", "POST", "OPTIONS"}
    reply = Answer(app.http.simulate_put(f"/payments/{uuid.uuid4()}"))
    assert reply.status == 405 and reply.body == refused("Method not allowed: this resource answers GET, OPTIONS")
    assert app.store.reads == []


# --- refused by the payment flow: read about, nothing written ---------------------------

def test_an_unknown_order_is_404(app):
    reply = app.pay(body(str(uuid.uuid4())))
    assert reply.status == 404
    assert reply.body == refused("Order not found")
    app.assert_nothing_written()


def test_another_customers_order_is_403(app):
    reply = app.pay(body(app.order(customer=str(uuid.uuid4()))))
    assert reply.status == 403
    assert reply.body == refused("Unauthorized: Customer does not own this order")
    app.assert_nothing_written()


@pytest.mark.parametrize("order, amount, currency, why", [
    ({"total": "150.00"}, "149.99", "USD", "amount 149.99 does not match the order total 150.00"),
    ({"total": "150.004"}, "150.00", "USD", "amount 150.00 does not match the order total 150.004"),
    ({"total": "1E+30"}, "150.00", "USD",
     "amount 150.00 does not match the order total 1000000000000000000000000000000.00"),
    ({"currency": "EUR"}, "150.00", "USD", "currency USD does not match the order currency EUR"),
    ({"status": "cancelled"}, "150.00", "USD", "order is cancelled"),
    ({"status": "canceled"}, "150.00", "USD", "order is canceled"),
    ({"status": "expired"}, "150.00", "USD", "order is expired"),
    ({"status": "refunded"}, "150.00", "USD", "order is refunded"),
])
def test_an_order_that_does_not_match_is_400(app, order, amount, currency, why):
    reply = app.pay(body(app.order(**order), amount=amount, currency=currency))
    assert reply.status == 400
    assert reply.body == refused(f"Order validation failed: {why}")
    app.assert_nothing_written()


@pytest.mark.parametrize("reservation, why", [
    (None, "reservation not found"),
    ({"customer": str(uuid.uuid4())}, "reservation does not belong to the customer"),
    ({"status": "released"}, "reservation is released"),
    ({"expires_at": datetime(2020, 1, 1, tzinfo=timezone.utc)}, "reservation has expired"),
])
def test_a_reservation_that_is_not_valid_is_400(app, reservation, why):
    reservation_id = str(uuid.uuid4()) if reservation is None else app.reservation(**reservation)
    reply = app.pay(body(app.order(), reservationId=reservation_id))
    assert reply.status == 400
    assert reply.body == refused(f"Reservation validation failed: {why}")
    app.assert_nothing_written()


def test_a_payment_in_flight_is_409_with_retry_after(app):
    order_id = app.order()
    # Another request's payment, between its insert and its outcome.
    request = PaymentRequest(uuid.UUID(order_id), uuid.UUID(CUSTOMER), None, Decimal("150.00"), "USD", "paypal")
    in_flight = app.store.insert_pending(request, uuid.uuid4(), is_simulated=True,
                                         created_at=datetime.now(timezone.utc))
    app.store.log.clear()

    reply = app.pay(body(order_id))

    assert reply.status == 409
    assert reply.headers["Retry-After"] == "1"
    assert reply.body == refused("A payment for this order is already in progress")
    assert app.store.payments == {in_flight.id: in_flight}
    assert app.store.log == [] and app.store.outbox == [] and app.gateway.charges == 0 and app.delivery.sent == []


PART_FAULTS = [
    ("ordering", UpstreamTimeout, 504, "ordering service did not answer in time"),
    ("ordering", UpstreamUnavailable, 503, "ordering service is unavailable"),
    ("ordering", UpstreamBadResponse, 502, "ordering service returned an invalid response"),
    ("reservations", UpstreamTimeout, 504, "reservation service did not answer in time"),
    ("reservations", UpstreamUnavailable, 503, "reservation service is unavailable"),
    ("reservations", UpstreamBadResponse, 502, "reservation service returned an invalid response"),
]


@pytest.mark.parametrize("part, fault, status, message", PART_FAULTS, ids=[m for *_, m in PART_FAULTS])
def test_an_upstream_fault_is_a_5xx_that_names_the_part(app, part, fault, status, message):
    getattr(app, part).fault = fault
    reply = app.pay(body(reservationId=RESERVATION))
    assert reply.status == status
    assert reply.headers["Retry-After"] == "1"
    assert reply.body == refused(f"Payment processing error: {message}")
    app.assert_nothing_written()


def test_the_database_away_is_503_on_every_endpoint_that_reads_it(app):
    app.store.unavailable = True
    for reply in (app.pay(body()), app.get(f"/payments/{uuid.uuid4()}"), app.get("/payments", orderId=ORDER)):
        assert reply.status == 503
        assert reply.headers["Retry-After"] == "1"
        assert reply.body == refused("Payment processing error: payment database is unavailable")
    app.assert_nothing_written()
    assert app.ordering.calls == []


def test_a_gateway_that_cannot_be_asked_is_502_and_leaves_the_payment_pending(app):
    app.gateway.fail_with = GatewayUnreachable()
    reply = app.pay(body())
    assert reply.status == 502
    assert reply.headers["Retry-After"] == "1"
    assert reply.body == refused("Payment processing error: payment gateway is unavailable")
    [payment] = app.store.payments.values()
    assert payment.status == "pending"
    assert app.store.outbox == [] and app.delivery.sent == []


def test_an_unknown_payment_is_404(app):
    reply = app.get(f"/payments/{uuid.uuid4()}")
    assert reply.status == 404
    assert reply.body == refused("Payment not found")


# --- answers with a payment: a decline, a replay ----------------------------------

def test_a_decline_is_402_with_the_failed_payment_and_its_event(app):
    reply = app.pay(body(app.order(total="150.13"), amount="150.13"))

    assert reply.status == 402
    assert "Retry-After" not in reply.headers and "Idempotent-Replayed" not in reply.headers
    [payment] = app.store.payments.values()
    assert reply.body == {"success": False, "errorMessage": "Payment failed: Card declined", "payment": {
        "id": str(payment.id), "orderId": str(payment.order_id), "customerId": CUSTOMER, "reservationId": None,
        "amount": Decimal("150.13"), "currency": "USD", "paymentMethod": "credit_card", "status": "failed",
        "errorCode": "CARD_DECLINED", "errorMessage": "Card declined",
        "failureReason": "Issuing bank rejected the transaction",
        "createdAt": "2026-03-04T15:30:00.000Z", "processedAt": reply.body["payment"]["processedAt"],
        "isSimulated": True, "simulatedResponse": "Declined - ErrorCode: CARD_DECLINED",
    }}
    assert '"amount":150.13,' in reply.text
    assert payment.status == "failed" and payment.processed_at >= NOW
    [event] = app.delivery.sent
    assert event.event_type == "payment-failed" and event.topic == "payment-failed"
    assert app.store.outbox == [event]
    # Marked before the answer: the order's next attempt may follow at once.
    assert app.store.sent == [event.event_id]


def test_a_replay_is_200_with_idempotent_replayed_and_nothing_new(app):
    first = app.pay(body(reservationId=RESERVATION))
    assert first.status == 200 and "Idempotent-Replayed" not in first.headers
    writes, calls, sent = list(app.store.log), len(app.ordering.calls), list(app.delivery.sent)

    again = app.pay(body(reservationId=RESERVATION))

    assert again.status == 200
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.body == first.body
    assert (app.store.log, len(app.ordering.calls), app.delivery.sent) == (writes, calls, sent)
    assert app.gateway.charges == 1


def test_a_replay_to_another_customer_is_403(app):
    assert app.pay(body()).status == 200
    writes = list(app.store.log)
    reply = app.pay({**body(), "customerId": str(uuid.uuid4())})
    assert reply.status == 403
    assert reply.body == refused("Unauthorized: Customer does not own this order")
    assert app.store.log == writes and app.gateway.charges == 1


# --- counted and logged once --------------------------------------------------

def test_each_refusal_of_a_payment_is_counted_once_a_refused_body_too(app):
    app.pay(body(str(uuid.uuid4())))
    app.ordering.fault = UpstreamTimeout
    app.pay(body())
    app.ordering.fault = None
    app.pay(body(app.order(total="150.66"), amount="150.66"))
    app.pay(b"{")
    app.pay({**GOOD, "amount": 0})
    app.pay(body(), content_type="text/plain")
    app.pay(b'{"pad": "' + b"x" * 65536 + b'"}')
    # Not a payment request: counted by the refusals metric, not here.
    app.get("/payments/nope")

    assert app.refusals_counted() == {
        ("rejected", "ORDER_NOT_FOUND"): 1.0,
        ("error", "UPSTREAM_TIMEOUT"): 1.0,
        ("failed", "INSUFFICIENT_FUNDS"): 1.0,
        ("rejected", "INVALID_REQUEST"): 2.0,
        ("rejected", "UNSUPPORTED_MEDIA_TYPE"): 1.0,
        ("rejected", "BODY_TOO_LARGE"): 1.0,
    }


@pytest.fixture
def access_lines():
    """The access lines the app logs, as the service writes them."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    access = logging.getLogger("payment.access")
    level = access.level
    access.addHandler(handler)
    access.setLevel(logging.INFO)
    yield lambda: [json.loads(line) for line in stream.getvalue().splitlines()]
    access.removeHandler(handler)
    access.setLevel(level)


def test_the_access_line_says_what_became_of_the_payment(app, access_lines):
    unknown = str(uuid.uuid4())
    app.pay(body(unknown))
    declined = app.order(total="150.66")
    app.pay(body(declined, amount="150.66"))

    refusal, decline = access_lines()
    assert (refusal["status"], refusal["orderId"]) == (404, unknown)
    assert "paymentOutcome" not in refusal and "paymentId" not in refusal
    assert (decline["status"], decline["orderId"], decline["paymentOutcome"]) == (402, declined, "declined")
    assert (decline["paymentStatus"], decline["errorCode"]) == ("failed", "INSUFFICIENT_FUNDS")
    assert decline["paymentId"] == str(next(iter(app.store.payments)))


def test_the_request_id_reaches_the_order_and_the_reservation_calls():
    app = Service()
    reply = app.pay(body(reservationId=RESERVATION), headers={"X-Request-ID": "checkout-7f3a:1"})
    assert reply.status == 200 and reply.headers["X-Request-ID"] == "checkout-7f3a:1"
    assert app.ordering.calls == [(uuid.UUID(ORDER), "checkout-7f3a:1")]
    assert app.reservations.calls == [(uuid.UUID(RESERVATION), "checkout-7f3a:1")]
