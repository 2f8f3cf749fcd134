"""Optional authorization: bearer JWTs (HS256 with a shared secret, RS256
from a JWKS endpoint served over HTTP) on every /payments request, through
the real app, database, broker and sandbox; and, with no key configured,
the service as the documented deployment has it."""

from __future__ import annotations

import time
import uuid

import pytest

from devstack.sandbox import EXAMPLE_CUSTOMER_ID
from tests.expected_events import assert_event_of
from tests.support import new_order, payment_body
from tests.timing import ceiling
from tests.tokens import (
    HS256_SECRET,
    OTHER_SECRET,
    JwksServer,
    RsaKey,
    bearer,
    claims,
    hmac_with,
    hs256,
    unsigned,
)

# Tokens and scopes: the same whichever way the service reaches PostgreSQL.
pytestmark = pytest.mark.route_independent

JWKS_TIMEOUT_S = 1.0
LOOKUP = "payment-lookup.schema.json"
LIST = "payment-list.schema.json"
OTHER_CUSTOMER = "3f2b8c1d-9e4a-4b6c-8d7e-1a2b3c4d5e6f"


def refused(message: str) -> dict:
    return {"success": False, "errorMessage": message, "payment": None}


@pytest.fixture
def hs_client(make_client, config, database, sandbox, events):
    return make_client(config, auth_hs256_secret=HS256_SECRET)


@pytest.fixture
def rsa_key():
    return RsaKey()


@pytest.fixture
def jwks(rsa_key):
    server = JwksServer(rsa_key)
    yield server
    server.stop()


@pytest.fixture
def rs_client(make_client, config, database, sandbox, events, jwks):
    return make_client(config, auth_jwks_url=jwks.url, auth_jwks_timeout=JWKS_TIMEOUT_S)


def as_customer(customer_id: str = EXAMPLE_CUSTOMER_ID, **more) -> dict:
    return bearer(hs256(claims(sub=customer_id, **more)))


# --- no key configured: as today ------------------------------------------------


def test_without_a_key_every_payment_is_open_as_documented(client, sandbox):
    paid = client.pay(payment_body(new_order(sandbox)))
    assert paid.status == 200
    payment = paid.body["payment"]

    # No token, or one nobody checks, changes nothing.
    for headers in ({}, {"Authorization": "Bearer not-a-token"}):
        one = client.get(f"/payments/{payment['id']}", headers=headers, schema=LOOKUP)
        listed = client.get("/payments", params={"orderId": payment["orderId"]}, headers=headers, schema=LIST)
        assert one.status == 200 and one.body["payment"] == payment
        assert listed.status == 200 and listed.body["payments"] == [payment]
        assert "WWW-Authenticate" not in one.headers


# --- HS256 ----------------------------------------------------------------------


def test_the_customers_own_token_pays_and_reads(hs_client, sandbox, database, events):
    order_id = new_order(sandbox)
    headers = as_customer()

    body = payment_body(order_id)
    paid = hs_client.pay(body, headers=headers)
    assert paid.status == 200, paid.body
    payment = paid.body["payment"]

    one = hs_client.get(f"/payments/{payment['id']}", headers=headers, schema=LOOKUP)
    listed = hs_client.get("/payments", params={"orderId": order_id}, headers=headers, schema=LIST)
    assert one.status == 200 and one.body["payment"] == payment
    assert listed.status == 200 and listed.body["payments"] == [payment]
    [event] = events.read("payment-succeeded")
    assert_event_of(event, database, payment["id"], body)


def known_payment(make_client, config, sandbox) -> dict:
    """A payment taken with authorization off, to read back with it on."""
    return make_client(config).pay(payment_body(new_order(sandbox))).body["payment"]


@pytest.mark.parametrize("method, path", [
    ("POST", "/payments"), ("GET", "/payments/{id}"), ("GET", "/payments?orderId={orderId}"),
])
def test_no_token_is_401_with_a_bearer_challenge(hs_client, make_client, config, sandbox, database, method, path):
    payment = known_payment(make_client, config, sandbox)
    body = payment_body(new_order(sandbox))
    before, calls = database.rows(), sandbox.calls()

    reply = hs_client.pay(body) if method == "POST" else hs_client.get(path.format(**payment))

    assert reply.status == 401
    assert reply.body == refused("Unauthorized: a bearer token is required")
    assert reply.headers["WWW-Authenticate"] == "Bearer"
    assert database.rows() == before, "a refused request wrote a row"
    assert sandbox.calls() == calls, "a refused request reached the ordering service"


