"""librdkafka settings from Kafka__* and KAFKA_*: the name mapping, the
.NET enum values, the refused properties, librdkafka's own validation, the
topic settings, and no secret in a message or a repr."""

from __future__ import annotations

import re

import pytest

from payment.config import Config, ConfigError
from payment.outbox.kafka_settings import KafkaSettingsError, dotnet_property, from_env, redacted, validate
from payment.outbox.producer import admin_config, producer_config

BASE = {
    "DATABASE_URL": "postgresql://postgres@127.0.0.1:5432/test",
    "KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:9092",
    "ORDERING_SERVICE_URL": "http://ordering:5002",
}
SECRET = "s3cr3t-kafka-pw"


def settings(**env) -> dict:
    return from_env(env)[0]


@pytest.mark.parametrize("suffix, name", [
    ("SecurityProtocol", "security.protocol"), ("SaslMechanism", "sasl.mechanism"),
    ("SaslUsername", "sasl.username"), ("SaslPassword", "sasl.password"), ("SslCaLocation", "ssl.ca.location"),
    ("SslEndpointIdentificationAlgorithm", "ssl.endpoint.identification.algorithm"),
    ("SaslOauthbearerClientSecret", "sasl.oauthbearer.client.secret"), ("SslKeystorePassword", "ssl.keystore.password"),
    ("EnableSslCertificateVerification", "enable.ssl.certificate.verification"), ("ClientId", "client.id"),
    ("SSLCaLocation", "ssl.ca.location"),
])
def test_dotnet_names_map_mechanically(suffix, name):
    assert dotnet_property(suffix) == name
    assert settings(**{f"Kafka__{suffix}": "v"}) == {name: "v"}


@pytest.mark.parametrize("variable, name", [
    ("KAFKA_SSL_ENDPOINT_IDENTIFICATION_ALGORITHM", "ssl.endpoint.identification.algorithm"),
    ("KAFKA_SECURITY_PROTOCOL", "security.protocol"), ("KAFKA_SASL_PASSWORD", "sasl.password"),
    ("KAFKA_SOCKET_KEEPALIVE_ENABLE", "socket.keepalive.enable"),
])
def test_kafka_variables_map_to_dotted_names(variable, name):
    assert settings(**{variable: "v"}) == {name: "v"}


@pytest.mark.parametrize("variable, value, expected", [
    ("Kafka__SecurityProtocol", "SaslSsl", "sasl_ssl"), ("Kafka__SecurityProtocol", "SaslPlaintext", "sasl_plaintext"),
    ("Kafka__SecurityProtocol", "PLAINTEXT", "plaintext"), ("KAFKA_SECURITY_PROTOCOL", "SASL_SSL", "sasl_ssl"),
    ("Kafka__SaslMechanism", "ScramSha512", "SCRAM-SHA-512"), ("Kafka__SaslMechanism", "Plain", "PLAIN"),
    ("Kafka__SaslMechanism", "SCRAM-SHA-256", "SCRAM-SHA-256"), ("Kafka__SaslMechanism", "OAuthBearer", "OAUTHBEARER"),
    ("Kafka__SslEndpointIdentificationAlgorithm", "None", "none"),
    ("Kafka__SaslOauthbearerMethod", "Oidc", "oidc"),
])
def test_dotnet_enum_values_become_librdkafka_values(variable, value, expected):
    assert list(settings(**{variable: value}).values()) == [expected]


def test_the_services_own_variables_are_not_client_properties():
    assert settings(KAFKA_BOOTSTRAP_SERVERS="a:1", Kafka__BootstrapServers="a:1", KAFKA_DELIVERY_TIMEOUT_S="2",
                    KAFKA_MESSAGE_TIMEOUT_S="10", KAFKA_TOPIC_PAYMENT_SUCCEEDED="x", KAFKA_TOPIC_PAYMENT_FAILED="y",
                    KAFKA_TOPIC_PAYMENT_REFUNDED="r", KAFKA_TOPIC_PAYMENT_REFUND_FAILED="f",
                    KAFKA_TOPIC_CREATE="false", KAFKA_TOPIC_PARTITIONS="3",
                    KAFKA_TOPIC_REPLICATION_FACTOR="3", PATH="/bin") == {}


