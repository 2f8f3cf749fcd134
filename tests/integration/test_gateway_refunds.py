"""The gateway port's refund and refund lookup, adapter by adapter: Stripe's
Refunds API against a real localstripe process behind a real TCP proxy, and
the simulated processor's refund ledger in PostgreSQL."""

from __future__ import annotations

import dataclasses
import uuid
from datetime import datetime, timezone
from decimal import Decimal

import pytest

from payment.gateways.port import GatewayUnreachable, RefundFound, refund_idempotency_key
from payment.gateways.simulator import SimulatedGateway
from payment.gateways.stripe_gateway import StripeGateway
from payment.model import Payment, Refund
from tests.integration.test_stripe_gateway import TIMEOUT_S, VISA, a_payment, prepared
from tests.stripe_support import (  # noqa: F401  (fixtures)
    API_KEY,
    FORWARD,
    LOSE_ANSWER,
    RESET,
    localstripe,
    stripe_proxy,
)
from tests.support import open_store

DECLINING_CARD = "4000000000000341"


def a_refund(payment: Payment, amount: str, reason: str = "event_cancelled") -> Refund:
    return Refund(
        id=uuid.uuid4(), payment_id=payment.id, order_id=payment.order_id, customer_id=payment.customer_id,
        amount=Decimal(amount), currency=payment.currency, reason=reason, status="pending", error_code=None,
        error_message=None, transaction_id=None, created_at=datetime.now(timezone.utc), processed_at=None,
        is_simulated=False, idempotency_key=str(uuid.uuid4()), request_fingerprint="0" * 64)


# --- Stripe --------------------------------------------------------------------------


@pytest.fixture
def stripe(stripe_proxy):
    return StripeGateway(API_KEY, api_base=stripe_proxy.url, timeout=TIMEOUT_S, payment_method=VISA)


def charged(gateway: StripeGateway, amount: str = "150.00", currency: str = "USD") -> Payment:
    payment = prepared(gateway, a_payment(amount, currency))
    assert gateway.charge(payment).succeeded
    return payment


def test_stripe_refunds_the_intent_with_the_key_and_metadata_and_finds_it_again(stripe, stripe_proxy, localstripe):
    payment = charged(stripe)
    refund = a_refund(payment, "50.00")

    result = stripe.refund(payment, refund)

    [made] = localstripe.refunds(payment.gateway_reference)
    assert result.succeeded and result.transaction_id == made["id"] and made["id"].startswith("re_")
    assert (made["amount"], made["currency"], made["status"]) == (5000, "usd", "succeeded")
    assert made["metadata"] == {"refundId": str(refund.id), "paymentId": str(payment.id), "reason": "event_cancelled"}
    [sent] = [s for s in stripe_proxy.seen if s.method == "POST" and s.path == "/v1/refunds"]
    assert sent.idempotency_key == refund_idempotency_key(refund) == f"refund-{refund.id}"
    found = stripe.lookup_refund(payment, refund)
    assert found.found is RefundFound.REFUNDED and found.result == result


def test_stripe_lookup_finds_each_refund_by_its_id_among_the_intents_others(stripe, localstripe):
    payment = charged(stripe, "15000", "JPY")
    mine = [a_refund(payment, amount) for amount in ("100", "2500", "7")]
    results = [stripe.refund(payment, refund) for refund in mine]
    assert sorted(r["amount"] for r in localstripe.refunds(payment.gateway_reference)) == [7, 100, 2500]
    for refund, result in zip(mine, results):
        assert stripe.lookup_refund(payment, refund).result == result
    # One it never received.
    assert stripe.lookup_refund(payment, a_refund(payment, "1")).found is RefundFound.NEVER_REFUNDED


