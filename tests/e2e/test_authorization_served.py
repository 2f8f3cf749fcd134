"""Authorization in the running service (`python -m payment serve`, two
gunicorn workers): HS256 and RS256 tokens together, the JWKS served over
HTTP from this process, its cache lifespan, and neither the secret nor any
token in the log output."""

from __future__ import annotations

import uuid

import requests

from payment import jsonio
from tests.support import new_order, payment_body
from tests.timing import ceiling, eventually
from tests.tokens import HS256_SECRET, JwksServer, RsaKey, bearer, claims, hs256, unsigned

OTHER_CUSTOMER = "3f2b8c1d-9e4a-4b6c-8d7e-1a2b3c4d5e6f"
JWKS_CACHE_S = 2


def post(served, body, headers):
    return requests.post(f"{served.url}/payments", data=jsonio.dumps(body), timeout=15,
                         headers={"Content-Type": "application/json", **headers})


def get(served, path, headers=None, **params):
    return requests.get(f"{served.url}{path}", params=params, headers=headers or {}, timeout=15)


def refusing_workers(served) -> set[int]:
    """The workers that have logged their authorization keys unavailable."""
    return {record["pid"] for record in served.records()
            if record["message"].startswith("authorization keys unavailable")}


def test_tokens_under_gunicorn_and_nothing_secret_in_the_logs(serve, sandbox):
    key = RsaKey()
    jwks = JwksServer(key)
    try:
        served = serve(AUTH_JWT_HS256_SECRET=HS256_SECRET, AUTH_JWKS_URL=jwks.url,
                       AUTH_JWKS_TIMEOUT_S=1, AUTH_JWKS_CACHE_S=JWKS_CACHE_S)
        order_id = new_order(sandbox)
        sent_tokens = [key.sign(), hs256(), hs256(claims(sub=OTHER_CUSTOMER)),
                       hs256(claims(sub="reporting", scope="payments:read-all")),
                       hs256(claims(expires_in=-60)), unsigned()]
        customer_rs, customer_hs, other, service, expired, forged = map(bearer, sent_tokens)

        paid = post(served, payment_body(order_id), customer_rs)
        assert paid.status_code == 200, paid.text
        payment_id = paid.json()["payment"]["id"]

        # Both workers, both algorithms: each request may land on either.
        for _ in range(4):
            assert get(served, f"/payments/{payment_id}", customer_hs).status_code == 200
            assert get(served, f"/payments/{payment_id}", customer_rs).status_code == 200
            assert get(served, f"/payments/{payment_id}", other).status_code == 404
            assert get(served, f"/payments/{payment_id}", service).status_code == 200
        assert get(served, "/payments", other, orderId=order_id).json()["payments"] == []
        assert post(served, payment_body(new_order(sandbox)), other).status_code == 403

        missing = get(served, f"/payments/{payment_id}")
        assert (missing.status_code, missing.headers["WWW-Authenticate"]) == (401, "Bearer")
        for refused, message in ((expired, "token has expired"), (forged, "token algorithm is not accepted")):
            reply = get(served, "/payments", refused, orderId=order_id)
            assert reply.status_code == 401
            assert reply.json() == {"success": False, "errorMessage": f"Unauthorized: {message}", "payment": None}
        for path in ("/health/live", "/metrics", "/openapi.json"):
            assert get(served, path).status_code == 200

        # Keys are kept for AUTH_JWKS_CACHE_S; past that a JWKS that is down is a 503.
        jwks.stop()

        def every_worker_refuses() -> bool:
            get(served, f"/payments/{uuid.uuid4()}", customer_rs)  # to either worker
            return refusing_workers(served) >= set(served.worker_pids())

        # Each worker refuses once its keys are past AUTH_JWKS_CACHE_S (one
        # that never fetched them, at once); the requests reach both.
        eventually(every_worker_refuses, "every worker refusing RS256 once its keys expired",
                   timeout_s=ceiling(JWKS_CACHE_S) + 5)
        down = [get(served, f"/payments/{uuid.uuid4()}", customer_rs) for _ in range(4)]
        assert {reply.status_code for reply in down} == {503}
        assert down[0].json()["errorMessage"] == "Payment processing error: authorization keys are unavailable"
        # HS256 does not depend on the JWKS.
        assert get(served, f"/payments/{payment_id}", customer_hs).status_code == 200
    finally:
        jwks.stop()

    log = served.log()
    assert HS256_SECRET not in log
    for token in sent_tokens:
        signature = token.split(".")[2]
        assert token not in log and (not signature or signature not in log)
    records = served.records()
    refusals = [r for r in records if r.get("message", "").startswith("request not authenticated")]
    assert any("token has expired" in r["message"] for r in refusals)
    assert any(r.get("message") == "request" and r.get("status") == 401 for r in records)
    # The expired and the forged token, told apart on their access lines.
    kinds = {r["errorKind"] for r in records if r.get("message") == "request" and r.get("status") == 401}
    assert kinds == {"auth_missing", "auth_expired", "auth_invalid"}
    # The start-up line says authorization is on, and how; never the secret.
    [started] = [r for r in records if r["logger"] == "payment.startup"]
    assert started["authorization"] == "HS256 (shared secret), RS256 (JWKS)"
    assert (started["authorizationEnabled"], started["authorizationAlgorithms"]) == (True, ["HS256", "RS256"])
    assert started["authJwksUrl"] == jwks.url
