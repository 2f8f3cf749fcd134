"""Authorization's pure parts: its configuration, the caller's rights, the
Authorization header, and HS256 verification with real signed tokens."""

from __future__ import annotations

import re
from types import SimpleNamespace
from uuid import UUID

import pytest

from payment.api.auth import ANYONE, Caller, TokenVerifier, bearer_token
from payment.bootstrap import verifier_from
from payment.config import Config, ConfigError
from payment.errors import CustomerMismatch, Forbidden, Unauthenticated
from tests.tokens import HS256_SECRET, claims, hs256, unsigned

BASE = {
    "DATABASE_URL": "postgresql://postgres@127.0.0.1:5432/test",
    "KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:9092",
}
CUSTOMER = UUID("a8098c1a-f86e-11da-bd1a-00112444be1e")


def test_authorization_is_off_by_default():
    config = Config.from_env(BASE)
    assert not config.auth_enabled
    assert verifier_from(config) is None
    assert (config.auth_service_scope, config.auth_leeway, config.auth_jwks_timeout, config.auth_jwks_cache) == (
        "payments:read-all", 0.0, 2.0, 300.0)
    assert config.auth_refund_scope == "payments:refund"


def test_settings_are_read():
    config = Config.from_env({**BASE, "AUTH_JWT_HS256_SECRET": HS256_SECRET,
                              "AUTH_JWKS_URL": "https://id.example/.well-known/jwks.json",
                              "AUTH_AUDIENCE": "payments", "AUTH_ISSUER": "https://id.example/",
                              "AUTH_SERVICE_SCOPE": "ops:audit", "AUTH_LEEWAY_S": "30",
                              "AUTH_JWKS_TIMEOUT_S": "0.5", "AUTH_JWKS_CACHE_S": "60",
                              "AUTH_REFUND_SCOPE": "ops:refund"})
    assert config.auth_enabled
    assert (config.auth_hs256_secret, config.auth_jwks_url, config.auth_audience, config.auth_issuer) == (
        HS256_SECRET, "https://id.example/.well-known/jwks.json", "payments", "https://id.example/")
    assert (config.auth_service_scope, config.auth_leeway, config.auth_jwks_timeout, config.auth_jwks_cache) == (
        "ops:audit", 30.0, 0.5, 60.0)
    assert verifier_from(config).algorithms == ["HS256", "RS256"]
    assert config.auth_refund_scope == verifier_from(config).refund_scope == "ops:refund"


