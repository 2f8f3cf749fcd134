"""Each default is written once, on its Config field: the environment without
a variable gives the field's default, the tables of docs/configuration.md say
the same, and the configuration needs no adapter to know it."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from payment.config import DEFAULT_ORDERING_SERVICE_URL, Config

ROOT = Path(__file__).resolve().parents[2]
REQUIRED = {"DATABASE_URL": "postgresql://postgres@127.0.0.1:5432/test", "KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:9092"}

# Documented variable -> Config field, for every documented default that is a value.
FIELDS = {
    "PORT": "port", "ASPNETCORE_URLS": "port",
    "KAFKA_TOPIC_CREATE": "kafka_topic_create",
    "KAFKA_TOPIC_PARTITIONS": "kafka_topic_partitions",
    "KAFKA_TOPIC_REPLICATION_FACTOR": "kafka_topic_replication_factor",
    "UPSTREAM_CONNECT_TIMEOUT_S": "upstream_connect_timeout", "UPSTREAM_READ_TIMEOUT_S": "upstream_read_timeout",
    "UPSTREAM_DEADLINE_S": "upstream_deadline", "UPSTREAM_MAX_RESPONSE_BYTES": "upstream_max_response_bytes",
    "DB_POOL_MIN": "db_pool_min", "DB_POOL_MAX": "db_pool_max", "DB_TIMEOUT_S": "db_timeout",
    "DB_ROUTE": "db_route",
    "KAFKA_DELIVERY_TIMEOUT_S": "kafka_delivery_timeout", "KAFKA_MESSAGE_TIMEOUT_S": "kafka_message_timeout",
    "KAFKA_TOPIC_PAYMENT_SUCCEEDED": "topic_succeeded", "KAFKA_TOPIC_PAYMENT_FAILED": "topic_failed",
    "KAFKA_TOPIC_PAYMENT_REFUNDED": "topic_refunded", "KAFKA_TOPIC_PAYMENT_REFUND_FAILED": "topic_refund_failed",
    "SIMULATOR_LATENCY_MS": "simulator_latency_ms",
    "SIMULATOR_DELAY_BEFORE_CHARGE_MS": "simulator_delay_before_charge_ms",
    "PAYMENT_GATEWAY": "payment_gateway", "STRIPE_API_BASE": "stripe_api_base",
    "STRIPE_PAYMENT_METHOD": "stripe_payment_method", "STRIPE_WEBHOOK_SECRET": "stripe_webhook_secrets",
    "GATEWAY_TIMEOUT_S": "gateway_timeout",
    "OUTBOX_RELAY_INTERVAL_S": "relay_interval", "OUTBOX_RELAY_MAX_BACKOFF_S": "relay_max_backoff",
    "OUTBOX_RELAY_BATCH_SIZE": "relay_batch_size", "OUTBOX_RETENTION_S": "outbox_retention",
    "PENDING_TIMEOUT_S": "pending_timeout", "RECONCILE_MAX_BACKOFF_S": "reconcile_max_backoff",
    "GUNICORN_THREADS": "worker_threads",
    "HTTP_HEADER_TIMEOUT_S": "http_header_timeout", "HTTP_BODY_TIMEOUT_S": "http_body_timeout",
    "MIGRATE_ON_START": "migrate_on_start",
    "AUTH_SERVICE_SCOPE": "auth_service_scope", "AUTH_REFUND_SCOPE": "auth_refund_scope",
    "AUTH_LEEWAY_S": "auth_leeway",
    "AUTH_JWKS_TIMEOUT_S": "auth_jwks_timeout", "AUTH_JWKS_CACHE_S": "auth_jwks_cache",
}


def documented_defaults() -> dict[str, list[str]]:
    """Every `| variable | default | meaning |` row of docs/configuration.md, by variable:
    rows naming several (`A`, `B`) give one default each; `A` or `B` share one.
    A variable in more than one table (the Stripe settings) has each of its rows."""
    defaults: dict[str, list[str]] = {}
    for line in (ROOT / "docs" / "configuration.md").read_text().splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) != 3 or not cells[0].startswith("`"):
            continue
        names = re.findall(r"`([A-Za-z_]+)`", cells[0])
        values = [cells[1]] if " or " in cells[0] else [v.strip() for v in cells[1].split(", ")]
        for name, value in zip(names, values * len(names) if len(values) == 1 else values):
            defaults.setdefault(name, []).append(re.sub(r" \(.*\)$", "", value).strip("`"))
    return defaults


def test_an_unset_variable_gives_the_fields_default():
    assert Config.from_env(REQUIRED) == Config(
        database_url=REQUIRED["DATABASE_URL"], kafka_bootstrap_servers=REQUIRED["KAFKA_BOOTSTRAP_SERVERS"],
        ordering_service_url=DEFAULT_ORDERING_SERVICE_URL, reservation_service_url=DEFAULT_ORDERING_SERVICE_URL)


@pytest.mark.parametrize("variable", sorted(FIELDS))
def test_the_docs_give_the_default_the_configuration_has(variable):
    actual = getattr(Config.from_env(REQUIRED), FIELDS[variable])
    for documented in documented_defaults()[variable]:
        if actual is None or actual == ():
            assert documented == "(none)"
        elif isinstance(actual, bool):
            assert documented == str(actual).lower()
        elif isinstance(actual, (int, float)):
            assert float(documented) == actual
        else:
            assert documented == actual


def test_the_relay_grace_is_past_the_message_timeout_unless_configured():
    assert Config.from_env(REQUIRED).outbox_relay_grace == Config.kafka_message_timeout + 5
    assert Config.from_env({**REQUIRED, "KAFKA_MESSAGE_TIMEOUT_S": "3"}).outbox_relay_grace == 8
    assert Config.from_env({**REQUIRED, "OUTBOX_RELAY_GRACE_S": "0.5"}).outbox_relay_grace == 0.5


def test_the_configuration_imports_no_adapter():
    adapters = ["payment.outbox.producer", "payment.outbox.marker", "payment.outbox.delivery", "payment.outbox.relay",
                "payment.db.pool", "payment.db.store", "payment.upstream.clients", "payment.upstream.httpclient",
                "payment.gateways.simulator", "payment.gateways.stripe_gateway", "psycopg_pool", "falcon"]
    loaded = subprocess.run(
        [sys.executable, "-c", "import sys, payment.config; print(' '.join(sorted(sys.modules)))"],
        cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    assert [name for name in adapters if name in loaded] == []
