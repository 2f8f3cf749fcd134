"""The start-up line's fields (payment/startup.py) for each way authorization
can be set, never with a secret; and a start-up failure as one JSON line."""

from __future__ import annotations

import json

import pytest

from payment.config import Config
from payment.startup import fail, summary

BASE = {"DATABASE_URL": "postgresql://app:db-secret-1f2e@db:5432/ticketing", "KAFKA_BOOTSTRAP_SERVERS": "kafka:9092"}
SECRET = "hs256-startup-line-" + "0123456789abcdef0123456789abcdef"


@pytest.mark.parametrize("env, authorization, enabled, algorithms", [
    ({}, "off", False, []),
    ({"AUTH_JWT_HS256_SECRET": SECRET}, "HS256 (shared secret)", True, ["HS256"]),
    ({"AUTH_JWKS_URL": "https://issuer.example/jwks.json"}, "RS256 (JWKS)", True, ["RS256"]),
    ({"AUTH_JWT_HS256_SECRET": SECRET, "AUTH_JWKS_URL": "https://issuer.example/jwks.json"},
     "HS256 (shared secret), RS256 (JWKS)", True, ["HS256", "RS256"]),
])
def test_the_start_up_line_says_whether_and_how_tokens_are_checked(env, authorization, enabled, algorithms):
    fields = summary(Config.from_env({**BASE, **env, "DB_POOL_MIN": "2", "DB_POOL_MAX": "12",
                                      "KAFKA_TOPIC_PAYMENT_SUCCEEDED": "paid"}))
    assert (fields["authorization"], fields["authorizationEnabled"], fields["authorizationAlgorithms"]) == (
        authorization, enabled, algorithms)
    assert (fields["gateway"], fields["dbPoolMin"], fields["dbPoolMax"]) == ("simulator", 2, 12)
    assert fields["topics"] == ["paid", "payment-failed"]
    text = json.dumps(fields)
    assert SECRET not in text and "db-secret-1f2e" not in text and "password=***" in fields["database"]


def test_a_start_up_failure_is_one_json_line_and_an_exit(capsys):
    with pytest.raises(SystemExit) as exited:
        fail("configuration error: DB_POOL_MAX must be an integer")
    assert exited.value.code == 1
    out = capsys.readouterr()
    [line] = out.out.splitlines()
    record = json.loads(line)
    assert (record["level"], record["logger"], record["message"]) == (
        "ERROR", "payment.startup", "configuration error: DB_POOL_MAX must be an integer")
    assert out.err == ""
