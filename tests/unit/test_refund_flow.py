"""The refund flow over hand-written fakes (tests/fakes.py): the order of the
steps, the idempotency key's answers, and what is (not) refunded, written or
published on each path; the reconciler's answers for refunds left pending.
tests/integration/test_refunds.py keeps what needs the real database."""

from __future__ import annotations

import json
import uuid
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest

from payment import errors, refunds, service
from payment.config import MARK_DELAY_S, Config
from payment.model import PaymentRequest, RefundRequest
from payment.outbox.delivery import Delivery
from payment.outbox.marker import SentMarker
from payment.ports import Found, GatewayUnreachable, RefundFound
from payment.reconciler import Reconciler
from tests.expected_events import utc_ms
from tests.fakes import NOW, FakeGateway, FakeOrdering, FakePublisher, FakeReservations, FakeStore

CUSTOMER = uuid.uuid4()


def paid(amount: str = "150.00", currency: str = "USD", status: str = "succeeded", gateway=None,
         deliver: bool = True):
    """A payment in the fake store, and the refund flow's dependencies over it."""
    store = FakeStore()
    request = PaymentRequest(order_id=uuid.uuid4(), customer_id=CUSTOMER, reservation_id=None,
                             amount=Decimal(amount), currency=currency, payment_method="credit_card")
    pending = store.insert_pending(request, uuid.uuid4(), is_simulated=True)
    payment = store.payments[pending.id] = replace(pending, status=status, processed_at=NOW)
    store.log.clear()
    deps = refunds.RefundDependencies(
        store=store, gateway=gateway or FakeGateway(),
        delivery=Delivery(store, FakePublisher(store, deliver), SentMarker(store, delay_s=MARK_DELAY_S)),
        topic_refunded="refunded", topic_refund_failed="refund-failed", delivery_timeout=0.01,
        pending_timeout=Config.pending_timeout, mark_delay=MARK_DELAY_S)
    return payment, deps


def ask(payment, amount: str | None = None, reason: str = "requested_by_customer", key: str | None = None,
        payment_id=None) -> RefundRequest:
    """The request as the HTTP layer hands it over (payment/api/request_body.py)."""
    payment_id = payment_id or payment.id
    value = None if amount is None else Decimal(amount)
    return RefundRequest(payment_id=payment_id, amount=value, reason=reason, idempotency_key=key or str(uuid.uuid4()),
                         fingerprint=refunds.fingerprint(payment_id, value, reason))


def test_a_refund_commits_then_publishes_then_marks_its_event_sent():
    payment, deps = paid()
    outcome = refunds.refund(ask(payment, "50.00", "event_cancelled"), payment, deps)
    refund = outcome.refund
    assert (outcome.kind, refund.status, refund.amount, refund.reason) == (
        "succeeded", "succeeded", Decimal("50.00"), "event_cancelled")
    assert refund.transaction_id == deps.gateway.refunded[refund.id].transaction_id
    assert deps.store.log == ["insert_pending_refund", "commit_refund_outcome", "publish"]
    [event] = deps.store.outbox
    assert (event.topic, event.key, event.event_type, event.payment_id) == (
        "refunded", str(payment.order_id), "payment-refunded", payment.id)
    # Marked before the answer: the order's next refund may follow at once.
    assert deps.store.sent == [event.event_id]
    assert json.loads(event.payload) == {
        "refundId": str(refund.id), "paymentId": str(payment.id), "orderId": str(payment.order_id),
        "customerId": str(CUSTOMER), "amount": 50.0, "currency": "USD", "reason": "event_cancelled",
        "transactionId": refund.transaction_id, "amountRefunded": 50.0,
        "refundedAt": utc_ms(refund.processed_at), "status": "refunded"}


def test_each_event_says_the_payments_total_refunded_so_far():
    payment, deps = paid()
    for amount in ("10.00", "0.77", "25.50", None):
        refunds.refund(ask(payment, amount), payment, deps)
    totals = [json.loads(e.payload).get("amountRefunded") for e in deps.store.outbox]
    # The refused refund (.77) gives nothing back; the last takes all that is left.
    assert totals == [10.0, None, 35.5, 150.0]
    assert sorted(r.amount for r in deps.store.refunds.values()) == [
        Decimal("0.77"), Decimal("10.00"), Decimal("25.50"), Decimal("114.50")]


def test_the_gateways_refusal_is_a_failed_refund_with_its_event_and_the_amount_free_again():
    payment, deps = paid("20.77")
    outcome = refunds.refund(ask(payment), payment, deps)
    assert outcome.failed and outcome.kind == "declined"
    assert (outcome.refund.status, outcome.refund.error_code, outcome.refund.error_message) == (
        "failed", "REFUND_DECLINED", "Refund declined by the payment processor")
    assert outcome.refund.transaction_id is None
    [event] = deps.store.outbox
    assert event.topic == "refund-failed" and json.loads(event.payload)["errorCode"] == "REFUND_DECLINED"
    # Nothing was given back, so all of it may be refunded again (under a new key).
    again = refunds.refund(ask(payment, "20.00"), payment, deps)
    assert again.refund.status == "succeeded"


