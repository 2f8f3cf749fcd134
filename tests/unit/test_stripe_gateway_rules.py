"""The Stripe adapter's pure parts: amounts in minor units, the decline table,
the settings and the choice of adapter. (Its calls to Stripe are tested
against localstripe in tests/integration/test_stripe_gateway.py.)"""

from decimal import Decimal

import pytest

from payment.config import Config, ConfigError
from payment.gateways.factory import build_gateway
from payment.gateways.stripe_declines import decline
from payment.gateways.stripe_gateway import StripeGateway, minor_units

BASE = {
    "DATABASE_URL": "postgresql://postgres@127.0.0.1:5432/test",
    "KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:9092",
}
KEY = "sk_test_4eC39HqLyjWDarjtT1zdp7dcSECRET"


@pytest.mark.parametrize("amount, currency, minor", [
    ("150.00", "USD", 15000), ("0.01", "EUR", 1), ("15000", "JPY", 15000), ("1.125", "KWD", 1125),
    ("999999.99", "usd", 99999999), ("12.3456", "CLF", 123456), ("1e3", "USD", 100000),
])
def test_amounts_in_minor_units_are_exact(amount, currency, minor):
    assert minor_units(Decimal(amount), currency) == minor


def test_an_amount_finer_than_its_currency_is_refused_not_rounded():
    with pytest.raises(ValueError):
        minor_units(Decimal("1.005"), "USD")
    with pytest.raises(ValueError):
        minor_units(Decimal("100.5"), "JPY")


@pytest.mark.parametrize("code, error_code, message", [
    ("card_declined", "CARD_DECLINED", "Card declined"),
    ("insufficient_funds", "INSUFFICIENT_FUNDS", "Card declined due to insufficient funds"),
    ("expired_card", "EXPIRED_CARD", "Card expired"),
    ("incorrect_cvc", "INCORRECT_CVC", "Incorrect card security code"),
    ("processing_error", "PROCESSING_ERROR", "The card could not be processed, try again"),
    ("authentication_required", "AUTHENTICATION_REQUIRED", "The card issuer requires authentication"),
    ("amount_too_large", "AMOUNT_TOO_LARGE", "Amount too large"),
    ("do_not_honor", "CARD_DECLINED", "Card declined"),
    ("something_new", "CARD_DECLINED", "Card declined"),
    (None, "CARD_DECLINED", "Card declined"),
])
def test_decline_codes_map_onto_the_contract(code, error_code, message):
    result = decline(code)
    assert not result.succeeded and result.transaction_id is None and result.simulated_response is None
    assert (result.error_code, result.error_message) == (error_code, message)
    assert result.failure_reason == f"Stripe declined the charge: {code or 'card_declined'}"


@pytest.mark.parametrize("code", ["lost_card", "stolen_card", "fraudulent", "pickup_card"])
def test_fraud_related_declines_are_shown_as_generic(code):
    result = decline(code)
    assert (result.error_code, result.error_message) == ("CARD_DECLINED", "Card declined")
    assert result.failure_reason == "Stripe declined the charge: generic_decline"


def test_simulator_is_the_default_gateway():
    config = Config.from_env(BASE)
    assert config.payment_gateway == "simulator" and config.stripe_api_key is None
    assert (config.stripe_api_base, config.stripe_payment_method, config.gateway_timeout) == (
        "https://api.stripe.com", "pm_card_visa", 10.0)


def test_stripe_settings():
    config = Config.from_env({**BASE, "PAYMENT_GATEWAY": "stripe", "STRIPE_API_KEY": KEY,
                              "STRIPE_API_BASE": "http://127.0.0.1:8420/", "GATEWAY_TIMEOUT_S": "2.5",
                              "STRIPE_PAYMENT_METHOD": "pm_1Pq2Rs3Tu"})
    assert (config.payment_gateway, config.stripe_api_key, config.stripe_api_base) == (
        "stripe", KEY, "http://127.0.0.1:8420")
    assert (config.stripe_payment_method, config.gateway_timeout) == ("pm_1Pq2Rs3Tu", 2.5)


@pytest.mark.parametrize("env, message", [
    ({"PAYMENT_GATEWAY": "paypal"}, "PAYMENT_GATEWAY must be one of: simulator, stripe"),
    ({"PAYMENT_GATEWAY": "stripe"}, "STRIPE_API_KEY must be set when PAYMENT_GATEWAY is stripe"),
    ({"PAYMENT_GATEWAY": "stripe", "STRIPE_API_KEY": "pk_test_abc"}, "STRIPE_API_KEY must be a Stripe secret"),
    ({"PAYMENT_GATEWAY": "stripe", "STRIPE_API_KEY": KEY, "STRIPE_API_BASE": "ftp://x"},
     "STRIPE_API_BASE must be an http(s) URL"),
    ({"STRIPE_PAYMENT_METHOD": "4242424242424242"}, "STRIPE_PAYMENT_METHOD must be a PaymentMethod id"),
    ({"GATEWAY_TIMEOUT_S": "0"}, "GATEWAY_TIMEOUT_S must be between 0 and 120 seconds"),
])
def test_bad_gateway_settings_name_the_variable(env, message):
    with pytest.raises(ConfigError, match="^" + message.replace("(", r"\(").replace(")", r"\)")):
        Config.from_env({**BASE, **env})


def test_the_key_is_never_in_a_message_or_the_configs_repr():
    bad_key = "sk_test_has-a-dash-SECRET"
    with pytest.raises(ConfigError) as refused:
        Config.from_env({**BASE, "PAYMENT_GATEWAY": "stripe", "STRIPE_API_KEY": bad_key})
    assert "SECRET" not in str(refused.value)
    config = Config.from_env({**BASE, "PAYMENT_GATEWAY": "stripe", "STRIPE_API_KEY": KEY})
    assert "SECRET" not in repr(config) and "SECRET" not in str(config)
    assert "SECRET" not in repr(build_gateway(config, simulator=lambda: pytest.fail("the simulator was built")))


def test_build_gateway_chooses_by_configuration():
    simulator = object()
    assert build_gateway(Config.from_env(BASE), simulator=lambda: simulator) is simulator
    config = Config.from_env({**BASE, "PAYMENT_GATEWAY": "stripe", "STRIPE_API_KEY": KEY,
                              "STRIPE_API_BASE": "http://127.0.0.1:8420", "GATEWAY_TIMEOUT_S": "3"})
    gateway = build_gateway(config, simulator=lambda: pytest.fail("the simulator was built"))
    assert isinstance(gateway, StripeGateway) and gateway.is_simulated is False
    assert (gateway.api_base, gateway.payment_method, gateway.timeout) == ("http://127.0.0.1:8420", "pm_card_visa", 3)
