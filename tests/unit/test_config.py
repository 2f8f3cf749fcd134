import re

import pytest

from payment.config import MARK_DELAY_S, Config, ConfigError, redact_conninfo

BASE = {
    "DATABASE_URL": "postgresql://postgres@127.0.0.1:5432/test",
    "KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:9092",
    "ORDERING_SERVICE_URL": "http://ordering:5002",
}


def test_documented_deployment_variables_are_accepted():
    config = Config.from_env({
        "ConnectionStrings__Default": "Host=postgres;Port=5432;Database=ticketing;Username=postgres;"
                                      "Password=postgres;SearchPath=bc_payment",
        "Kafka__BootstrapServers": "kafka:9092",
        "ASPNETCORE_URLS": "http://+:5004",
        "ORDERING_SERVICE_URL": "http://ordering:5002/",
    })
    assert config.port == 5004
    assert config.kafka_bootstrap_servers == "kafka:9092"
    assert config.ordering_service_url == "http://ordering:5002"
    assert config.reservation_service_url == "http://ordering:5002"
    for part in ("host=postgres", "port=5432", "dbname=ticketing", "user=postgres", "password=postgres"):
        assert part in config.database_url
    # Kept out of the conninfo (a pooler refuses startup options), set per transaction.
    assert config.db_search_path == "bc_payment"
    assert "options" not in config.database_url and "search_path" not in config.database_url


def test_defaults():
    config = Config.from_env(BASE)
    assert (config.port, config.topic_succeeded, config.topic_failed) == (5004, "payment-succeeded", "payment-failed")
    assert (config.topic_refunded, config.topic_refund_failed) == ("payment-refunded", "payment-refund-failed")
    assert config.topics == ["payment-succeeded", "payment-failed", "payment-refunded", "payment-refund-failed"]
    assert config.simulator_latency_ms == 0
    assert config.max_body_bytes == 64 * 1024
    assert (config.upstream_deadline, config.upstream_max_response_bytes) == (4.0, 1024 * 1024)


def test_upstream_limits_are_read():
    config = Config.from_env({**BASE, "UPSTREAM_DEADLINE_S": "1.5", "UPSTREAM_MAX_RESPONSE_BYTES": "65536"})
    assert (config.upstream_deadline, config.upstream_max_response_bytes) == (1.5, 65536)
    assert (config.http_header_timeout, config.http_body_timeout) == (10.0, 10.0)


def test_worker_threads_are_read_from_gunicorn_threads():
    assert Config.from_env(BASE).worker_threads == 8
    assert Config.from_env({**BASE, "GUNICORN_THREADS": "32"}).worker_threads == 32
    for bad in ("0", "many"):
        with pytest.raises(ConfigError, match="GUNICORN_THREADS"):
            Config.from_env({**BASE, "GUNICORN_THREADS": bad})


def test_slow_client_timeouts_from_the_environment():
    config = Config.from_env({**BASE, "HTTP_HEADER_TIMEOUT_S": "2.5", "HTTP_BODY_TIMEOUT_S": "30"})
    assert (config.http_header_timeout, config.http_body_timeout) == (2.5, 30.0)


@pytest.mark.parametrize("value, expected", [
    (None, True), ("", True), ("true", True), ("1", True), ("False", False), ("false", False), ("0", False),
    ("no", False),
])
def test_migrate_on_start_defaults_to_true(value, expected):
    env = BASE if value is None else {**BASE, "MIGRATE_ON_START": value}
    assert Config.from_env(env).migrate_on_start is expected


def test_port_variable_wins_over_aspnetcore_urls():
    assert Config.from_env({**BASE, "PORT": "8080", "ASPNETCORE_URLS": "http://+:5004"}).port == 8080


