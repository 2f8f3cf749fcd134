"""The Stripe adapter against a real localstripe process, with a real TCP
proxy between them that can refuse, swallow or lose answers while localstripe
keeps its state."""

from __future__ import annotations

import dataclasses
import logging
import time
import uuid
from datetime import datetime, timezone
from decimal import Decimal

import pytest

from payment.config import Config
from payment.gateways.port import Found, GatewayUnreachable, idempotency_key
from payment.gateways.stripe_gateway import StripeGateway
from payment.model import Payment
from tests.stripe_support import (  # noqa: F401  (fixtures)
    API_KEY,
    BLACKHOLE,
    FORWARD,
    LOSE_ANSWER,
    RESET,
    expected_transaction_id,
    localstripe,
    stripe_proxy,
)
from tests.timing import ceiling

DECLINING_CARD = "4000000000000341"   # attaches, then declined at charge: card_declined
THREE_D_SECURE_CARD = "4000002500003155"
TIMEOUT_S = 2.0
# The PaymentMethod a deployment charges unless STRIPE_PAYMENT_METHOD names another.
VISA = Config.stripe_payment_method


def a_payment(amount: str = "150.00", currency: str = "USD") -> Payment:
    return Payment(
        id=uuid.uuid4(), order_id=uuid.uuid4(), customer_id=uuid.uuid4(), reservation_id=None,
        amount=Decimal(amount), currency=currency, payment_method="credit_card", status="pending",
        error_code=None, error_message=None, failure_reason=None, transaction_id=None,
        created_at=datetime.now(timezone.utc), processed_at=None, is_simulated=False,
        simulated_response=None,
    )


def prepared(gateway: StripeGateway, payment: Payment) -> Payment:
    """What the service does: prepare, then store the reference on the payment."""
    return dataclasses.replace(payment, gateway_reference=gateway.prepare(payment))


@pytest.fixture
def gateway(stripe_proxy):
    return StripeGateway(API_KEY, api_base=stripe_proxy.url, timeout=TIMEOUT_S, payment_method=VISA)


@pytest.fixture
def declining_gateway(stripe_proxy, localstripe):
    return StripeGateway(API_KEY, api_base=stripe_proxy.url, timeout=TIMEOUT_S,
                         payment_method=localstripe.payment_method(DECLINING_CARD))


def test_success_is_one_confirmed_intent_and_lookup_says_charged(gateway, localstripe):
    payment = prepared(gateway, a_payment("150.00", "USD"))
    intent = localstripe.intent(payment.gateway_reference)
    assert (intent["status"], intent["amount"], intent["currency"]) == ("requires_confirmation", 15000, "usd")
    assert intent["metadata"] == {"orderId": str(payment.order_id), "paymentId": str(payment.id)}
    assert localstripe.charges(payment.gateway_reference) == []

    result = gateway.charge(payment)

    charged = localstripe.charged_intent(payment.id)
    assert charged == payment.gateway_reference
    assert result.succeeded and result.transaction_id == expected_transaction_id(charged)
    assert result.simulated_response is None and result.error_code is None
    assert gateway.is_simulated is False
    assert localstripe.intent(payment.gateway_reference)["status"] == "succeeded"
    assert [c["status"] for c in localstripe.charges(payment.gateway_reference)] == ["succeeded"]
    found = gateway.lookup(payment)
    assert found.found is Found.CHARGED and found.result == result


def test_amount_is_sent_in_the_currency_minor_units(gateway, localstripe):
    for amount, currency, minor in (("15000", "JPY", 15000), ("1.125", "KWD", 1125), ("42.10", "EUR", 4210)):
        payment = prepared(gateway, a_payment(amount, currency))
        intent = localstripe.intent(payment.gateway_reference)
        assert (intent["amount"], intent["currency"]) == (minor, currency.lower())


def test_prepare_reuses_the_stored_reference(gateway, localstripe):
    payment = prepared(gateway, a_payment())
    before = len(localstripe.intents())
    assert gateway.prepare(payment) == payment.gateway_reference
    assert len(localstripe.intents()) == before


