"""The payment flow over hand-written fakes: ordering of the steps, and what
is (not) charged, written or published on each path."""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest

from payment import errors, representations, service
from payment.config import MARK_DELAY_S, Config
from payment.gateways.port import Found, GatewayPending, GatewayUnreachable
from payment.gateways.simulator import decide, decline_for
from payment.model import ChargeResult, Order, PaymentRequest, Reservation
from payment.outbox.delivery import Delivery
from payment.outbox.marker import SentMarker
from payment.reconciler import Reconciler, backoff
from tests.fakes import NOW, FakeGateway, FakeOrdering, FakePublisher, FakeReservations, FakeStore

CUSTOMER = uuid.uuid4()


def make(amount="150.00", order_status="pending", deliver=True, gateway=None):
    request = PaymentRequest(order_id=uuid.uuid4(), customer_id=CUSTOMER, reservation_id=None,
                             amount=Decimal(amount), currency="USD", payment_method="paypal")
    order = Order(id=request.order_id, customer_id=CUSTOMER, total_amount=Decimal(amount),
                  currency="USD", status=order_status)
    store = FakeStore()
    delivery = Delivery(store, FakePublisher(store, deliver), SentMarker(store, delay_s=MARK_DELAY_S))
    deps = service.Dependencies(
        store=store, ordering=FakeOrdering([order]), reservations=FakeReservations(),
        gateway=gateway or FakeGateway(), delivery=delivery,
        topic_succeeded="ok", topic_failed="ko",
        delivery_timeout=0.01, pending_timeout=Config.pending_timeout)
    return request, deps


def test_success_commits_then_publishes_then_marks_sent():
    request, deps = make()
    outcome = service.pay(request, deps)
    assert outcome.payment.status == "succeeded" and not outcome.replayed and not outcome.declined
    assert outcome.kind == "succeeded"
    assert deps.store.log == ["insert_pending", "commit_outcome", "publish"]
    [event] = deps.store.outbox
    assert event.topic == "ok" and event.key == str(request.order_id)
    # Marked by the marker's thread, soon after the answer.
    deadline = time.monotonic() + 2
    while not deps.store.sent and time.monotonic() < deadline:
        time.sleep(0.01)
    assert deps.store.sent == [event.event_id]


def test_the_event_carries_the_processed_at_the_payment_is_recorded_with():
    request, deps = make()
    before = datetime.now(timezone.utc)
    outcome = service.pay(request, deps)
    [event] = deps.store.outbox
    processed_at = outcome.payment.processed_at
    assert before <= processed_at <= datetime.now(timezone.utc) and processed_at.utcoffset() == timedelta(0)
    assert json.loads(event.payload)["processedAt"] == representations.utc_timestamp(processed_at)


def test_undelivered_event_stays_unsent_and_payment_still_succeeds():
    request, deps = make(deliver=False)
    outcome = service.pay(request, deps)
    assert outcome.payment.status == "succeeded"
    assert len(deps.store.outbox) == 1 and deps.store.sent == []


def test_replay_skips_upstream_and_gateway():
    request, deps = make()
    first = service.pay(request, deps)
    calls, charges = len(deps.ordering.calls), deps.gateway.charges
    again = service.pay(request, deps)
    assert again.replayed and again.payment == first.payment and again.kind == "replayed"
    assert (len(deps.ordering.calls), deps.gateway.charges) == (calls, charges)


def test_in_flight_payment_is_409_without_charge():
    request, deps = make()
    deps.store.insert_pending(request, uuid.uuid4(), is_simulated=True, created_at=datetime.now(timezone.utc))
    with pytest.raises(errors.PaymentInProgress) as raised:
        service.pay(request, deps)
    assert deps.gateway.charges == 0
    assert raised.value.retry_after_s == 1


