"""The Stripe adapter's pure parts: amounts in minor units, the decline table
and the create refusals, the requests it refuses, the settings and the
choice of adapter. (Its calls to Stripe are tested
against localstripe in tests/integration/test_stripe_gateway.py.)"""

import uuid
from decimal import Decimal

import pytest

from payment.config import Config, ConfigError
from payment.errors import InvalidRequest
from payment.gateways.factory import build_gateway
from payment.gateways.stripe_declines import decline, refusal_code, refused
from payment.gateways.stripe_gateway import StripeGateway, minor_units
from payment.model import PaymentRequest

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
        "https://api.stripe.com", None, 10.0)
    assert config.stripe_webhook_secrets == ()


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
    ({"PAYMENT_GATEWAY": "stripe", "STRIPE_API_KEY": "sk_live_abc123", "STRIPE_PAYMENT_METHOD": "pm_card_visa"},
     "STRIPE_PAYMENT_METHOD may be set only with a test key (sk_test_... or rk_test_...): with a live key every "
     "payment must bring the customer's own paymentToken"),
    ({"PAYMENT_GATEWAY": "stripe", "STRIPE_API_KEY": "rk_live_abc123", "STRIPE_PAYMENT_METHOD": "pm_1Pq2"},
     "STRIPE_PAYMENT_METHOD may be set only with a test key"),
    ({"STRIPE_WEBHOOK_SECRET": "whsec_abc"}, "STRIPE_WEBHOOK_SECRET needs PAYMENT_GATEWAY=stripe"),
    ({"PAYMENT_GATEWAY": "stripe", "STRIPE_API_KEY": KEY, "STRIPE_WEBHOOK_SECRET": "whsec_a,,whsec_b"},
     "STRIPE_WEBHOOK_SECRET must be one or more signing secrets"),
    ({"PAYMENT_GATEWAY": "stripe", "STRIPE_API_KEY": KEY, "STRIPE_WEBHOOK_SECRET": "whsec a"},
     "STRIPE_WEBHOOK_SECRET must be one or more signing secrets"),
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
    assert (gateway.api_base, gateway.payment_method, gateway.timeout) == ("http://127.0.0.1:8420", None, 3)


def test_a_live_key_starts_without_a_configured_payment_method_and_a_test_key_with_one():
    live = Config.from_env({**BASE, "PAYMENT_GATEWAY": "stripe", "STRIPE_API_KEY": "sk_live_abc123"})
    assert (live.stripe_api_key, live.stripe_payment_method) == ("sk_live_abc123", None)
    test = Config.from_env({**BASE, "PAYMENT_GATEWAY": "stripe", "STRIPE_API_KEY": "rk_test_abc123",
                            "STRIPE_PAYMENT_METHOD": "pm_card_visa"})
    assert test.stripe_payment_method == "pm_card_visa"


def test_webhook_secrets_one_or_several_for_a_rotation_and_out_of_the_repr():
    one = Config.from_env({**BASE, "PAYMENT_GATEWAY": "stripe", "STRIPE_API_KEY": KEY,
                           "STRIPE_WEBHOOK_SECRET": "whsec_Zq8Tr1old"})
    assert one.stripe_webhook_secrets == ("whsec_Zq8Tr1old",)
    two = Config.from_env({**BASE, "PAYMENT_GATEWAY": "stripe", "STRIPE_API_KEY": KEY,
                           "STRIPE_WEBHOOK_SECRET": " whsec_Zq8Tr1old , whsec_Zq8Tr1new"})
    assert two.stripe_webhook_secrets == ("whsec_Zq8Tr1old", "whsec_Zq8Tr1new")
    assert "Zq8Tr1" not in repr(two) and "Zq8Tr1" not in str(two)
    with pytest.raises(ConfigError) as refused:
        Config.from_env({**BASE, "PAYMENT_GATEWAY": "stripe", "STRIPE_API_KEY": KEY,
                         "STRIPE_WEBHOOK_SECRET": "whsec_Zq8Tr1old,whsec Zq8Tr1new"})
    assert "Zq8Tr1" not in str(refused.value)


def a_request(method: str = "credit_card", token: str | None = None) -> PaymentRequest:
    return PaymentRequest(order_id=uuid.uuid4(), customer_id=uuid.uuid4(), reservation_id=None,
                          amount=Decimal("150.00"), currency="USD", payment_method=method, payment_token=token)


@pytest.mark.parametrize("method", ["credit_card", "debit_card", "apple_pay", "google_pay"])
def test_card_methods_go_to_stripe_with_a_token_or_the_configured_payment_method(method):
    without = StripeGateway(KEY, api_base="http://127.0.0.1:9", payment_method=None, timeout=1)
    without.check_request(a_request(method, token="pm_1Pq2Rs3Tu"))
    with pytest.raises(InvalidRequest) as refused:
        without.check_request(a_request(method))
    assert refused.value.message == "Invalid request: paymentToken is required"
    configured = StripeGateway(KEY, api_base="http://127.0.0.1:9", payment_method="pm_card_visa", timeout=1)
    configured.check_request(a_request(method))


@pytest.mark.parametrize("token", [None, "pm_1Pq2Rs3Tu"])
def test_paypal_is_not_a_stripe_payment_method(token):
    for configured in (None, "pm_card_visa"):
        gateway = StripeGateway(KEY, api_base="http://127.0.0.1:9", payment_method=configured, timeout=1)
        with pytest.raises(InvalidRequest) as refused:
            gateway.check_request(a_request("paypal", token))
        assert refused.value.message == "Invalid request: paymentMethod paypal is not supported by the stripe gateway"


@pytest.mark.parametrize("code, param, status, refusal, error_code", [
    ("amount_too_small", "amount", 400, "amount_too_small", "AMOUNT_TOO_SMALL"),
    ("amount_too_large", "amount", 400, "amount_too_large", "AMOUNT_TOO_LARGE"),
    ("resource_missing", "payment_method", 400, "resource_missing", "INVALID_PAYMENT_METHOD"),
    ("payment_method_unexpected_state", "payment_method", 400, "payment_method_unexpected_state",
     "INVALID_PAYMENT_METHOD"),
    ("payment_method_invalid_parameter", None, 400, "payment_method_invalid_parameter", "INVALID_PAYMENT_METHOD"),
    ("payment_method_currency_mismatch", None, 400, "payment_method_currency_mismatch", "CURRENCY_NOT_SUPPORTED"),
    (None, "currency", 400, "currency_not_supported", "CURRENCY_NOT_SUPPORTED"),
    (None, None, 404, "resource_missing", "INVALID_PAYMENT_METHOD"),   # localstripe's bare 404
    (None, None, 400, "resource_missing", "INVALID_PAYMENT_METHOD"),   # and its bare 400
])
def test_a_create_refused_for_the_payment_itself_is_a_decline(code, param, status, refusal, error_code):
    assert refusal_code(code, param, status) == refusal
    result = refused(refusal)
    assert not result.succeeded and result.transaction_id is None and result.error_code == error_code
    assert result.failure_reason == f"Stripe refused the payment before charging: {refusal}"


@pytest.mark.parametrize("code, param, status", [
    ("parameter_unknown", "capture_method", 400),     # the service's own request is wrong
    ("resource_missing", "customer", 400),           # not the payment method
    ("parameter_missing", None, 400),
    (None, None, 500),
    ("idempotency_key_in_use", None, 400),
])
def test_a_create_refused_for_the_services_own_request_is_no_decline(code, param, status):
    assert refusal_code(code, param, status) is None