def test_decline_is_a_result_with_the_mapped_code_and_lookup_says_declined(declining_gateway, localstripe):
    payment = prepared(declining_gateway, a_payment())

    result = declining_gateway.charge(payment)

    assert not result.succeeded and result.transaction_id is None
    assert (result.error_code, result.error_message, result.failure_reason) == (
        "CARD_DECLINED", "Card declined", "Stripe declined the charge: card_declined")
    assert [c["status"] for c in localstripe.charges(payment.gateway_reference)] == ["failed"]
    found = declining_gateway.lookup(payment)
    assert found.found is Found.DECLINED and found.result == result


def test_charging_twice_confirms_once_and_answers_the_first_result(
        gateway, declining_gateway, stripe_proxy, localstripe):
    payment = prepared(gateway, a_payment())
    first = gateway.charge(payment)
    assert gateway.charge(payment) == first
    assert len(localstripe.charges(payment.gateway_reference)) == 1

    declined = prepared(declining_gateway, a_payment())
    first = declining_gateway.charge(declined)
    assert declining_gateway.charge(declined) == first
    assert len(localstripe.charges(declined.gateway_reference)) == 1
    # Not even a second confirm was sent (localstripe would refuse one, Stripe
    # would replay it by its idempotency key; neither is relied on).
    assert [s.path for s in stripe_proxy.seen if s.path.endswith("/confirm")] == [
        f"/v1/payment_intents/{payment.gateway_reference}/confirm",
        f"/v1/payment_intents/{declined.gateway_reference}/confirm",
    ]


def test_lookup_of_an_unconfirmed_intent_cancels_it_so_no_later_confirm_can_charge(gateway, localstripe):
    payment = prepared(gateway, a_payment())

    assert gateway.lookup(payment).found is Found.NEVER_CHARGED

    assert localstripe.intent(payment.gateway_reference)["status"] == "canceled"
    assert localstripe.confirm(payment.gateway_reference).status_code == 400
    late = gateway.charge(payment)   # a charge that was still on its way
    assert not late.succeeded and late.error_code == "PROCESSING_INTERRUPTED"
    assert localstripe.charges(payment.gateway_reference) == []
    assert gateway.lookup(payment).found is Found.NEVER_CHARGED


def test_lookup_without_a_reference_is_never_charged_and_cancels_what_create_answers(gateway, localstripe):
    payment = a_payment()
    gateway.prepare(payment)   # created, but the id was never stored

    assert gateway.lookup(payment).found is Found.NEVER_CHARGED

    # The adapter repeats the create call with the same idempotency key and
    # cancels what it answers: on Stripe the first intent; localstripe, which
    # ignores the keys, makes a second one, and that one is cancelled.
    mine = [i for i in localstripe.intents() if i["metadata"].get("paymentId") == str(payment.id)]
    assert "canceled" in {i["status"] for i in mine}
    assert not [c for i in mine for c in localstripe.charges(i["id"])]


def test_three_d_secure_is_declined_and_the_intent_cancelled(stripe_proxy, localstripe):
    gateway = StripeGateway(API_KEY, api_base=stripe_proxy.url, timeout=TIMEOUT_S,
                            payment_method=localstripe.payment_method(THREE_D_SECURE_CARD))
    payment = prepared(gateway, a_payment())

    result = gateway.charge(payment)

    assert not result.succeeded and result.error_code == "AUTHENTICATION_REQUIRED"
    assert localstripe.intent(payment.gateway_reference)["status"] == "canceled"
    assert gateway.charge(payment) == result
    found = gateway.lookup(payment)
    assert found.found is Found.DECLINED and found.result == result
    assert localstripe.charges(payment.gateway_reference) == []


def test_processor_refusing_connections(gateway, stripe_proxy, localstripe):
    payment = a_payment()
    stripe_proxy.switch(RESET)
    with pytest.raises(GatewayUnreachable):
        gateway.prepare(payment)

    stripe_proxy.switch(FORWARD)
    payment = prepared(gateway, payment)
    stripe_proxy.switch(RESET)
    with pytest.raises(GatewayUnreachable):
        gateway.charge(payment)
    assert gateway.lookup(payment).found is Found.UNKNOWN
    assert localstripe.intent(payment.gateway_reference)["status"] == "requires_confirmation"

    stripe_proxy.switch(FORWARD)
    assert gateway.lookup(payment).found is Found.NEVER_CHARGED
    assert localstripe.charges(payment.gateway_reference) == []


