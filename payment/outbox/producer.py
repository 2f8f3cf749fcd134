"""Kafka adapter: one producer per process (not librdkafka's idempotent
producer: see `producer_config`), and topic set-up.

Each publish gets a Future resolved by that message's own delivery report,
so a request waits for its event and nothing else (no global flush). A
daemon thread serves the delivery reports.
"""

from __future__ import annotations

import logging
import threading
from concurrent.futures import Future
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Message, Producer
from confluent_kafka.admin import AdminClient, NewTopic

from payment.model import OutboxEvent
from payment.outbox.kafka_settings import BROKER_DEFAULT

log = logging.getLogger(__name__)


class PublishFailed(Exception):
    pass


def producer_config(bootstrap_servers: str, message_timeout_s: float, settings: dict[str, str]) -> dict[str, Any]:
    """The producer's configuration: the operator's client settings (TLS,
    SASL, ...; payment/outbox/kafka_settings.py, which refuses the ones below),
    then the service's own, which nothing overrides."""
    return {
        # The operator's client.id wins: broker quotas and ACLs may key on it.
        "client.id": "payment-service",
        **settings,
        "bootstrap.servers": bootstrap_servers,
        "acks": "all",
        # Not the idempotent producer: a broker that comes back without its
        # producer state (a restarted single node) answers UNKNOWN_PRODUCER_ID
        # for ever and wedges it. Consumers drop repeats by eventId already,
        # and one request in flight per connection keeps retries in order.
        "enable.idempotence": False,
        "max.in.flight.requests.per.connection": 1,
        # No linger: the request is waiting for this message's delivery
        # report, so it leaves at once; messages produced while a request is
        # in flight still share the next one.
        "linger.ms": 0,
        # How long librdkafka keeps retrying one message before reporting it
        # failed. Past that the outbox relay owns the event (see relay.py).
        "message.timeout.ms": int(message_timeout_s * 1000),
        "socket.connection.setup.timeout.ms": 3000,
        "reconnect.backoff.max.ms": 2000,
        "logger": logging.getLogger("librdkafka"),
    }


class KafkaPublisher:
    """payment.ports.Publisher over confluent-kafka."""

    def __init__(self, bootstrap_servers: str, message_timeout_s: float, settings: dict[str, str]) -> None:
        config = producer_config(bootstrap_servers, message_timeout_s, settings)
        config["error_cb"] = self._on_error
        self.producer = Producer(config)
        # Set while librdkafka reports every broker down, cleared by the next
        # delivery: requests then skip waiting for a report that cannot come.
        self.brokers_down = threading.Event()
        self._stopping = threading.Event()
        self._poller = threading.Thread(target=self._serve_reports, name="kafka-delivery", daemon=True)
        self._poller.start()

    def _on_error(self, error: KafkaError) -> None:
        if error.code() == KafkaError._ALL_BROKERS_DOWN:
            if not self.brokers_down.is_set():
                log.warning("Kafka brokers unreachable; events wait in the outbox")
            self.brokers_down.set()

    def _serve_reports(self) -> None:
        while not self._stopping.is_set():
            self.producer.poll(0.1)

    def publish(self, event: OutboxEvent) -> Future[None]:
        future: Future[None] = Future()

        def on_delivery(err: KafkaError | None, _msg: Message) -> None:
            if err is None:
                self.brokers_down.clear()
                future.set_result(None)
            else:
                future.set_exception(PublishFailed(err.str()))

        try:
            self.producer.produce(
                event.topic,
                key=event.key.encode(),
                value=event.payload.encode(),
                headers=[
                    ("eventType", event.event_type.encode()),
                    ("eventId", str(event.event_id).encode()),
                    ("paymentId", str(event.payment_id).encode()),
                    ("contentType", b"application/json"),
                ],
                on_delivery=on_delivery,
            )
        except (BufferError, KafkaException) as exc:
            future.set_exception(PublishFailed(type(exc).__name__))
        return future

    def is_reachable(self, timeout: float = 1.0) -> bool:
        try:
            self.producer.list_topics(timeout=timeout)
            return True
        except KafkaException:
            return False

    def close(self, timeout: float = 10.0) -> int:
        """Deliver what is queued (bounded), then stop. Returns what is left."""
        left = self.producer.flush(timeout)
        self._stopping.set()
        self._poller.join(timeout=1)
        return left


def admin_config(bootstrap_servers: str, settings: dict[str, str] | None = None) -> dict[str, Any]:
    return {**(settings or {}), "bootstrap.servers": bootstrap_servers, "logger": logging.getLogger("librdkafka")}


def ensure_topics(bootstrap_servers: str, topics: list[str], timeout: float = 10.0, *,
                  partitions: int = BROKER_DEFAULT, replication_factor: int = BROKER_DEFAULT,
                  settings: dict[str, str] | None = None) -> None:
    """Create the topics that do not exist yet; an existing one is left as it is."""
    if replication_factor == 1:
        log.warning("creating topics with replication factor 1: losing one broker loses their events",
                    extra={"topics": topics})
    admin = AdminClient(admin_config(bootstrap_servers, settings))
    futures = admin.create_topics(
        [NewTopic(t, num_partitions=partitions, replication_factor=replication_factor) for t in topics],
        operation_timeout=timeout, request_timeout=timeout)
    for topic, future in futures.items():
        try:
            future.result(timeout)
        except KafkaException as exc:
            if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                raise


class TopicsMissing(Exception):
    pass


def check_topics(bootstrap_servers: str, topics: list[str], timeout: float = 10.0, *,
                 settings: dict[str, str] | None = None) -> None:
    """With topic creation off, the platform creates them: start only once they exist."""
    admin = AdminClient(admin_config(bootstrap_servers, settings))
    existing = admin.list_topics(timeout=timeout).topics
    missing = [t for t in topics if t not in existing]
    if missing:
        raise TopicsMissing(", ".join(missing))