def test_a_refused_post_touches_nothing(hs_client, sandbox, nothing_happened):
    order_id = new_order(sandbox)
    calls = len(sandbox.calls())
    for headers in ({}, bearer(unsigned()), as_customer(OTHER_CUSTOMER)):
        assert hs_client.pay(payment_body(order_id), headers=headers).status in (401, 403)
    assert len(sandbox.calls()) == calls, "a refused request reached the ordering service"


def expired():
    return hs256(claims(expires_in=-120))


def rs256_elsewhere():
    return RsaKey().sign()


@pytest.mark.parametrize("make_header, message", [
    (lambda: bearer(expired()), "token has expired"),
    (lambda: bearer(unsigned()), "token algorithm is not accepted"),
    (lambda: bearer(hs256(secret=OTHER_SECRET)), "token signature is invalid"),
    (lambda: bearer(rs256_elsewhere()), "token algorithm is not accepted"),
    (lambda: bearer(hs256(claims(nbf=int(time.time()) + 600))), "token is not yet valid"),
    (lambda: bearer(hs256({"sub": EXAMPLE_CUSTOMER_ID})), "token has no exp claim"),
    (lambda: bearer(hs256({"exp": int(time.time()) + 60})), "token has no sub claim"),
    (lambda: bearer(hs256(claims(sub=12345))), "token subject is not a string"),
    (lambda: bearer("bm90IGpzb24.e30.c2ln"), "token is malformed"),
    (lambda: bearer("not-a-jwt"), "token is malformed"),
    (lambda: {"Authorization": "Basic dXNlcjpwYXNz"}, "the Authorization header is not a bearer token"),
    (lambda: {"Authorization": "Bearer"}, "the Authorization header is not a bearer token"),
    (lambda: {"Authorization": f"Bearer {hs256()} {hs256()}"}, "the Authorization header is not a bearer token"),
    (lambda: bearer("a" * 9000), "token is too long"),
], ids=["expired", "alg-none", "wrong-key", "rs256-unconfigured", "not-yet-valid", "no-exp", "no-sub",
        "sub-not-string", "bad-payload", "not-a-jwt", "basic", "bearer-alone", "two-tokens", "too-long"])
def test_a_bad_token_is_401_naming_what_is_wrong(hs_client, make_client, config, sandbox, make_header, message):
    payment = known_payment(make_client, config, sandbox)
    headers = make_header()
    for reply in (hs_client.pay(payment_body(new_order(sandbox)), headers=headers),
                  hs_client.get(f"/payments/{payment['id']}", headers=headers),
                  hs_client.get("/payments", params={"orderId": payment["orderId"]}, headers=headers)):
        assert reply.status == 401
        assert reply.body == refused(f"Unauthorized: {message}")
        assert reply.headers["WWW-Authenticate"] == 'Bearer error="invalid_token"'
        token = headers["Authorization"].partition(" ")[2]
        assert not token or (token not in reply.text and token not in str(reply.headers))


def test_leeway_accepts_a_token_just_expired_and_no_more(make_client, config, sandbox, database, events):
    lenient = make_client(config, auth_hs256_secret=HS256_SECRET, auth_leeway=60)
    strict = make_client(config, auth_hs256_secret=HS256_SECRET)
    just_expired = bearer(hs256(claims(expires_in=-10)))
    long_expired = bearer(hs256(claims(expires_in=-600)))
    order_id = new_order(sandbox)

    params = {"orderId": order_id}
    assert strict.get("/payments", params=params, headers=just_expired).status == 401
    assert lenient.get("/payments", params=params, headers=just_expired, schema=LIST).status == 200
    assert lenient.get("/payments", params=params, headers=long_expired).status == 401


def test_audience_and_issuer_are_checked_when_configured(make_client, config, sandbox, database, events):
    client = make_client(config, auth_hs256_secret=HS256_SECRET,
                         auth_audience="payments", auth_issuer="https://id.ticketing.example/")
    path, params = "/payments", {"orderId": new_order(sandbox)}
    good = claims(aud="payments", iss="https://id.ticketing.example/")

    assert client.get(path, params=params, headers=bearer(hs256(good)), schema=LIST).status == 200
    both = bearer(hs256({**good, "aud": ["other", "payments"]}))
    assert client.get(path, params=params, headers=both, schema=LIST).status == 200
    for bad, message in (({**good, "aud": "billing"}, "token audience is not accepted"),
                         ({**good, "iss": "https://evil.example/"}, "token issuer is not accepted"),
                         ({k: v for k, v in good.items() if k != "aud"}, "token has no aud claim"),
                         ({k: v for k, v in good.items() if k != "iss"}, "token has no iss claim")):
        reply = client.get(path, params=params, headers=bearer(hs256(bad)))
        assert (reply.status, reply.body["errorMessage"]) == (401, f"Unauthorized: {message}")


