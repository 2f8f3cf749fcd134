"""Refunds with authorization on (real HS256 tokens, the real app, database,
broker and sandbox): refunding needs the refund scope and a payment the
token may read; reading refunds follows the payment's read rules."""

from __future__ import annotations

import uuid
from decimal import Decimal

import pytest

from devstack.sandbox import EXAMPLE_CUSTOMER_ID
from tests.support import new_order, payment_body
from tests.tokens import HS256_SECRET, bearer, claims, hs256

# Tokens and scopes: the same whichever way the service reaches PostgreSQL.
pytestmark = pytest.mark.route_independent

OTHER_CUSTOMER = "3f2b8c1d-9e4a-4b6c-8d7e-1a2b3c4d5e6f"
LIST = "refund-list.schema.json"
LOOKUP = "refund-lookup.schema.json"
REFUND_ERRORS = "refund-response.schema.json"
NO_SCOPE = "Forbidden: refunding needs a token with the payments:refund scope"


def token(customer_id: str = EXAMPLE_CUSTOMER_ID, scope: str | None = None) -> dict:
    return bearer(hs256(claims(sub=customer_id, **({"scope": scope} if scope else {}))))


def refused(message: str) -> dict:
    return {"success": False, "errorMessage": message, "refund": None}


@pytest.fixture
def hs_client(make_client, config, database, sandbox, events):
    return make_client(config, auth_hs256_secret=HS256_SECRET)


@pytest.fixture
def payment(hs_client, sandbox) -> dict:
    """A payment the example customer took with their own token."""
    paid = hs_client.pay(payment_body(new_order(sandbox)), headers=token())
    assert paid.status == 200, paid.body
    return paid.body["payment"]


def nothing_refunded(database, sandbox, calls: list[str]) -> bool:
    return (database.rows("refunds") == [] and database.rows("simulator_refunds") == []
            and sandbox.calls() == calls)


def test_a_customers_own_token_without_the_scope_is_403_and_nothing_is_called_or_written(
        hs_client, payment, database, sandbox, events):
    calls, outbox = sandbox.calls(), database.outbox_once_sent()
    for headers in (token(), token(scope="payments:read-all"), token(scope="payments:refunds")):
        reply = hs_client.refund(payment["id"], {"amount": Decimal("10.00")}, key="k", headers=headers)
        assert (reply.status, reply.body) == (403, refused(NO_SCOPE))
    # Refused before anything is read: an unknown payment and a bad body get the same answer.
    assert hs_client.refund(str(uuid.uuid4()), b"not json", key="k", headers=token()).status == 403
    assert nothing_refunded(database, sandbox, calls) and database.rows("outbox") == outbox
    assert events.read("payment-refunded") == events.read("payment-refund-failed") == []


def test_the_refund_scope_refunds_the_payments_the_token_may_read(hs_client, payment, database, sandbox):
    own = hs_client.refund(payment["id"], {"amount": Decimal("10.00")}, key="own",
                           headers=token(scope="payments:refund"))
    assert own.status == 200 and own.body["refund"]["amount"] == Decimal("10.00")
    # Another customer's token, scope or not, does not learn the payment exists.
    calls = sandbox.calls()
    other = hs_client.refund(payment["id"], {"amount": Decimal("10.00")}, key="other",
                             headers=token(OTHER_CUSTOMER, scope="payments:refund"))
    assert (other.status, other.body) == (404, refused("Payment not found"))
    # The platform's own token: every payment readable, and the refund scope.
    ops = hs_client.refund(payment["id"], {}, key="ops",
                           headers=token(str(uuid.uuid4()), scope="payments:read-all payments:refund"))
    assert ops.status == 200 and ops.body["refund"]["amount"] == Decimal("140.00")
    assert [r["idempotency_key"] for r in database.refunds(payment["id"])] == ["own", "ops"]
    assert sandbox.calls() == calls


def test_reading_refunds_follows_the_payments_read_rules(hs_client, payment, sandbox):
    made = hs_client.refund(payment["id"], {}, key="all", headers=token(scope="payments:refund")).body["refund"]
    base = f"/payments/{payment['id']}/refunds"
    for headers in (token(), token(str(uuid.uuid4()), scope="payments:read-all")):
        listed = hs_client.get(base, headers=headers, schema=LIST)
        one = hs_client.get(f"{base}/{made['id']}", headers=headers, schema=LOOKUP)
        assert (listed.status, listed.body["refunds"]) == (200, [made])
        assert (one.status, one.body["refund"]) == (200, made)
    # Another customer: the payment and its refunds are not found; no token: 401.
    for path in (base, f"{base}/{made['id']}"):
        stranger = hs_client.get(path, headers=token(OTHER_CUSTOMER, scope="payments:refund"),
                                 error_schema=REFUND_ERRORS)
        assert (stranger.status, stranger.body) == (404, refused("Payment not found"))
        anonymous = hs_client.get(path, error_schema=REFUND_ERRORS)
        assert (anonymous.status, anonymous.body) == (401, refused("Unauthorized: a bearer token is required"))
        assert anonymous.headers["WWW-Authenticate"] == "Bearer"
    assert hs_client.refund(payment["id"], {}, key="x").body == refused("Unauthorized: a bearer token is required")


def test_the_refund_scope_is_the_configured_one(make_client, config, payment, database):
    client = make_client(config, auth_hs256_secret=HS256_SECRET, auth_refund_scope="backoffice:refund")
    refused_default = client.refund(payment["id"], {}, key="a", headers=token(scope="payments:refund"))
    assert (refused_default.status, refused_default.body) == (
        403, refused("Forbidden: refunding needs a token with the backoffice:refund scope"))
    assert client.refund(payment["id"], {}, key="b", headers=token(scope="backoffice:refund")).status == 200
    assert len(database.refunds(payment["id"])) == 1