def test_decline_is_an_outcome_with_the_failed_payment_and_its_event():
    request, deps = make(amount="10.66")
    outcome = service.pay(request, deps)
    assert outcome.declined and not outcome.replayed and outcome.kind == "declined"
    assert outcome.payment.status == "failed" and outcome.payment.error_code == "INSUFFICIENT_FUNDS"
    assert outcome.payment.error_message == "Card declined due to insufficient funds"
    assert deps.store.payments == {outcome.payment.id: outcome.payment}
    [event] = deps.store.outbox
    assert event.topic == "ko" and event.event_type == "payment-failed"
    # Marked sent by the delivery before the answer: the order's next attempt may follow at once.
    assert deps.store.sent == [event.event_id]


def test_gateway_exception_leaves_payment_pending_and_nothing_published():
    request, deps = make(gateway=FakeGateway(fail_with=GatewayUnreachable()))
    with pytest.raises(errors.GatewayUnavailable):
        service.pay(request, deps)
    [payment] = deps.store.payments.values()
    assert payment.status == "pending"
    assert deps.store.outbox == [] and deps.delivery.publisher.published == []


def test_a_request_the_gateway_could_never_charge_is_refused_before_anything_is_read_or_written():
    refusal = errors.InvalidRequest("Invalid request: paymentToken is required")
    request, deps = make(gateway=FakeGateway(refuse_with=refusal))
    with pytest.raises(errors.InvalidRequest) as refused:
        service.pay(request, deps)
    assert refused.value is refusal
    assert deps.store.reads == [] and deps.store.log == [] and deps.ordering.calls == []
    assert deps.gateway.charges == 0 and deps.gateway.tokens == []


def test_the_token_goes_to_the_gateway_with_the_payment_and_nowhere_else():
    request, deps = make()
    request = replace(request, payment_token="pm_1Pq2Rs3Tu")
    outcome = service.pay(request, deps)
    assert deps.gateway.tokens == ["pm_1Pq2Rs3Tu"]
    assert outcome.payment.payment_token is None
    assert all(p.payment_token is None for p in deps.store.payments.values())
    assert "pm_1Pq2Rs3Tu" not in repr(request) + repr(outcome) + "".join(e.payload for e in deps.store.outbox)


def test_a_decline_at_prepare_is_recorded_failed_with_its_event_and_nothing_charged():
    refused = ChargeResult(succeeded=False, transaction_id=None, simulated_response=None,
                           error_code="AMOUNT_TOO_SMALL", error_message="Amount too small",
                           failure_reason="Stripe refused the payment before charging: amount_too_small")
    request, deps = make(gateway=FakeGateway(prepared=refused, reference="pi_never"))
    outcome = service.pay(request, deps)
    assert outcome.declined and outcome.payment.status == "failed"
    assert (outcome.payment.error_code, outcome.payment.failure_reason) == (
        "AMOUNT_TOO_SMALL", "Stripe refused the payment before charging: amount_too_small")
    assert outcome.payment.gateway_reference is None and deps.gateway.charges == 0
    assert deps.store.log == ["insert_pending", "commit_outcome", "publish"]
    [event] = deps.store.outbox
    assert event.event_type == "payment-failed" and json.loads(event.payload)["errorCode"] == "AMOUNT_TOO_SMALL"


def test_a_charge_the_gateway_is_still_processing_leaves_the_payment_pending():
    request, deps = make(gateway=FakeGateway(fail_with=GatewayPending("the PaymentIntent is processing")))
    with pytest.raises(errors.GatewayProcessing) as raised:
        service.pay(request, deps)
    assert raised.value.message == "Payment processing error: payment gateway is still processing the payment"
    assert raised.value.retry_after_s == 1
    [payment] = deps.store.payments.values()
    assert payment.status == "pending" and deps.store.outbox == []


def reported(deps, *, reference="pi_3Abc"):
    """A pending payment whose charge is the intent `reference`."""
    request, _ = make()
    pending = deps.store.insert_pending(request, uuid.uuid4(), is_simulated=False)
    return deps.store.attach_reference(pending, reference)