def test_stripe_refusing_a_refund_is_a_result_and_nothing_is_refunded(stripe_proxy, localstripe):
    declining = StripeGateway(API_KEY, api_base=stripe_proxy.url, timeout=TIMEOUT_S,
                              payment_method=localstripe.payment_method(DECLINING_CARD))
    payment = prepared(declining, a_payment())
    assert not declining.charge(payment).succeeded
    refund = a_refund(payment, "10.00")

    result = declining.refund(payment, refund)

    assert (result.succeeded, result.transaction_id, result.error_code, result.error_message) == (
        False, None, "REFUND_DECLINED", "Refund declined by the payment processor")
    assert declining.lookup_refund(payment, refund).found is RefundFound.NEVER_REFUNDED
    # A payment Stripe never took (no intent) is refused without a call.
    simulated = dataclasses.replace(a_payment(), gateway_reference=None)
    assert declining.refund(simulated, a_refund(simulated, "1.00")).error_code == "CHARGE_NOT_FOUND"


def test_stripe_answer_lost_or_unreachable(stripe, stripe_proxy, localstripe):
    payment = charged(stripe)
    refund = a_refund(payment, "20.00")
    stripe_proxy.switch(LOSE_ANSWER, "/v1/refunds")

    with pytest.raises(GatewayUnreachable):
        stripe.refund(payment, refund)

    assert [r["amount"] for r in localstripe.refunds(payment.gateway_reference)] == [2000]
    stripe_proxy.switch(RESET)
    assert stripe.lookup_refund(payment, refund).found is RefundFound.UNKNOWN
    stripe_proxy.switch(FORWARD)
    found = stripe.lookup_refund(payment, refund)
    assert found.found is RefundFound.REFUNDED and found.result.transaction_id.startswith("re_")
    assert len(localstripe.refunds(payment.gateway_reference)) == 1


# --- the simulated processor ---------------------------------------------------------


@pytest.fixture
def simulator(database_url, db_route, database):
    with open_store(database_url, db_route, max_size=2, timeout=2) as store:
        yield SimulatedGateway(store.pool, latency_ms=0, delay_before_charge_ms=0, ledger_path=None)


def simulated_charge(simulator: SimulatedGateway, amount: str = "150.00") -> Payment:
    payment = dataclasses.replace(a_payment(amount), is_simulated=True)
    assert simulator.charge(payment).succeeded
    return payment


def test_the_simulator_refunds_what_it_charged_once_per_refund_id(simulator, database):
    payment = simulated_charge(simulator)
    refund = a_refund(payment, "100.00")

    first = simulator.refund(payment, refund)
    again = simulator.refund(payment, refund)

    assert first.succeeded and first.transaction_id.startswith("txn_") and again == first
    assert [(r["refund_id"], r["amount"]) for r in database.gateway_refunds(payment.id)] == [
        (refund.id, Decimal("100.0000"))]
    found = simulator.lookup_refund(payment, refund)
    assert found.found is RefundFound.REFUNDED and found.result == first


@pytest.mark.parametrize("amount, code", [("10.77", "REFUND_DECLINED"), ("150.01", "AMOUNT_EXCEEDS_CHARGE")])
def test_the_simulator_refuses_the_test_amount_and_more_than_its_charge(simulator, database, amount, code):
    payment = simulated_charge(simulator)
    refund = a_refund(payment, amount)

    result = simulator.refund(payment, refund)

    assert (result.succeeded, result.error_code, result.transaction_id) == (False, code, None)
    found = simulator.lookup_refund(payment, refund)
    assert found.found is RefundFound.REFUSED and found.result == result
    # Nothing was given back: all of the charge still can be.
    assert simulator.refund(payment, a_refund(payment, "150.00")).succeeded


def test_the_simulator_refuses_a_refund_of_a_payment_it_never_charged(simulator):
    payment = dataclasses.replace(a_payment(), is_simulated=True)
    assert simulator.refund(payment, a_refund(payment, "1.00")).error_code == "CHARGE_NOT_FOUND"


def test_a_lookup_that_finds_no_refund_voids_it_so_a_late_one_is_refused(simulator, database):
    payment = simulated_charge(simulator)
    refund = a_refund(payment, "5.00")

    assert simulator.lookup_refund(payment, refund).found is RefundFound.NEVER_REFUNDED
    late = simulator.refund(payment, refund)

    assert (late.succeeded, late.error_code) == (False, "REFUND_VOIDED")
    assert database.gateway_refunds(payment.id) == []
    assert [v["refund_id"] for v in database.rows("simulator_refund_voids")] == [refund.id]