def test_processor_not_answering_is_bounded_by_the_timeout(gateway, stripe_proxy, localstripe):
    payment = prepared(gateway, a_payment())
    stripe_proxy.switch(BLACKHOLE)

    started = time.monotonic()
    with pytest.raises(GatewayUnreachable):
        gateway.charge(payment)
    assert gateway.lookup(payment).found is Found.UNKNOWN
    # The charge and the lookup, each ended by the timeout (the proxy holds them a minute).
    assert time.monotonic() - started < ceiling(2 * TIMEOUT_S)

    stripe_proxy.switch(FORWARD)
    result = gateway.charge(payment)
    assert result.succeeded
    stripe_proxy.switch(BLACKHOLE)
    assert gateway.lookup(payment).found is Found.UNKNOWN
    stripe_proxy.switch(FORWARD)
    found = gateway.lookup(payment)
    assert found.found is Found.CHARGED and found.result == result


def test_confirm_done_but_its_answer_lost(gateway, declining_gateway, stripe_proxy, localstripe):
    payment = prepared(gateway, a_payment())
    stripe_proxy.switch(LOSE_ANSWER, "/confirm")

    with pytest.raises(GatewayUnreachable):
        gateway.charge(payment)

    assert [(s.path.endswith("/confirm"), s.answered) for s in stripe_proxy.seen][-1] == (True, False)
    assert [c["status"] for c in localstripe.charges(payment.gateway_reference)] == ["succeeded"]
    found = gateway.lookup(payment)
    assert found.found is Found.CHARGED
    assert found.result.transaction_id == expected_transaction_id(localstripe.charged_intent(payment.id))
    assert gateway.charge(payment) == found.result   # the retry does not confirm again
    assert len(localstripe.charges(payment.gateway_reference)) == 1

    declined = prepared(declining_gateway, a_payment())
    with pytest.raises(GatewayUnreachable):
        declining_gateway.charge(declined)
    stripe_proxy.switch(FORWARD)
    found = declining_gateway.lookup(declined)
    assert found.found is Found.DECLINED and found.result.error_code == "CARD_DECLINED"


def test_the_api_key_never_shows_in_logs_messages_or_reprs(stripe_proxy, localstripe, caplog):
    caplog.set_level(logging.DEBUG)
    gateway = StripeGateway(API_KEY, api_base=stripe_proxy.url, timeout=TIMEOUT_S, payment_method=VISA)
    declining = StripeGateway(API_KEY, api_base=stripe_proxy.url, timeout=TIMEOUT_S,
                              payment_method=localstripe.payment_method(DECLINING_CARD))
    # localstripe answers 401 to a key that is not sk_...: an authentication failure.
    rejected_key = "rk_test_" + uuid.uuid4().hex
    rejected = StripeGateway(rejected_key, api_base=stripe_proxy.url, timeout=TIMEOUT_S, payment_method=VISA)
    texts = [repr(gateway), repr(rejected)]

    gateway.charge(prepared(gateway, a_payment()))
    declining.charge(prepared(declining, a_payment()))
    errors = []
    with pytest.raises(GatewayUnreachable) as refused:
        rejected.prepare(a_payment())
    errors.append(refused.value)
    assert rejected.lookup(dataclasses.replace(a_payment(), gateway_reference="pi_x")).found is Found.UNKNOWN
    stripe_proxy.switch(RESET)
    with pytest.raises(GatewayUnreachable) as unreachable:
        gateway.prepare(a_payment())
    errors.append(unreachable.value)

    config = Config.from_env({
        "DATABASE_URL": "postgresql://postgres@127.0.0.1:5432/test", "KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:9092",
        "PAYMENT_GATEWAY": "stripe", "STRIPE_API_KEY": API_KEY,
    })
    texts += [repr(config), str(config)]
    for error in errors:
        while error is not None:
            texts += [str(error), repr(error)]
            error = error.__cause__
    texts += [record.getMessage() + repr(vars(record)) for record in caplog.records]
    assert any("declined" in text for text in texts)   # the captured logs are really there
    for key in (API_KEY, rejected_key):
        # Neither the key nor any 8 characters of its secret part.
        secret = key[len("sk_test_"):]
        pieces = {secret[i:i + 8] for i in range(len(secret) - 7)}
        assert not [text for text in texts if any(piece in text for piece in pieces)]
