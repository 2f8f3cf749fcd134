"""Builds the service's collaborators from the configuration, and closes them.

Each gunicorn worker builds its own (after the fork): a pool, a producer and
threads do not survive a fork. `close` flushes the producer and closes the
pool when the worker exits.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import falcon

from payment import db, documents, service, upstream
from payment.api.app import create_app
from payment.api.auth import verifier_from
from payment.config import Config
from payment.delivery import Delivery
from payment.gateway import SimulatedGateway
from payment.kafka import KafkaPublisher, ensure_topics
from payment.metrics import Metrics
from payment.relay import OutboxRelay, grace_after

log = logging.getLogger(__name__)


@dataclass
class Runtime:
    app: falcon.App
    deps: service.Dependencies
    pool: object
    publisher: KafkaPublisher
    delivery: Delivery
    relay: OutboxRelay | None

    def close(self, timeout: float = 10.0) -> None:
        if self.relay:
            self.relay.stop()
        left = self.publisher.close(timeout=timeout)
        if left:
            log.warning("%d events left unconfirmed at shutdown; the outbox keeps them", left)
        self.delivery.close()
        self.pool.close()


def build(config: Config, *, start_relay: bool = True) -> Runtime:
    pool = db.open_pool(config.database_url, min_size=config.db_pool_min,
                        max_size=config.db_pool_max, timeout=config.db_timeout)
    store = db.PaymentStore(pool)
    metrics = Metrics(pool_stats=pool.get_stats, outbox_backlog=store.outbox_backlog)
    session = upstream.new_session(pool_size=config.db_pool_max)
    upstream_options = dict(connect_timeout=config.upstream_connect_timeout,
                            read_timeout=config.upstream_read_timeout, metrics=metrics)
    publisher = KafkaPublisher(config.kafka_bootstrap_servers, config.kafka_message_timeout)
    delivery = Delivery(store, publisher)
    deps = service.Dependencies(
        store=store,
        ordering=upstream.OrderingClient(config.ordering_service_url, session, **upstream_options),
        reservations=upstream.ReservationClient(config.reservation_service_url, session, **upstream_options),
        gateway=SimulatedGateway(config.simulator_latency_ms, config.simulator_ledger_path),
        delivery=delivery,
        topic_succeeded=config.topic_succeeded,
        topic_failed=config.topic_failed,
        delivery_timeout=config.kafka_delivery_timeout,
    )
    relay = make_relay(config, store, delivery).start() if start_relay else None
    app = create_app(deps, max_body_bytes=config.max_body_bytes, metrics=metrics, ready_checks={
        "database": store.ping,
        "broker": publisher.is_reachable,
    }, verifier=verifier_from(config))
    return Runtime(app=app, deps=deps, pool=pool, publisher=publisher, delivery=delivery, relay=relay)


def make_relay(config: Config, store, delivery: Delivery) -> OutboxRelay:
    return OutboxRelay(
        store, delivery,
        event_for=lambda payment: documents.outbox_event(
            payment, topic_succeeded=config.topic_succeeded, topic_failed=config.topic_failed),
        stranded_after_s=config.pending_timeout,
        interval_s=config.relay_interval,
        grace_s=config.relay_grace or grace_after(config.kafka_message_timeout),
        max_backoff_s=config.relay_max_backoff,
        retention_s=config.outbox_retention,
    )


class StartupError(RuntimeError):
    """A dependency could not be prepared at start-up; the message names it."""


def prepare(config: Config, wait_s: float = 30.0) -> None:
    """Once per deployment start, before any worker: the schema and the
    topics. Waits up to `wait_s` for each, as both may start alongside."""
    _retry(lambda: db.apply_schema(config.database_url), wait_s,
           "payment database is unreachable")
    _retry(lambda: ensure_topics(config.kafka_bootstrap_servers,
                                 [config.topic_succeeded, config.topic_failed]),
           wait_s, "Kafka broker is unreachable")


def _retry(step, wait_s: float, failure: str) -> None:
    deadline = time.monotonic() + wait_s
    while True:
        try:
            return step()
        except Exception as exc:
            if time.monotonic() >= deadline:
                raise StartupError(f"{failure} ({type(exc).__name__})") from None
            time.sleep(0.5)
