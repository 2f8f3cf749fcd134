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
from payment.gateways.port import Found, GatewayPending, GatewayUnreachable, idempotency_key
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
# Stripe's test PaymentMethod, as STRIPE_PAYMENT_METHOD names it in the tests.
VISA = "pm_card_visa"


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


@pytest.mark.parametrize("search", [True, False], ids=["search", "list"])
def test_lookup_without_a_reference_finds_the_intent_by_its_metadata_and_cancels_it(
        gateway, localstripe, stripe_proxy, search):
    localstripe.search(search)
    other = prepared(gateway, a_payment())
    payment = a_payment()
    orphan = gateway.prepare(payment)   # created, but the id was never stored

    assert gateway.lookup(payment).found is Found.NEVER_CHARGED

    assert localstripe.intent(orphan)["status"] == "canceled"
    assert localstripe.intent(other.gateway_reference)["status"] == "requires_confirmation"
    assert localstripe.charges(orphan) == []
    searched = any(s.path.startswith("/v1/payment_intents/search") for s in stripe_proxy.seen)
    listed = any(s.path.startswith("/v1/payment_intents?") for s in stripe_proxy.seen)
    assert (searched, listed) == (True, not search)   # the list only where search is not offered


def test_lookup_without_a_reference_and_no_intent_at_all_is_never_charged(gateway, localstripe):
    assert gateway.lookup(a_payment()).found is Found.NEVER_CHARGED


def test_lookup_without_a_reference_is_unknown_while_stripe_cannot_be_asked(gateway, localstripe, stripe_proxy):
    payment = a_payment()
    orphan = gateway.prepare(payment)
    stripe_proxy.switch(RESET, "/v1/payment_intents")
    assert gateway.lookup(payment).found is Found.UNKNOWN
    stripe_proxy.switch(FORWARD)
    assert localstripe.intent(orphan)["status"] == "requires_confirmation"


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


# --- the customer's own PaymentMethod; every state an intent can be in ---------

FAILING_IBAN = "DE62370400440532013001"


def test_the_payment_token_is_what_is_charged_with_automatic_capture(gateway, localstripe):
    own = localstripe.payment_method("4242424242424242")
    payment = prepared(gateway, dataclasses.replace(a_payment(), payment_token=own))
    intent = localstripe.intent(payment.gateway_reference)
    assert (intent["payment_method"], intent["capture_method"]) == (own, "automatic")

    assert gateway.charge(payment).succeeded
    [charge] = localstripe.charges(payment.gateway_reference)
    assert (charge["payment_method"], charge["captured"]) == (own, True)


def test_without_a_token_the_configured_payment_method_is_charged(gateway, localstripe):
    payment = prepared(gateway, a_payment())
    assert localstripe.intent(payment.gateway_reference)["payment_method"].startswith("pm_")
    assert gateway.charge(payment).succeeded


def test_a_token_stripe_does_not_know_is_declined_at_prepare_with_nothing_made(gateway, localstripe):
    before = len(localstripe.intents())
    result = gateway.prepare(dataclasses.replace(a_payment(), payment_token="pm_" + uuid.uuid4().hex))
    assert not result.succeeded and result.transaction_id is None
    assert (result.error_code, result.error_message, result.failure_reason) == (
        "INVALID_PAYMENT_METHOD", "Payment method not usable",
        "Stripe refused the payment before charging: resource_missing")
    assert len(localstripe.intents()) == before


def test_a_card_that_attaches_then_fails_is_declined_at_confirm(gateway, localstripe):
    payment = prepared(gateway, dataclasses.replace(a_payment(), payment_token=localstripe.payment_method(
        DECLINING_CARD)))
    result = gateway.charge(payment)
    assert not result.succeeded and result.error_code == "CARD_DECLINED"
    assert [c["status"] for c in localstripe.charges(payment.gateway_reference)] == ["failed"]