def test_without_a_configured_audience_a_tokens_aud_is_not_judged(hs_client, sandbox):
    reply = hs_client.get("/payments", params={"orderId": new_order(sandbox)},
                          headers=bearer(hs256(claims(aud="some-other-api"))), schema=LIST)
    assert reply.status == 200


def test_a_post_for_another_customer_is_403(hs_client, sandbox, nothing_happened):
    reply = hs_client.pay(payment_body(new_order(sandbox)), headers=as_customer(OTHER_CUSTOMER))
    assert reply.status == 403
    assert reply.body == refused("Unauthorized: Customer does not own this order")


def test_a_replay_is_not_shown_to_another_customers_token(hs_client, sandbox):
    order_id = new_order(sandbox)
    assert hs_client.pay(payment_body(order_id), headers=as_customer()).status == 200
    # Knowing the customer id no longer helps: the body names the owner, the token does not.
    reply = hs_client.pay(payment_body(order_id), headers=as_customer(OTHER_CUSTOMER))
    assert reply.status == 403
    assert reply.body == refused("Unauthorized: Customer does not own this order")


def test_the_subject_matches_the_customer_in_any_case(hs_client, sandbox):
    reply = hs_client.pay(payment_body(new_order(sandbox)), headers=as_customer(EXAMPLE_CUSTOMER_ID.upper()))
    assert reply.status == 200


def two_customers_on_one_order(make_client, config, sandbox) -> tuple[str, dict, dict]:
    """An order that OTHER_CUSTOMER tried to pay (declined) before it passed to
    the example customer, who paid it: two customers' payments on one order."""
    open_client = make_client(config)
    order_id = new_order(sandbox, customer_id=OTHER_CUSTOMER, total=150.13)
    theirs = open_client.pay(payment_body(order_id, amount="150.13", customerId=OTHER_CUSTOMER))
    sandbox.put_order(order_id, customer_id=EXAMPLE_CUSTOMER_ID, total=150.00)
    mine = open_client.pay(payment_body(order_id))
    assert (theirs.status, mine.status) == (402, 200)
    return order_id, mine.body["payment"], theirs.body["payment"]


def test_another_customers_payment_is_not_found(hs_client, make_client, config, sandbox):
    _, mine, theirs = two_customers_on_one_order(make_client, config, sandbox)

    reply = hs_client.get(f"/payments/{theirs['id']}", headers=as_customer(), schema=LOOKUP)
    assert reply.status == 404
    assert reply.body == refused("Payment not found")
    # The same answer as for an id nobody has: existence does not leak.
    unknown = hs_client.get(f"/payments/{uuid.uuid4()}", headers=as_customer(), schema=LOOKUP)
    assert (unknown.status, unknown.body) == (reply.status, reply.body)

    own = hs_client.get(f"/payments/{theirs['id']}", headers=as_customer(OTHER_CUSTOMER), schema=LOOKUP)
    assert own.status == 200 and own.body["payment"] == theirs


def test_the_list_holds_only_the_callers_payments(hs_client, make_client, config, sandbox):
    order_id, mine, theirs = two_customers_on_one_order(make_client, config, sandbox)
    params = {"orderId": order_id}

    assert hs_client.get("/payments", params=params, headers=as_customer(), schema=LIST).body["payments"] == [mine]
    assert hs_client.get("/payments", params=params, headers=as_customer(OTHER_CUSTOMER),
                         schema=LIST).body["payments"] == [theirs]
    stranger = as_customer("c0ffee00-0000-4000-8000-000000000000")
    assert hs_client.get("/payments", params=params, headers=stranger, schema=LIST).body["payments"] == []