def test_the_same_key_and_body_is_answered_again_without_a_second_refund():
    payment, deps = paid()
    first = refunds.refund(ask(payment, "50", key="k"), payment, deps)
    again = refunds.refund(ask(payment, "50.00", key="k"), payment, deps)
    assert again.replayed and again.kind == "replayed" and again.refund == first.refund
    assert deps.gateway.refund_calls == 1 and len(deps.store.outbox) == 1

    declined = refunds.refund(ask(payment, "1.77", key="d"), payment, deps)
    replayed = refunds.refund(ask(payment, "1.77", key="d"), payment, deps)
    assert replayed.replayed and replayed.failed and replayed.refund == declined.refund
    assert deps.gateway.refund_calls == 2


@pytest.mark.parametrize("change", [
    {"amount": "40.00"}, {"amount": None}, {"reason": "duplicate"}, {"payment_id": uuid.uuid4()},
])
def test_the_same_key_with_another_body_or_payment_is_422_and_refunds_nothing(change):
    payment, deps = paid()
    refunds.refund(ask(payment, "50.00", key="k"), payment, deps)
    other = ask(payment, **{"amount": "50.00", "key": "k", **change})
    with pytest.raises(errors.IdempotencyKeyReused):
        refunds.refund(other, payment, deps)
    assert deps.gateway.refund_calls == 1 and len(deps.store.refunds) == 1


def test_a_key_whose_refund_is_in_flight_is_409_with_retry_after():
    payment, deps = paid()
    request = ask(payment, "50.00", key="k")
    deps.store.insert_pending_refund(request, uuid.uuid4(), is_simulated=True, created_at=datetime.now(timezone.utc))
    with pytest.raises(errors.RefundInProgress) as raised:
        refunds.refund(request, payment, deps)
    assert raised.value.retry_after_s == 1 and deps.gateway.refund_calls == 0


@pytest.mark.parametrize("status", ["pending", "failed"])
def test_only_a_succeeded_payment_is_refunded(status):
    payment, deps = paid(status=status)
    with pytest.raises(errors.PaymentNotRefundable, match=f"the payment is {status}"):
        refunds.refund(ask(payment), payment, deps)
    assert deps.store.refunds == {} and deps.gateway.refund_calls == 0


@pytest.mark.parametrize("first, asked, message", [
    (None, "150.01", "amount 150.01 exceeds the refundable amount 150.00"),
    ("100.00", "50.01", "amount 50.01 exceeds the refundable amount 50.00"),
    ("150.00", "0.01", "nothing is left to refund (refundable amount 0.00)"),
    ("150.00", None, "nothing is left to refund (refundable amount 0.00)"),
])
def test_more_than_is_left_is_400_naming_the_refundable_amount(first, asked, message):
    payment, deps = paid()
    if first:
        refunds.refund(ask(payment, first), payment, deps)
    calls, written = deps.gateway.refund_calls, len(deps.store.refunds)
    with pytest.raises(errors.RefundInvalid) as raised:
        refunds.refund(ask(payment, asked), payment, deps)
    assert raised.value.message == f"Refund validation failed: {message}"
    assert (deps.gateway.refund_calls, len(deps.store.refunds)) == (calls, written)


@pytest.mark.parametrize("amount, currency, message", [
    ("10.001", "USD", "amount has more decimals than USD allows (2)"),
    ("100.5", "JPY", "amount has more decimals than JPY allows (0)"),
])
def test_an_amount_finer_than_the_currency_is_400(amount, currency, message):
    payment, deps = paid("15000" if currency == "JPY" else "150.00", currency)
    with pytest.raises(errors.RefundInvalid, match=message.replace("(", r"\(").replace(")", r"\)")):
        refunds.refund(ask(payment, amount), payment, deps)
    assert deps.store.refunds == {}


def test_the_fingerprint_is_the_request_as_understood():
    payment_id = uuid.uuid4()
    same = {refunds.fingerprint(payment_id, Decimal(a), "duplicate") for a in ("50", "50.0", "50.00", "5E+1")}
    assert len(same) == 1
    assert refunds.fingerprint(payment_id, None, "duplicate") not in same
    assert refunds.fingerprint(uuid.uuid4(), Decimal("50"), "duplicate") not in same
    assert refunds.fingerprint(payment_id, Decimal("50"), "fraudulent") not in same


def test_the_gateway_unreachable_leaves_the_refund_pending_and_counted():
    payment, deps = paid(gateway=FakeGateway(fail_with=GatewayUnreachable()))
    with pytest.raises(errors.GatewayUnavailable):
        refunds.refund(ask(payment, "100.00"), payment, deps)
    [refund] = deps.store.refunds.values()
    assert refund.status == "pending" and deps.store.outbox == []
    # Its money is still counted against the payment: no second refund may take it.
    with pytest.raises(errors.RefundInvalid, match="refundable amount 50.00"):
        refunds.refund(ask(payment, "60.00"), payment, deps)


