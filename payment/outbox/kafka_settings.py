"""librdkafka settings from the environment, for the producer and the admin
client alike: TLS, SASL and the rest of a production cluster's needs.

Two spellings, as operators write them:

- the Confluent .NET client's, `Kafka__SecurityProtocol=SaslSsl`: the
  property name maps mechanically from PascalCase to dotted lower case
  (`SslCaLocation` -> `ssl.ca.location`), and the .NET enum names of a few
  properties (`SaslSsl`, `ScramSha512`, ...) become librdkafka's values;
- `KAFKA_SSL_ENDPOINT_IDENTIFICATION_ALGORITHM=https`: lower case, `_` -> `.`.
  The service's own `KAFKA_*` variables are not client properties.

Both spell one property: the `KAFKA_*` one wins, as KAFKA_BOOTSTRAP_SERVERS
wins over Kafka__BootstrapServers. The properties the service's guarantees
rest on are refused (PROTECTED), and secret values never reach a message,
a log line or a repr.
"""

from __future__ import annotations

import logging
import re

from confluent_kafka import KafkaException, Producer

# The service's own KAFKA_* variables (payment/config.py), not client properties.
SERVICE_VARIABLES = frozenset({
    "KAFKA_BOOTSTRAP_SERVERS", "KAFKA_DELIVERY_TIMEOUT_S", "KAFKA_MESSAGE_TIMEOUT_S",
    "KAFKA_TOPIC_PAYMENT_SUCCEEDED", "KAFKA_TOPIC_PAYMENT_FAILED", "KAFKA_TOPIC_PAYMENT_REFUNDED",
    "KAFKA_TOPIC_PAYMENT_REFUND_FAILED", "KAFKA_TOPIC_CREATE",
    "KAFKA_TOPIC_PARTITIONS", "KAFKA_TOPIC_REPLICATION_FACTOR",
})
SERVICE_DOTNET_VARIABLES = frozenset({"Kafka__BootstrapServers"})

# KIP-464: -1 asks the broker for its own default (num.partitions,
# default.replication.factor), so a production cluster's policy applies
# unless the operator names a number.
BROKER_DEFAULT = -1

# Properties the service sets itself, with what governs them instead. Events
# leave in order and survive a broker's loss because of them (producer.py).
PROTECTED = {
    "bootstrap.servers": "KAFKA_BOOTSTRAP_SERVERS",
    "metadata.broker.list": "KAFKA_BOOTSTRAP_SERVERS",
    "acks": "the service (all: every in-sync replica)",
    "request.required.acks": "the service (all: every in-sync replica)",
    "enable.idempotence": "the service (see docs/architecture.md, Choices)",
    "enable.gapless.guarantee": "the service (see docs/architecture.md, Choices)",
    "max.in.flight": "the service (one request in flight keeps retries in order)",
    "max.in.flight.requests.per.connection": "the service (one request in flight keeps retries in order)",
    "message.timeout.ms": "KAFKA_MESSAGE_TIMEOUT_S",
    "delivery.timeout.ms": "KAFKA_MESSAGE_TIMEOUT_S",
    "linger.ms": "the service (a request waits for its event)",
    "queue.buffering.max.ms": "the service (a request waits for its event)",
    "transactional.id": "the service (events leave through the outbox, not Kafka transactions)",
}

# Values never shown: in messages, log lines or the configuration's repr.
_SECRET_WORDS = ("password", "secret")
_SECRET_PROPERTIES = frozenset({"ssl.key.pem", "sasl.oauthbearer.config", "ssl_key"})