@pytest.mark.parametrize("change, message", [
    ({"DATABASE_URL": ""}, "DATABASE_URL or ConnectionStrings__Default must be set"),
    ({"DATABASE_URL": "", "ConnectionStrings__Default": "Host=x;Bogus=1"}, "unsupported key 'bogus'"),
    ({"DATABASE_URL": "", "ConnectionStrings__Default": "Port=5432"}, "has no Host"),
    ({"KAFKA_BOOTSTRAP_SERVERS": "kafka"}, "KAFKA_BOOTSTRAP_SERVERS must be a comma-separated list of host:port"),
    ({"ORDERING_SERVICE_URL": "ordering:5002"}, "ORDERING_SERVICE_URL must be an http"),
    ({"ASPNETCORE_URLS": "http://+:port"}, "ASPNETCORE_URLS must look like http://+:5004"),
    ({"PORT": "70000"}, "PORT is out of range"),
    ({"UPSTREAM_READ_TIMEOUT_S": "-1"}, "UPSTREAM_READ_TIMEOUT_S must be between"),
    ({"HTTP_HEADER_TIMEOUT_S": "0"}, "HTTP_HEADER_TIMEOUT_S must be between"),
    ({"HTTP_BODY_TIMEOUT_S": "soon"}, "HTTP_BODY_TIMEOUT_S must be a number of seconds"),
    ({"SIMULATOR_LATENCY_MS": "fast"}, "SIMULATOR_LATENCY_MS must be an integer"),
    ({"UPSTREAM_DEADLINE_S": "0"}, "UPSTREAM_DEADLINE_S must be between 0 and 60 seconds"),
    ({"UPSTREAM_DEADLINE_S": "soon"}, "UPSTREAM_DEADLINE_S must be a number of seconds"),
    ({"UPSTREAM_MAX_RESPONSE_BYTES": "1mb"}, "UPSTREAM_MAX_RESPONSE_BYTES must be an integer"),
    ({"UPSTREAM_MAX_RESPONSE_BYTES": "100"}, "UPSTREAM_MAX_RESPONSE_BYTES is out of range"),
    ({"KAFKA_TOPIC_PAYMENT_FAILED": "bad topic"}, "KAFKA_TOPIC_PAYMENT_FAILED is not a valid Kafka topic name"),
    ({"KAFKA_TOPIC_PAYMENT_REFUNDED": "bad/topic"}, "KAFKA_TOPIC_PAYMENT_REFUNDED is not a valid Kafka topic name"),
    ({"KAFKA_TOPIC_PAYMENT_REFUND_FAILED": "x" * 250},
     "KAFKA_TOPIC_PAYMENT_REFUND_FAILED is not a valid Kafka topic name"),
    ({"MIGRATE_ON_START": "sometimes"}, "MIGRATE_ON_START must be true or false"),
    ({"DB_ROUTE": "pgbouncer"}, "DB_ROUTE must be one of: direct, transaction-pooler"),
    ({"PAYMENT_GATEWAY": "paypal"}, "PAYMENT_GATEWAY must be one of: simulator, stripe"),
])
def test_bad_values_name_the_variable(change, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        Config.from_env({**BASE, **change})


def test_password_never_in_the_error_or_the_redacted_url():
    with pytest.raises(ConfigError) as raised:
        Config.from_env({**BASE, "DATABASE_URL": "", "ConnectionStrings__Default": "Password=hunter2;Bogus"})
    assert "hunter2" not in str(raised.value)
    assert "hunter2" not in redact_conninfo("postgresql://u:hunter2@db/x")
    assert "***" in redact_conninfo("postgresql://u:hunter2@db/x")


def test_the_documented_deployment_needs_no_other_variable():
    config = Config.from_env({
        "ConnectionStrings__Default": "Host=postgres;Port=5432;Database=ticketing;Username=postgres;"
                                      "Password=postgres;SearchPath=bc_payment",
        "Kafka__BootstrapServers": "kafka:9092",
        "ASPNETCORE_URLS": "http://+:5004",
    })
    assert config.ordering_service_url == "http://ordering:5002"
    assert config.reservation_service_url == "http://ordering:5002"


def test_relay_batch_size_is_read_and_bounded():
    assert Config.from_env(BASE).relay_batch_size == 200
    assert Config.from_env({**BASE, "OUTBOX_RELAY_BATCH_SIZE": "25"}).relay_batch_size == 25
    for bad in ("0", "10001", "many"):
        with pytest.raises(ConfigError, match="OUTBOX_RELAY_BATCH_SIZE"):
            Config.from_env({**BASE, "OUTBOX_RELAY_BATCH_SIZE": bad})


def test_relay_grace_must_exceed_the_markers_delay():
    # A relay claiming events the marker is about to mark would send them twice.
    assert Config.from_env(BASE).relay_grace is None  # the default: message timeout plus 5 s
    assert Config.from_env({**BASE, "OUTBOX_RELAY_GRACE_S": "0.1"}).relay_grace == 0.1
    for too_short in (str(MARK_DELAY_S), "0.01"):
        with pytest.raises(ConfigError, match="OUTBOX_RELAY_GRACE_S must be above 0.05 seconds"):
            Config.from_env({**BASE, "OUTBOX_RELAY_GRACE_S": too_short})