def test_the_kafka_spelling_wins_over_the_dotnet_one():
    assert settings(Kafka__SaslUsername="dotnet", KAFKA_SASL_USERNAME="env") == {"sasl.username": "env"}


@pytest.mark.parametrize("variable", [
    "Kafka__EnableIdempotence", "Kafka__Acks", "Kafka__MaxInFlight", "KAFKA_MAX_IN_FLIGHT_REQUESTS_PER_CONNECTION",
    "Kafka__MessageTimeoutMs", "KAFKA_DELIVERY_TIMEOUT_MS", "KAFKA_LINGER_MS", "KAFKA_TRANSACTIONAL_ID",
    "KAFKA_METADATA_BROKER_LIST", "KAFKA_REQUEST_REQUIRED_ACKS",
])
def test_the_services_guarantees_cannot_be_overridden(variable):
    with pytest.raises(KafkaSettingsError, match=re.escape(variable) + " sets .*, which is set by"):
        from_env({variable: "1"})


def test_the_service_settings_come_last_in_the_producer_config():
    config = producer_config("b:1", 10, {"security.protocol": "sasl_ssl", "sasl.password": SECRET})
    assert config["security.protocol"] == "sasl_ssl" and config["sasl.password"] == SECRET
    assert (config["acks"], config["enable.idempotence"], config["max.in.flight.requests.per.connection"]) == (
        "all", False, 1)
    assert config["bootstrap.servers"] == "b:1"


def test_sasl_and_tls_settings_reach_the_producer_and_the_admin_client():
    config = Config.from_env({**BASE, "Kafka__SecurityProtocol": "SaslSsl", "Kafka__SaslMechanism": "ScramSha512",
                              "Kafka__SaslUsername": "payments", "Kafka__SaslPassword": SECRET,
                              "KAFKA_SSL_ENDPOINT_IDENTIFICATION_ALGORITHM": "https"})
    expected = {"security.protocol": "sasl_ssl", "sasl.mechanism": "SCRAM-SHA-512", "sasl.username": "payments",
                "sasl.password": SECRET, "ssl.endpoint.identification.algorithm": "https"}
    for built in (producer_config(config.kafka_bootstrap_servers, 10, config.kafka_settings),
                  admin_config(config.kafka_bootstrap_servers, config.kafka_settings)):
        assert expected.items() <= built.items()


@pytest.mark.parametrize("env, variable", [
    ({"KAFKA_SECURITY_PROTOCOL": "SASL_SSLX"}, "KAFKA_SECURITY_PROTOCOL"),
    ({"Kafka__SaslMechanismz": "PLAIN"}, "Kafka__SaslMechanismz"),
    ({"KAFKA_SECURITY_PROTOCOL": "ssl", "KAFKA_SSL_CA_LOCATION": "/nonexistent/ca.pem"}, "KAFKA_SSL_CA_LOCATION"),
    ({"KAFKA_SOCKET_TIMEOUT_MS": "soon"}, "KAFKA_SOCKET_TIMEOUT_MS"),
])
def test_librdkafka_judges_the_settings_and_the_error_names_the_variable(env, variable):
    with pytest.raises(ConfigError) as raised:
        Config.from_env({**BASE, **env})
    assert str(raised.value).startswith(variable + ":")
    assert "SASL_SSLX" not in str(raised.value) and "soon" not in str(raised.value)


def test_a_bad_setting_beside_a_secret_never_shows_the_secret():
    with pytest.raises(ConfigError) as raised:
        Config.from_env({**BASE, "KAFKA_SASL_PASSWORD": SECRET, "KAFKA_SASL_MECHANISM": SECRET,
                         "KAFKA_SECURITY_PROTOCOL": SECRET})
    assert SECRET not in str(raised.value)