@pytest.mark.parametrize("step", ["charge", "lookup"])
def test_an_intent_awaiting_capture_is_captured(gateway, localstripe, stripe_proxy, step):
    payment = a_payment()
    intent_id = localstripe.intent_awaiting_capture(payment)
    assert localstripe.intent(intent_id)["status"] == "requires_capture"
    payment = dataclasses.replace(payment, gateway_reference=intent_id)

    found = gateway.charge(payment) if step == "charge" else gateway.lookup(payment).result

    assert found.succeeded and found.transaction_id == expected_transaction_id(intent_id)
    assert localstripe.intent(intent_id)["status"] == "succeeded"
    assert [c["captured"] for c in localstripe.charges(intent_id)] == [True]
    assert [s.path for s in stripe_proxy.seen if s.path.endswith("/capture")] == [
        f"/v1/payment_intents/{intent_id}/capture"]
    # Settled now: asked again, nothing is captured twice.
    assert gateway.charge(payment) == found and gateway.lookup(payment).result == found
    assert len([s for s in stripe_proxy.seen if s.path.endswith("/capture")]) == 1


def test_a_processing_intent_stays_pending_until_stripe_decides(gateway, localstripe):
    # localstripe's one way to `processing`: a SEPA debit, which it settles
    # half a second after the confirm (this IBAN: failed).
    payment = prepared(gateway, dataclasses.replace(
        a_payment(), payment_token=localstripe.sepa_payment_method(FAILING_IBAN)))

    with pytest.raises(GatewayPending):
        gateway.charge(payment)
    assert localstripe.intent(payment.gateway_reference)["status"] == "processing"
    assert gateway.lookup(payment).found is Found.UNKNOWN   # not cancelled, not guessed
    assert localstripe.intent(payment.gateway_reference)["status"] == "processing"

    deadline = time.monotonic() + ceiling(5)
    while (found := gateway.lookup(payment)).found is Found.UNKNOWN and time.monotonic() < deadline:
        time.sleep(0.1)
    assert found.found is Found.DECLINED and found.result.error_code == "CARD_DECLINED"


def test_a_stored_intent_id_stripe_does_not_know_is_never_charged(gateway, localstripe):
    payment = dataclasses.replace(a_payment(), gateway_reference="pi_" + uuid.uuid4().hex[:24])
    assert gateway.lookup(payment).found is Found.NEVER_CHARGED


def test_a_stored_intent_id_is_unknown_while_stripe_cannot_say(gateway, stripe_proxy, localstripe):
    payment = prepared(gateway, a_payment())
    for mode in (RESET, BLACKHOLE):
        stripe_proxy.switch(mode)
        assert gateway.lookup(payment).found is Found.UNKNOWN
    stripe_proxy.switch(FORWARD)
    assert localstripe.intent(payment.gateway_reference)["status"] == "requires_confirmation"


class Counts:
    def __init__(self):
        self.kinds: list[str] = []

    def gateway_error(self, kind: str) -> None:
        self.kinds.append(kind)


def test_failed_calls_are_counted_by_kind_and_a_refused_key_fails_readiness(stripe_proxy, localstripe, caplog):
    counts = Counts()
    # localstripe refuses any key but an sk_ one (401): a revoked key.
    revoked = StripeGateway("rk_test_" + uuid.uuid4().hex, api_base=stripe_proxy.url, timeout=TIMEOUT_S,
                            payment_method=VISA, metrics=counts)
    caplog.set_level(logging.ERROR, logger="payment.gateways.stripe_health")
    revoked.health.start()
    assert revoked.health.ready() is False      # the start-up probe's answer
    with pytest.raises(GatewayUnreachable):
        revoked.prepare(a_payment())
    assert counts.kinds == ["auth", "auth"]
    assert [r.gatewayErrorKind for r in caplog.records] == ["auth"]   # once a minute at most

    working = StripeGateway(API_KEY, api_base=stripe_proxy.url, timeout=TIMEOUT_S, payment_method=VISA,
                            metrics=counts)
    working.health.start()
    assert working.health.ready() is True
    stripe_proxy.switch(RESET)
    with pytest.raises(GatewayUnreachable):
        working.prepare(a_payment())
    assert counts.kinds[-1] == "network" and working.health.ready() is True   # passing, not a person's job