def test_the_service_scope_reads_every_payment_but_pays_for_no_one(hs_client, make_client, config, sandbox):
    order_id, mine, theirs = two_customers_on_one_order(make_client, config, sandbox)
    service = bearer(hs256(claims(sub="fulfillment-service", scope="openid payments:read-all")))

    listed = hs_client.get("/payments", params={"orderId": order_id}, headers=service, schema=LIST)
    assert listed.status == 200 and listed.body["payments"] == [mine, theirs]
    assert hs_client.get(f"/payments/{theirs['id']}", headers=service, schema=LOOKUP).status == 200
    # A list of scopes (`scp`) counts the same.
    as_list = bearer(hs256(claims(sub="fulfillment-service", scp=["payments:read-all"])))
    assert hs_client.get(f"/payments/{mine['id']}", headers=as_list, schema=LOOKUP).status == 200

    paid = hs_client.pay(payment_body(new_order(sandbox)), headers=service)
    assert paid.status == 403


def test_the_service_scope_is_the_configured_one(make_client, config, sandbox, database, events):
    client = make_client(config, auth_hs256_secret=HS256_SECRET, auth_service_scope="ops:audit")
    _, mine, theirs = two_customers_on_one_order(make_client, config, sandbox)

    default_scope = bearer(hs256(claims(sub="svc", scope="payments:read-all")))
    configured = bearer(hs256(claims(sub="svc", scope="ops:audit")))
    # A scope that merely contains the name is not it.
    lookalike = bearer(hs256(claims(sub="svc", scope="ops:audit-lite xops:audit")))
    assert client.get(f"/payments/{theirs['id']}", headers=default_scope).status == 404
    assert client.get(f"/payments/{theirs['id']}", headers=lookalike).status == 404
    assert client.get(f"/payments/{theirs['id']}", headers=configured, schema=LOOKUP).status == 200


def test_operational_routes_stay_open(hs_client):
    for path in ("/health/live", "/health/ready", "/metrics", "/openapi.json", "/schemas/payment.schema.json"):
        response = hs_client.app.get(path, expect_errors=True)
        assert response.status_int == 200, path


def test_refusals_are_counted_by_status(hs_client, sandbox):
    hs_client.get("/payments", params={"orderId": new_order(sandbox)})
    metrics = hs_client.app.get("/metrics").text
    assert 'payment_http_requests_total{method="GET",route="/payments",status="401"}' in metrics


def test_the_document_describes_the_optional_bearer_token(hs_client):
    document = hs_client.app.get("/openapi.json").json
    scheme = document["components"]["securitySchemes"]["bearerAuth"]
    assert (scheme["type"], scheme["scheme"], scheme["bearerFormat"]) == ("http", "bearer", "JWT")
    for path, item in document["paths"].items():
        for method, operation in item.items():
            if path.startswith("/payments"):
                # `{}` first: no token is a valid choice while authorization is off.
                assert operation["security"] == [{}, {"bearerAuth": []}], (path, method)
                assert "WWW-Authenticate" in operation["responses"]["401"]["headers"]
                assert "authorization keys" in operation["responses"]["503"]["description"]
            else:
                assert "security" not in operation and "401" not in operation["responses"], (path, method)


# --- RS256 from a JWKS endpoint ----------------------------------------------------


def test_an_rs256_token_from_the_jwks_pays_and_reads(rs_client, rsa_key, sandbox, jwks):
    order_id = new_order(sandbox)
    headers = bearer(rsa_key.sign())

    paid = rs_client.pay(payment_body(order_id), headers=headers)
    assert paid.status == 200, paid.body
    reply = rs_client.get(f"/payments/{paid.body['payment']['id']}", headers=headers, schema=LOOKUP)
    assert reply.status == 200
    listed = rs_client.get("/payments", params={"orderId": order_id}, headers=headers, schema=LIST)
    assert listed.body["payments"] == [paid.body["payment"]]
    # The set is fetched once and kept, not once per request.
    assert jwks.fetches == 1


@pytest.mark.parametrize("make_token, message", [
    (lambda key: RsaKey(kid=key.kid).sign(), "token signature is invalid"),
    (lambda key: RsaKey().sign(), "token signing key is unknown"),
    (lambda key: key.sign(claims(expires_in=-60)), "token has expired"),
    (lambda key: unsigned(kid=key.kid), "token algorithm is not accepted"),
    (lambda key: hmac_with(key.public_pem(), kid=key.kid), "token algorithm is not accepted"),
    (lambda key: hs256(kid=key.kid), "token algorithm is not accepted"),
    (lambda key: key.sign(algorithm="RS512"), "token algorithm is not accepted"),
    (lambda key: key.sign(algorithm="PS256"), "token algorithm is not accepted"),
], ids=["wrong-key-same-kid", "unknown-kid", "expired", "alg-none", "hs256-with-public-key",
        "hs256-unconfigured", "rs512", "ps256"])