# --- settling from the gateway's answer ---------------------------------------


def reconciler(deps):
    store = deps.store
    payment_deps = service.Dependencies(
        store=store, ordering=FakeOrdering(), reservations=FakeReservations(), gateway=deps.gateway,
        delivery=deps.delivery, topic_succeeded="ok", topic_failed="ko", delivery_timeout=0.01,
        pending_timeout=Config.pending_timeout)
    return Reconciler(payment_deps, refund_deps=deps, older_than_s=0, base_backoff_s=1, max_backoff_s=8)


def test_an_outcome_not_recorded_is_settled_by_the_reconciler_as_refunded():
    payment, deps = paid()
    deps.store.fail_settlement = True
    with pytest.raises(errors.DatabaseUnavailable):
        refunds.refund(ask(payment, "30.00", key="k"), payment, deps)
    [refund] = deps.store.refunds.values()
    assert refund.status == "pending" and deps.gateway.refunded[refund.id].succeeded

    deps.store.fail_settlement = False
    counts = reconciler(deps).run_once()
    assert counts[RefundFound.REFUNDED] == 1 and counts[Found.CHARGED] == 0
    settled = deps.store.refunds[refund.id]
    assert settled.status == "succeeded"
    assert settled.transaction_id == deps.gateway.refunded[refund.id].transaction_id
    [event] = deps.store.outbox
    assert event.event_type == "payment-refunded" and deps.gateway.refund_calls == 1
    # The key's answer is now the refund's.
    again = refunds.refund(ask(payment, "30.00", key="k"), payment, deps)
    assert again.replayed and again.refund == settled and deps.gateway.refund_calls == 1


def test_the_reconciler_records_a_refusal_with_the_gateways_code():
    payment, deps = paid()
    deps.store.fail_settlement = True
    with pytest.raises(errors.DatabaseUnavailable):
        refunds.refund(ask(payment, "3.77"), payment, deps)
    deps.store.fail_settlement = False
    assert reconciler(deps).run_once()[RefundFound.REFUSED] == 1
    [refund] = deps.store.refunds.values()
    assert (refund.status, refund.error_code) == ("failed", "REFUND_DECLINED")
    [event] = deps.store.outbox
    assert event.event_type == "payment-refund-failed"


def test_never_refunded_fails_the_refund_and_frees_its_amount():
    payment, deps = paid()
    stranded = deps.store.insert_pending_refund(ask(payment), uuid.uuid4(), is_simulated=True).refund
    assert reconciler(deps).run_once()[RefundFound.NEVER_REFUNDED] == 1
    failed = deps.store.refunds[stranded.id]
    assert (failed.status, failed.error_code) == ("failed", "REFUND_INTERRUPTED")
    assert deps.gateway.refund_calls == 0
    [event] = deps.store.outbox
    assert json.loads(event.payload)["errorCode"] == "REFUND_INTERRUPTED"
    # Refunded again under a new key, all of it.
    assert refunds.refund(ask(payment), payment, deps).refund.amount == Decimal("150.00")


def test_unknown_keeps_the_refund_pending_and_backs_off():
    payment, deps = paid()
    stranded = deps.store.insert_pending_refund(ask(payment, "5.00"), uuid.uuid4(), is_simulated=True).refund
    deps.gateway.unreachable = True
    job = reconciler(deps)
    assert job.run_once()[RefundFound.UNKNOWN] == 1
    assert job.run_once()[RefundFound.UNKNOWN] == 1
    assert deps.store.refunds[stranded.id].status == "pending" and deps.store.outbox == []
    assert [e for e in deps.store.log if e[0] == "postpone_refund"] == [("postpone_refund", 1), ("postpone_refund", 2)]
    deps.gateway.unreachable = False
    assert job.run_once()[RefundFound.NEVER_REFUNDED] == 1


def test_a_refund_settled_elsewhere_first_is_not_settled_twice():
    payment, deps = paid()
    pending = deps.store.insert_pending_refund(ask(payment, "5.00"), uuid.uuid4(), is_simulated=True).refund
    first = refunds.settle(pending, deps.gateway.refund(payment, pending), deps)
    second = refunds.settle(pending, refunds.INTERRUPTED, deps)
    assert second == first and first.status == "succeeded" and len(deps.store.outbox) == 1


@pytest.mark.parametrize("age_s, expected", [(0, 1), (9, 1), (30, 90), (500, 1)])
def test_retry_after_says_when_the_refund_will_be_settled(age_s, expected):
    payment, deps = paid()
    pending = deps.store.insert_pending_refund(ask(payment), uuid.uuid4(), is_simulated=True).refund
    assert service.retry_after(pending, 120, now=NOW + timedelta(seconds=age_s)) == expected
