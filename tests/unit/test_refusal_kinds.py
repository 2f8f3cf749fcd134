"""Every 4xx is counted by kind (payment_http_refusals_total{route, kind})
and its access line says the same kind (`errorKind`): through
falcon.testing over `create_app` with the fakes of test_refusals.py, one
request each, the counter read before and after."""

from __future__ import annotations

import re
import uuid
from pathlib import Path

import pytest

from payment.api.auth import TokenVerifier
from payment.server.read_ahead_worker import _MALFORMED_ANSWERS
from payment.server.read_ahead_worker import KINDS as WORKER_KINDS
from tests.tokens import HS256_SECRET, OTHER_SECRET, claims, hs256
from tests.unit.test_refund_refusals import REFUND_KINDS
from tests.unit.test_refusals import GOOD, PREFIX, Service, access_lines, body  # noqa: F401 - a fixture

ROOT = Path(__file__).resolve().parents[2]
PAYMENT = "/payments/{paymentId}"


def refusals(app: Service) -> dict[tuple[str, str], float]:
    return {(s.labels["route"], s.labels["kind"]): s.value
            for metric in app.metrics.refusals.collect() for s in metric.samples
            if s.name == "payment_http_refusals_total"}


def bearer(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


# (what is sent, status, route, kind), each on an app of its own.
CASES = [
    (lambda app: app.pay({**GOOD, "amount": 0}), 400, "/payments", "schema"),
    (lambda app: app.pay({**GOOD, "ammount": 1}), 400, "/payments", "schema"),
    (lambda app: app.pay(b"[1]"), 400, "/payments", "schema"),
    (lambda app: app.pay(PREFIX + b'"amount": 150.001}'), 400, "/payments", "schema"),
    (lambda app: app.pay(b'{"orderId": '), 400, "/payments", "json"),
    (lambda app: app.pay(PREFIX + b'"amount": 1, "amount": 2}'), 400, "/payments", "json"),
    (lambda app: app.pay(PREFIX + b'"amount": NaN}'), 400, "/payments", "json"),
    (lambda app: app.pay(b'{"a": "\xff"}'), 400, "/payments", "json"),
    (lambda app: app.pay(b'{"pad": "' + b"x" * 65536 + b'"}'), 413, "/payments", "too_large"),
    (lambda app: app.pay(body(), content_type="text/plain"), 415, "/payments", "content_type"),
    (lambda app: app.pay(body(), content_type=None), 415, "/payments", "content_type"),
    (lambda app: app.get("/payments/nope"), 400, PAYMENT, "parameter"),
    (lambda app: app.get("/payments"), 400, "/payments", "parameter"),
    (lambda app: app.get(f"/payments/{uuid.uuid4()}"), 404, PAYMENT, "not_found"),
    (lambda app: app.pay(body(str(uuid.uuid4()))), 404, "/payments", "not_found"),
    (lambda app: app.get("/schemas/nope.schema.json"), 404, "/schemas/{file}", "not_found"),
    (lambda app: app.http.simulate_get("/nowhere"), 404, "unmatched", "not_found"),
    (lambda app: app.http.simulate_delete("/payments"), 405, "/payments", "method_not_allowed"),
    (lambda app: app.http.simulate_post("/health/live"), 405, "/health/live", "method_not_allowed"),
    (lambda app: app.pay(body(app.order(customer=str(uuid.uuid4())))), 403, "/payments", "forbidden"),
    (lambda app: app.pay(body(app.order(total="99.00"))), 400, "/payments", "order_invalid"),
    (lambda app: app.pay(body(reservationId=str(uuid.uuid4()))), 400, "/payments", "reservation_invalid"),
    (lambda app: app.pay(body(app.order(total="150.66"), amount="150.66")), 402, "/payments", "declined"),
]


@pytest.mark.parametrize("send, status, route, kind", CASES,
                         ids=[f"{i}-{kind}" for i, (_, _, _, kind) in enumerate(CASES)])
def test_every_4xx_is_counted_by_kind_and_its_access_line_says_it(send, status, route, kind, access_lines):
    app = Service()
    send(app)
    assert refusals(app) == {(route, kind): 1.0}
    [line] = access_lines()
    assert (line["status"], line["route"], line["errorKind"]) == (status, route, kind)


def test_a_conflict_is_counted_as_such(access_lines):
    app = Service()
    order_id = app.order()
    from tests.unit.test_refusals import CUSTOMER, PaymentRequest  # the request of another, in flight
    from datetime import datetime, timezone
    from decimal import Decimal

    request = PaymentRequest(uuid.UUID(order_id), uuid.UUID(CUSTOMER), None, Decimal("150.00"), "USD", "paypal")
    app.store.insert_pending(request, uuid.uuid4(), is_simulated=True, created_at=datetime.now(timezone.utc))
    assert app.pay(body(order_id)).status == 409
    assert refusals(app) == {("/payments", "conflict"): 1.0}
    assert access_lines()[0]["errorKind"] == "conflict"


@pytest.fixture
def guarded() -> Service:
    return Service(TokenVerifier(hs256_secret=HS256_SECRET, service_scope="payments:read-all",
                                 refund_scope="payments:refund", leeway=0.0))


@pytest.mark.parametrize("headers, kind", [
    ({}, "auth_missing"),
    (bearer(hs256(claims(expires_in=-60))), "auth_expired"),
    (bearer(hs256(secret=OTHER_SECRET)), "auth_invalid"),
    (bearer("not.a.token"), "auth_invalid"),
    ({"Authorization": "Basic dXNlcjpwYXNz"}, "auth_invalid"),
])
def test_refused_tokens_are_told_apart(guarded, headers, kind, access_lines):
    reply = guarded.pay(body(), headers=headers)
    assert reply.status == 401
    assert refusals(guarded) == {("/payments", kind): 1.0}
    assert access_lines()[0]["errorKind"] == kind
    # A refused token is a rejected payment request too.
    assert guarded.refusals_counted() == {("rejected", "UNAUTHENTICATED"): 1.0}


def test_a_success_carries_no_kind_and_counts_no_refusal(access_lines):
    app = Service()
    assert app.pay(body()).status == 200
    assert refusals(app) == {}
    [line] = access_lines()
    assert "errorKind" not in line
    assert line["transactionId"] == app.store.payments[uuid.UUID(line["paymentId"])].transaction_id


def test_a_fault_carries_its_kind_on_the_access_line_and_is_no_refusal(access_lines):
    from payment.errors import UpstreamTimeout

    app = Service()
    app.ordering.fault = UpstreamTimeout
    assert app.pay(body()).status == 504
    assert refusals(app) == {}
    assert access_lines()[0]["errorKind"] == "upstream_timeout"


def documented_kinds() -> dict[str, set[int]]:
    """kind -> statuses, from the error table of docs/api.md."""
    kinds: dict[str, set[int]] = {}
    for line in (ROOT / "docs" / "api.md").read_text().splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) == 3 and cells[0].isdigit():
            for kind in re.findall(r"`([a-z_]+)`", cells[1]):
                kinds.setdefault(kind, set()).add(int(cells[0]))
    return kinds


def test_the_error_table_names_every_kind_a_4xx_is_counted_by():
    counted = {(kind, status) for _, status, _, kind in CASES}
    counted |= {("conflict", 409), ("auth_missing", 401), ("auth_expired", 401), ("auth_invalid", 401)}
    # A Stripe webhook's refused signature: counted by kind in
    # tests/integration/test_stripe_payments.py, against the Stripe gateway.
    counted |= {("webhook_signature", 400)}
    # The refund route's: tests/unit/test_refund_refusals.py counts each.
    counted |= {(kind, status) for _, _, status, kind in REFUND_KINDS}
    counted |= {(kind, status) for status, kind in WORKER_KINDS.items()}
    counted |= {(kind, status) for _, status, _, kind, _ in _MALFORMED_ANSWERS}
    documented = {(kind, status) for kind, statuses in documented_kinds().items() for status in statuses
                  if status < 500}
    assert documented == counted