@pytest.mark.parametrize("change, message", [
    ({"AUTH_JWT_HS256_SECRET": "short-secret"}, "AUTH_JWT_HS256_SECRET must be at least 32 bytes"),
    ({"AUTH_JWKS_URL": "file:///etc/keys.json"}, "AUTH_JWKS_URL must be an http(s) URL"),
    ({"AUTH_AUDIENCE": "payments"}, "AUTH_AUDIENCE needs AUTH_JWT_HS256_SECRET or AUTH_JWKS_URL"),
    ({"AUTH_ISSUER": "https://id.example/"}, "AUTH_ISSUER needs AUTH_JWT_HS256_SECRET or AUTH_JWKS_URL"),
    ({"AUTH_JWT_HS256_SECRET": HS256_SECRET, "AUTH_AUDIENCE": " payments"}, "AUTH_AUDIENCE must be printable"),
    ({"AUTH_SERVICE_SCOPE": "payments read-all"}, "AUTH_SERVICE_SCOPE must be one OAuth scope"),
    ({"AUTH_REFUND_SCOPE": 'payments:"refund"'}, "AUTH_REFUND_SCOPE must be one OAuth scope"),
    ({"AUTH_LEEWAY_S": "3600"}, "AUTH_LEEWAY_S must be between 0 and 300 seconds"),
    ({"AUTH_LEEWAY_S": "soon"}, "AUTH_LEEWAY_S must be a number of seconds"),
    ({"AUTH_JWKS_TIMEOUT_S": "60"}, "AUTH_JWKS_TIMEOUT_S must be between 0 and 30 seconds"),
    ({"AUTH_JWKS_CACHE_S": "0"}, "AUTH_JWKS_CACHE_S must be between"),
])
def test_bad_values_name_the_variable(change, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        Config.from_env({**BASE, **change})


def test_the_secret_is_in_no_error_and_no_repr():
    with pytest.raises(ConfigError) as raised:
        Config.from_env({**BASE, "AUTH_JWT_HS256_SECRET": "hunter2-short"})
    assert "hunter2" not in str(raised.value)
    config = Config.from_env({**BASE, "AUTH_JWT_HS256_SECRET": HS256_SECRET})
    assert HS256_SECRET not in repr(config)


def test_a_caller_owns_the_customer_its_subject_names():
    caller = Caller(subject=str(CUSTOMER).upper())
    assert caller.owns(CUSTOMER)
    assert not Caller(subject="3f2b8c1d-9e4a-4b6c-8d7e-1a2b3c4d5e6f").owns(CUSTOMER)
    assert not Caller(subject="reporting-service").owns(CUSTOMER)
    caller.check_pays_for(CUSTOMER)
    with pytest.raises(CustomerMismatch):
        Caller(subject="reporting-service", read_all=True).check_pays_for(CUSTOMER)


def test_reading_needs_ownership_or_the_service_scope():
    payment = SimpleNamespace(customer_id=CUSTOMER)
    assert Caller(subject=str(CUSTOMER)).may_read(payment)
    assert Caller(subject="reporting-service", read_all=True).may_read(payment)
    assert not Caller(subject="reporting-service").may_read(payment)
    assert ANYONE.may_read(payment) and ANYONE.owns(CUSTOMER)


@pytest.mark.parametrize("header, token", [
    ("Bearer abc.def.ghi", "abc.def.ghi"), ("bearer abc.def.ghi", "abc.def.ghi"), ("BEARER  a-b_c.d~e+f/g==", "a-b_c.d~e+f/g=="),
])
def test_a_bearer_token_is_taken_from_the_header(header, token):
    assert bearer_token(header) == token


@pytest.mark.parametrize("header", ["Basic dXNlcjpwYXNz", "Bearer", "Bearer a b", "Bearer a\"b", "Token abc", "Bearerabc"])
def test_anything_else_is_refused(header):
    with pytest.raises(Unauthenticated, match="the Authorization header is not a bearer token") as raised:
        bearer_token(header)
    assert raised.value.challenge == 'Bearer error="invalid_token"'


def test_no_header_asks_for_a_token():
    with pytest.raises(Unauthenticated, match="a bearer token is required") as raised:
        bearer_token(None)
    assert raised.value.challenge == "Bearer"


@pytest.fixture
def verifier():
    return TokenVerifier(hs256_secret=HS256_SECRET, service_scope="payments:read-all",
                         refund_scope="payments:refund", leeway=0.0)


def test_a_good_token_names_its_caller(verifier):
    caller = verifier.verify(hs256(claims(sub=str(CUSTOMER))))
    assert caller == Caller(subject=str(CUSTOMER), read_all=False)


@pytest.mark.parametrize("scope_claims, read_all", [
    ({"scope": "openid payments:read-all"}, True),
    ({"scp": ["payments:read-all"]}, True),
    ({"scope": "payments:read-all-but-not-really"}, False),
    ({"scope": ["payments:read"]}, False),
    ({"scope": 42}, False),
])
def test_the_service_scope_is_one_whole_scope(verifier, scope_claims, read_all):
    assert verifier.verify(hs256(claims(sub="svc", **scope_claims))).read_all is read_all


@pytest.mark.parametrize("scope_claims, refund", [
    ({"scope": "payments:read-all payments:refund"}, True),
    ({"scp": ["payments:refund"]}, True),
    ({"scope": "payments:refunds"}, False),
    ({"scope": "payments:read-all"}, False),
    ({}, False),
])
def test_the_refund_scope_is_one_whole_scope_and_refunding_needs_it(verifier, scope_claims, refund):
    caller = verifier.verify(hs256(claims(sub=str(CUSTOMER), **scope_claims)))
    assert caller.refund is refund
    if refund:
        caller.check_refunds("payments:refund")
    else:
        with pytest.raises(Forbidden, match="refunding needs a token with the payments:refund scope"):
            caller.check_refunds("payments:refund")


def test_without_authorization_anyone_refunds():
    ANYONE.check_refunds("payments:refund")


def test_only_configured_algorithms_are_accepted(verifier):
    for token in (unsigned(), unsigned(claims(), kid="k")):
        with pytest.raises(Unauthenticated, match="token algorithm is not accepted"):
            verifier.verify(token)


def test_a_verifier_needs_a_key():
    with pytest.raises(ValueError):
        TokenVerifier(service_scope="payments:read-all", refund_scope="payments:refund", leeway=0.0)
