"""The service started as a production deployment configures it: an Npgsql
connection string with pooling, TLS, timeouts and keys that mean nothing
here, and Kafka client settings in the .NET style, secrets included."""

from __future__ import annotations

import requests
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from payment import jsonio
from tests.e2e.test_operations import scrape
from tests.support import new_order, payment_body
from tests.tokens import HS256_SECRET, OTHER_SECRET, bearer, hs256

DB_CANARY = "canary-db-pw-5e1d"
KAFKA_CANARY = "canary-kafka-pw-9b2c"


def production_connection_string(database_url: str) -> str:
    params = conninfo_to_dict(database_url)
    # The test server trusts local connections: the password is sent and
    # ignored, so it can only show up in the output if the service printed it.
    return (f"Host={params.get('host', '127.0.0.1')};Port={params.get('port', '5432')};"
            f"Database={params['dbname']};Username={params.get('user', 'postgres')};Password={DB_CANARY};"
            "SearchPath=bc_payment;Pooling=true;Minimum Pool Size=1;Maximum Pool Size=50;Timeout=5;"
            "Command Timeout=2;SSL Mode=Prefer;Trust Server Certificate=true;Include Error Detail=true;"
            "Application Name=payment;Keepalive=30;Enlist=false")


def test_a_production_connection_string_and_kafka_settings_start_the_service(serve, service_env, sandbox):
    env = {**service_env, "DATABASE_URL": "",
           "ConnectionStrings__Default": production_connection_string(service_env["DATABASE_URL"]),
           # Explicit client settings against the test broker, a secret among them.
           "Kafka__SecurityProtocol": "Plaintext", "Kafka__SaslPassword": KAFKA_CANARY,
           "Kafka__ClientId": "payment-e2e", "KAFKA_SOCKET_KEEPALIVE_ENABLE": "true", "LOG_LEVEL": "DEBUG"}
    served = serve(env, workers=1)

    ready = requests.get(f"{served.url}/health/ready", timeout=10)
    assert ready.json() == {"status": "ready", "checks": {"database": "ok", "broker": "ok"}}
    order_id = new_order(sandbox)
    reply = served.post(payment_body(order_id))
    assert reply.status_code == 200, reply.text
    assert scrape(served)[("payment_db_pool_max_connections", ())] == 50
    assert served.stop() == 0

    records = served.records()
    [ignored] = [r for r in records if r["message"].startswith("ConnectionStrings__Default keys accepted and ignored")]
    assert ignored["ignoredKeys"] == ["Include Error Detail", "Enlist"]
    [migrated] = [r for r in records if r["message"] == "schema applied; topics ready"]
    assert migrated["kafkaSettings"] == ["client.id", "sasl.password", "security.protocol", "socket.keepalive.enable"]
    assert "password=***" in migrated["database"]
    # LOG_LEVEL=DEBUG: every line the service can write at start-up and per request.
    for canary in (DB_CANARY, KAFKA_CANARY):
        assert not any(canary in line for line in served.lines()), canary


def test_secrets_from_files_start_the_service(serve, service_env, sandbox, tmp_path):
    """The database URL, a token secret and a Kafka password each from a
    file, as Docker secrets give them (`/run/secrets/...`, a final newline):
    the master, the migrate step and the workers all read them."""
    url = make_conninfo(**{**conninfo_to_dict(service_env["DATABASE_URL"]), "password": DB_CANARY})
    files = {"DATABASE_URL_FILE": url + "\n", "AUTH_JWT_HS256_SECRET_FILE": HS256_SECRET + "\n",
             "Kafka__SaslPassword_FILE": KAFKA_CANARY + "\r\n"}
    for name, content in files.items():
        (tmp_path / name).write_text(content, newline="")
    env = {**service_env, "DATABASE_URL": "", **{name: str(tmp_path / name) for name in files}}
    served = serve(env, workers=1)

    assert requests.get(f"{served.url}/health/ready", timeout=10).status_code == 200
    order_id = new_order(sandbox)
    reply = requests.post(f"{served.url}/payments", data=jsonio.dumps(payment_body(order_id)), timeout=15,
                          headers={"Content-Type": "application/json", **bearer(hs256())})
    assert reply.status_code == 200, reply.text
    assert requests.post(f"{served.url}/payments", data=jsonio.dumps(payment_body(order_id)), timeout=15,
                         headers={"Content-Type": "application/json", **bearer(hs256(secret=OTHER_SECRET))}
                         ).status_code == 401
    assert served.stop() == 0

    records = served.records()
    [started] = [r for r in records if r["logger"] == "payment.startup"]
    assert started["authorization"] == "HS256 (shared secret)"
    assert "password=***" in started["database"]
    [migrated] = [r for r in records if r["message"] == "schema applied; topics ready"]
    assert "sasl.password" in migrated["kafkaSettings"]
    for secret in (DB_CANARY, KAFKA_CANARY, HS256_SECRET):
        assert not any(secret in line for line in served.lines()), secret