def test_a_gateways_report_settles_the_pending_payment_once_with_its_event():
    _, deps = make()
    payment = reported(deps)
    charged = ChargeResult(succeeded=True, transaction_id="txn_3Abc", simulated_response=None)
    assert service.settle_reported(payment.id, "pi_3Abc", charged, deps) == "settled"
    settled = deps.store.payments[payment.id]
    assert (settled.status, settled.transaction_id) == ("succeeded", "txn_3Abc")
    [event] = deps.store.outbox
    assert event.event_type == "payment-succeeded"
    declined = decline_for(Decimal("1.13"))
    assert service.settle_reported(payment.id, "pi_3Abc", declined, deps) == "already_settled"
    assert deps.store.payments[payment.id] == settled and deps.store.outbox == [event]


def test_a_report_about_another_charge_or_payment_is_ignored():
    _, deps = make()
    payment = reported(deps)
    charged = ChargeResult(succeeded=True, transaction_id="txn_9", simulated_response=None)
    assert service.settle_reported(payment.id, "pi_other", charged, deps) == "ignored"
    assert service.settle_reported(uuid.uuid4(), "pi_3Abc", charged, deps) == "ignored"
    assert deps.store.payments[payment.id].status == "pending" and deps.store.outbox == []


@pytest.mark.parametrize("status", ["cancelled", "expired", "refunded"])
def test_closed_orders_are_refused_before_any_write(status):
    request, deps = make(order_status=status)
    with pytest.raises(errors.OrderInvalid, match=f"order is {status}"):
        service.pay(request, deps)
    assert deps.store.payments == {} and deps.gateway.charges == 0


def test_reservation_checks():
    request = PaymentRequest(uuid.uuid4(), CUSTOMER, uuid.uuid4(), Decimal(1), "USD", "paypal")
    good = Reservation(request.reservation_id, CUSTOMER, "active", NOW + timedelta(minutes=5))
    service.validate_reservation(request, good, now=NOW)
    for reservation, why in [
        (None, "reservation not found"),
        (replace(good, customer_id=uuid.uuid4()), "does not belong to the customer"),
        (replace(good, status="released"), "reservation is released"),
        (replace(good, expires_at=NOW), "reservation has expired"),
    ]:
        with pytest.raises(errors.ReservationInvalid, match=why):
            service.validate_reservation(request, reservation, now=NOW)


@pytest.mark.parametrize("amount, code", [
    ("1.13", "CARD_DECLINED"), ("1.66", "INSUFFICIENT_FUNDS"), ("1.99", "PROCESSOR_TIMEOUT"),
    ("999999.99", "AMOUNT_TOO_LARGE"), ("5000000", "AMOUNT_TOO_LARGE"), ("1.1300", "CARD_DECLINED"),
    ("1.00", None), ("1.131", None), ("13", None), ("999999.98", None),
])
def test_simulator_outcomes_follow_the_amount(amount, code):
    decline = decline_for(Decimal(amount))
    assert (decline[0] if decline else None) == code


# --- settling from the gateway's answer ---------------------------------------


def reconciler(deps, **options):
    return Reconciler(deps, older_than_s=0, base_backoff_s=1, max_backoff_s=8, **options)


def test_reference_is_kept_before_the_charge():
    request, deps = make(gateway=FakeGateway(reference="pi_123"))
    service.pay(request, deps)
    assert deps.store.log[:2] == ["insert_pending", "attach_reference"]
    [payment] = deps.store.payments.values()
    assert payment.gateway_reference == "pi_123" and payment.status == "succeeded"


class SettledMeanwhile(FakeGateway):
    """A processor so slow to prepare that the reconciler settles the payment
    (never charged) before its reference is kept."""

    def __init__(self, store):
        super().__init__(reference="pi_123")
        self.store = store

    def prepare(self, payment):
        self.store.payments[payment.id] = replace(payment, status="failed", error_code="PROCESSING_INTERRUPTED",
                                                  processed_at=NOW)
        return super().prepare(payment)


def test_a_payment_settled_before_its_reference_is_kept_is_answered_as_recorded_and_never_charged():
    request, deps = make()
    deps.gateway = gateway = SettledMeanwhile(deps.store)
    outcome = service.pay(request, deps)
    assert (outcome.payment.status, outcome.payment.error_code) == ("failed", "PROCESSING_INTERRUPTED")
    assert outcome.payment == deps.store.payments[outcome.payment.id]
    assert gateway.charges == 0 and "attach_reference" not in deps.store.log and deps.store.outbox == []