def test_valid_settings_pass_librdkafka():
    validate({"security.protocol": "sasl_plaintext", "sasl.mechanism": "PLAIN", "sasl.username": "u",
              "sasl.password": SECRET}, {})


def test_secrets_stay_out_of_the_repr_and_the_redacted_view():
    config = Config.from_env({**BASE, "Kafka__SaslPassword": SECRET, "KAFKA_SSL_KEY_PASSWORD": SECRET,
                              "Kafka__SaslOauthbearerClientSecret": SECRET, "KAFKA_SSL_KEYSTORE_PASSWORD": SECRET,
                              "KAFKA_SASL_USERNAME": "payments"})
    assert SECRET not in repr(config)
    shown = config.redacted_kafka_settings()
    assert SECRET not in repr(shown) and shown["sasl.username"] == "payments"
    assert set(shown) == {"sasl.password", "ssl.key.password", "sasl.oauthbearer.client.secret",
                          "ssl.keystore.password", "sasl.username"}
    assert redacted({"ssl.key.pem": "-----BEGIN"}) == {"ssl.key.pem": "***"}


def test_topic_defaults_ask_the_broker():
    config = Config.from_env(BASE)
    assert (config.kafka_topic_create, config.kafka_topic_partitions, config.kafka_topic_replication_factor) == (
        True, -1, -1)
    assert config.kafka_settings == {}


def test_topic_settings_are_read():
    config = Config.from_env({**BASE, "KAFKA_TOPIC_CREATE": "false", "KAFKA_TOPIC_PARTITIONS": "6",
                              "KAFKA_TOPIC_REPLICATION_FACTOR": "3"})
    assert (config.kafka_topic_create, config.kafka_topic_partitions, config.kafka_topic_replication_factor) == (
        False, 6, 3)


@pytest.mark.parametrize("change, message", [
    ({"KAFKA_TOPIC_CREATE": "maybe"}, "KAFKA_TOPIC_CREATE must be true or false"),
    ({"KAFKA_TOPIC_PARTITIONS": "0"}, "must be -1 (the broker's default) or at least 1"),
    ({"KAFKA_TOPIC_REPLICATION_FACTOR": "-2"}, "KAFKA_TOPIC_REPLICATION_FACTOR is out of range"),
    ({"KAFKA_TOPIC_REPLICATION_FACTOR": "three"}, "KAFKA_TOPIC_REPLICATION_FACTOR must be an integer"),
    ({"KAFKA_NOT_A_PROPERTY_AT_ALL": "1"}, "KAFKA_NOT_A_PROPERTY_AT_ALL: not accepted by librdkafka"),
    ({"Kafka__": "1"}, "Kafka__ does not name a Kafka client property"),
])
def test_bad_kafka_values_name_the_variable(change, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        Config.from_env({**BASE, **change})


def test_librdkafkas_own_configuration_dump_redacts_the_secrets():
    """With KAFKA_DEBUG=conf librdkafka logs every property (through the
    `librdkafka` logger, which the service keeps at ERROR): the secrets
    show as [redacted]. No broker is needed to build a producer."""
    import logging

    from confluent_kafka import Producer

    lines: list[str] = []
    capture = logging.getLogger("tests.librdkafka-capture")
    capture.propagate = False
    capture.setLevel(logging.DEBUG)
    handler = logging.Handler()
    handler.emit = lambda record: lines.append(record.getMessage())
    capture.addHandler(handler)
    config = producer_config("127.0.0.1:1", 10, {
        **settings(Kafka__SecurityProtocol="SaslPlaintext", Kafka__SaslMechanism="Plain",
                   Kafka__SaslUsername="payments", Kafka__SaslPassword=SECRET, KAFKA_DEBUG="conf")})
    producer = Producer({**config, "logger": capture})
    producer.poll(0.5)
    producer.flush(0)
    assert any("sasl.password = [redacted]" in line for line in lines)
    assert not any(SECRET in line for line in lines)