def test_a_bad_rs256_token_is_401(rs_client, rsa_key, sandbox, make_token, message):
    token = make_token(rsa_key)
    reply = rs_client.get("/payments", params={"orderId": new_order(sandbox)}, headers=bearer(token))
    assert reply.status == 401
    assert reply.body == refused(f"Unauthorized: {message}")
    assert token not in reply.text


@pytest.mark.filterwarnings("ignore:The RSA key is 1024 bits")  # the test signing with it
def test_a_weak_rsa_key_in_the_jwks_is_not_accepted(rs_client, sandbox, jwks):
    weak = RsaKey(key_size=1024)
    jwks.keys.append(weak)
    reply = rs_client.get("/payments", params={"orderId": new_order(sandbox)}, headers=bearer(weak.sign()))
    assert reply.status == 401
    assert reply.body == refused("Unauthorized: token signing key is not accepted")


def test_the_public_key_as_an_hmac_secret_is_refused_even_with_hs256_on(make_client, config, sandbox, jwks, rsa_key,
                                                                       database, events):
    # Both algorithms configured: an HS256 token is checked against the shared
    # secret only, never against a key from the JWKS.
    client = make_client(config, auth_hs256_secret=HS256_SECRET, auth_jwks_url=jwks.url)
    params = {"orderId": new_order(sandbox)}
    forged = hmac_with(rsa_key.public_pem(), kid=rsa_key.kid)
    reply = client.get("/payments", params=params, headers=bearer(forged))
    assert (reply.status, reply.body["errorMessage"]) == (401, "Unauthorized: token signature is invalid")
    assert client.get("/payments", params=params, headers=bearer(rsa_key.sign()), schema=LIST).status == 200
    assert client.get("/payments", params=params, headers=bearer(hs256()), schema=LIST).status == 200


def keys_unavailable(reply) -> None:
    assert reply.status == 503
    assert reply.body == refused("Payment processing error: authorization keys are unavailable")
    assert reply.headers["Retry-After"] == "1"
    assert "WWW-Authenticate" not in reply.headers


def test_jwks_down_is_503_naming_the_keys(rs_client, rsa_key, sandbox, jwks, nothing_happened):
    jwks.stop()
    order_id = new_order(sandbox)
    headers = bearer(rsa_key.sign())
    keys_unavailable(rs_client.pay(payment_body(order_id), headers=headers))
    keys_unavailable(rs_client.get("/payments", params={"orderId": order_id}, headers=headers))
    keys_unavailable(rs_client.get(f"/payments/{uuid.uuid4()}", headers=headers))


def test_jwks_answering_an_error_is_503(rs_client, rsa_key, sandbox, jwks):
    jwks.mode = "error"
    keys_unavailable(rs_client.get("/payments", params={"orderId": new_order(sandbox)},
                                   headers=bearer(rsa_key.sign())))


def test_a_jwks_that_does_not_answer_costs_at_most_the_fetch_timeout(rs_client, rsa_key, sandbox, jwks):
    jwks.mode, jwks.hang_s = "hang", 4 * ceiling(JWKS_TIMEOUT_S)
    started = time.monotonic()
    reply = rs_client.get("/payments", params={"orderId": new_order(sandbox)}, headers=bearer(rsa_key.sign()))
    elapsed = time.monotonic() - started
    keys_unavailable(reply)
    assert elapsed < ceiling(JWKS_TIMEOUT_S), f"the JWKS fetch took {elapsed:.1f}s with a {JWKS_TIMEOUT_S}s timeout"


def test_keys_fetched_before_an_outage_keep_working_until_they_expire(rs_client, rsa_key, sandbox, jwks):
    params = {"orderId": new_order(sandbox)}
    assert rs_client.get("/payments", params=params, headers=bearer(rsa_key.sign()), schema=LIST).status == 200
    jwks.stop()
    assert rs_client.get("/payments", params=params, headers=bearer(rsa_key.sign()), schema=LIST).status == 200


def test_made_up_key_ids_do_not_become_a_stream_of_fetches(rs_client, rsa_key, sandbox, jwks):
    params = {"orderId": new_order(sandbox)}
    assert rs_client.get("/payments", params=params, headers=bearer(rsa_key.sign()), schema=LIST).status == 200
    # An unknown kid refetches the set at most once per cooldown (30 s).
    for _ in range(5):
        reply = rs_client.get("/payments", params=params, headers=bearer(RsaKey().sign()))
        assert reply.status == 401
    assert jwks.fetches <= 2