def test_outcome_not_recorded_leaves_the_payment_pending_and_the_reconciler_settles_it():
    request, deps = make()
    deps.store.fail_settlement = True
    with pytest.raises(errors.DatabaseUnavailable):
        service.pay(request, deps)
    [payment] = deps.store.payments.values()
    assert payment.status == "pending" and deps.store.outbox == []
    assert deps.gateway.charged[payment.id].succeeded

    deps.store.fail_settlement = False
    counts = reconciler(deps).run_once()
    assert counts[Found.CHARGED] == 1
    settled = deps.store.payments[payment.id]
    assert settled.status == "succeeded"
    assert settled.transaction_id == deps.gateway.charged[payment.id].transaction_id
    [event] = deps.store.outbox
    assert event.event_type == "payment-succeeded" and deps.gateway.charges == 1
    # The order is paid: the next attempt is a replay, not a charge.
    again = service.pay(request, deps)
    assert again.replayed and deps.gateway.charges == 1


def test_reconciler_settles_a_decline_with_the_gateways_code():
    request, deps = make(amount="10.13")
    deps.store.fail_settlement = True
    with pytest.raises(errors.DatabaseUnavailable):
        service.pay(request, deps)
    deps.store.fail_settlement = False
    assert reconciler(deps).run_once()[Found.DECLINED] == 1
    [payment] = deps.store.payments.values()
    assert (payment.status, payment.error_code) == ("failed", "CARD_DECLINED")
    [event] = deps.store.outbox
    assert event.event_type == "payment-failed"


def test_never_charged_fails_the_payment_and_frees_the_order():
    request, deps = make()
    stranded = deps.store.insert_pending(request, uuid.uuid4(), is_simulated=True)
    assert reconciler(deps).run_once()[Found.NEVER_CHARGED] == 1
    failed = deps.store.payments[stranded.id]
    assert (failed.status, failed.error_code) == ("failed", "PROCESSING_INTERRUPTED")
    assert deps.gateway.charges == 0
    outcome = service.pay(request, deps)
    assert outcome.payment.status == "succeeded" and deps.gateway.charges == 1


def test_unknown_answer_keeps_the_payment_pending_and_backs_off():
    request, deps = make()
    stranded = deps.store.insert_pending(request, uuid.uuid4(), is_simulated=True)
    deps.gateway.unreachable = True
    job = reconciler(deps)
    assert job.run_once()[Found.UNKNOWN] == 1
    assert job.run_once()[Found.UNKNOWN] == 1
    assert deps.store.payments[stranded.id].status == "pending" and deps.store.outbox == []
    assert [entry for entry in deps.store.log if entry[0] == "postpone"] == [("postpone", 1), ("postpone", 2)]
    deps.gateway.unreachable = False
    assert job.run_once()[Found.NEVER_CHARGED] == 1


def test_a_payment_settled_elsewhere_first_is_not_settled_twice():
    request, deps = make()
    pending = deps.store.insert_pending(request, uuid.uuid4(), is_simulated=True)
    first = service.settle(pending, decide(pending), deps)
    second = service.settle(pending, service.INTERRUPTED, deps)
    assert second == first and first.status == "succeeded"
    assert len(deps.store.outbox) == 1


def test_backoff_doubles_up_to_its_cap():
    assert [backoff(n, base_s=1, max_s=8) for n in range(1, 7)] == [1, 2, 4, 8, 8, 8]


@pytest.mark.parametrize("age_s, expected", [(0, 1), (9, 1), (30, 90), (119.5, 1), (500, 1)])
def test_retry_after_says_when_the_payment_will_be_settled(age_s, expected):
    request, deps = make()
    live = deps.store.insert_pending(request, uuid.uuid4(), is_simulated=True)
    assert service.retry_after(live, 120, now=NOW + timedelta(seconds=age_s)) == expected