# The .NET client's enum names -> librdkafka's values.
_DOTNET_VALUES = {
    "security.protocol": {"plaintext": "plaintext", "ssl": "ssl", "saslplaintext": "sasl_plaintext",
                          "saslssl": "sasl_ssl"},
    "sasl.mechanism": {"gssapi": "GSSAPI", "plain": "PLAIN", "scramsha256": "SCRAM-SHA-256",
                       "scramsha512": "SCRAM-SHA-512", "oauthbearer": "OAUTHBEARER"},
    "sasl.mechanisms": {"gssapi": "GSSAPI", "plain": "PLAIN", "scramsha256": "SCRAM-SHA-256",
                        "scramsha512": "SCRAM-SHA-512", "oauthbearer": "OAUTHBEARER"},
    "ssl.endpoint.identification.algorithm": {"none": "none", "https": "https"},
    "sasl.oauthbearer.method": {"default": "default", "oidc": "oidc"},
}


class KafkaSettingsError(ValueError):
    """A client setting the service cannot take; the message names the variable."""


def is_secret(name: str) -> bool:
    return any(word in name for word in _SECRET_WORDS) or name in _SECRET_PROPERTIES


def redacted(settings: dict[str, str]) -> dict[str, str]:
    return {name: "***" if is_secret(name) else value for name, value in settings.items()}


def dotnet_property(suffix: str) -> str:
    """`SaslOauthbearerClientSecret` -> `sasl.oauthbearer.client.secret`."""
    return ".".join(word.lower() for word in re.findall(r"[A-Z]+(?![a-z])|[A-Z][a-z0-9]*|[a-z0-9]+", suffix))


def property_of(variable: str) -> str | None:
    """The client property a variable sets, in either spelling; None for
    any other variable, the service's own KAFKA_* among them."""
    if variable.startswith("Kafka__") and variable not in SERVICE_DOTNET_VARIABLES:
        return dotnet_property(variable[len("Kafka__"):])
    if variable.startswith("KAFKA_") and variable not in SERVICE_VARIABLES:
        return variable[len("KAFKA_"):].lower().replace("_", ".")
    return None


def is_secret_variable(variable: str) -> bool:
    """Whether the variable sets a property that holds a secret
    (`KAFKA_SASL_PASSWORD`, `Kafka__SaslPassword`)."""
    name = property_of(variable)
    return name is not None and is_secret(name)


def from_env(env: dict[str, str]) -> tuple[dict[str, str], dict[str, str]]:
    """(librdkafka property -> value, property -> the variable it came from)."""
    settings: dict[str, str] = {}
    sources: dict[str, str] = {}
    for variable, value in sorted(env.items()):
        name = property_of(variable)
        if name is None:
            continue
        if not re.fullmatch(r"[a-z0-9]+(\.[a-z0-9]+)*", name):
            raise KafkaSettingsError(f"{variable} does not name a Kafka client property")
        if name in PROTECTED:
            raise KafkaSettingsError(f"{variable} sets {name}, which is set by {PROTECTED[name]}")
        if value == "":
            continue
        if name in sources and variable.startswith("Kafka__"):
            continue  # the KAFKA_* spelling of the same property wins
        settings[name] = _dotnet_value(name, value)
        sources[name] = variable
    return settings, sources


def _dotnet_value(name: str, value: str) -> str:
    return _DOTNET_VALUES.get(name, {}).get(value.replace("_", "").replace("-", "").lower(), value)


def validate(settings: dict[str, str], sources: dict[str, str]) -> None:
    """Let librdkafka judge the settings by building a producer with them (it
    checks names, values and files such as ssl.ca.location, and connects to
    nothing until asked). Its message may quote a value, so it is never shown:
    the error names the variables instead."""
    if not settings:
        return
    try:
        producer = Producer({**settings, "log_level": 0, "logger": _quiet})
    except KafkaException as exc:
        text = exc.args[0].str() if exc.args and hasattr(exc.args[0], "str") else ""
        named = [sources[name] for name in settings if f'"{name}"' in text or f"{name} " in text
                 or text.endswith(name)]
        variables = ", ".join(named or sorted(sources.values()))
        raise KafkaSettingsError(f"{variables}: not accepted by librdkafka (unknown property, bad value "
                                 f"or unreadable file)") from None
    producer.flush(0)
    del producer


_quiet = logging.getLogger("payment.outbox.producer.validation")
_quiet.addHandler(logging.NullHandler())
_quiet.propagate = False
