"""Builds the service's collaborators from the configuration, and closes them.

Each gunicorn worker builds its own (after the fork): a pool, a producer and
threads do not survive a fork. `close` flushes the producer, writes the
marks of confirmed events still waiting, and closes the pool when the worker
exits.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

import falcon

from payment import db, migrations, service, upstream
from payment.api.app import create_app
from payment.api.auth import verifier_from
from payment.config import Config
from payment.delivery import Delivery
from payment.gateways import build_gateway
from payment.kafka import KafkaPublisher, check_topics, ensure_topics
from payment.metrics import Metrics
from payment.reconciler import Reconciler
from payment.relay import OutboxRelay, grace_after
from payment.side_calls import SideCalls
from payment.simulator import SimulatedGateway

log = logging.getLogger(__name__)


@dataclass
class Core:
    """What every process of the service holds: pool, store, upstream
    connections and the threads for reservation calls, producer, delivery,
    gateway and the service's dependencies. Closed in one order."""

    config: Config
    pool: object
    store: db.PaymentStore
    publisher: KafkaPublisher
    delivery: Delivery
    deps: service.Dependencies
    side_calls: SideCalls
    upstream_session: object

    def close(self, timeout: float = 10.0) -> None:
        # Upstream calls first: a reservation call still running ends within
        # its deadline, and its connection is closed with the others after it.
        self.side_calls.close()
        self.upstream_session.close()
        left = self.publisher.close(timeout=timeout)
        if left:
            log.warning("%d events left unconfirmed at shutdown; the outbox keeps them", left)
        # After the producer's flush, whose late reports add marks; before
        # the pool goes.
        self.delivery.close()
        self.pool.close()


def build_core(config: Config, *, metrics: Metrics | None = None, pool_max: int | None = None) -> Core:
    pool = db.open_pool(config.database_url, min_size=min(config.db_pool_min, pool_max or config.db_pool_max),
                        max_size=pool_max or config.db_pool_max, timeout=config.db_timeout,
                        search_path=config.db_search_path)
    store = db.PaymentStore(pool)
    session = upstream.new_session(pool_size=config.db_pool_max)
    upstream_options = dict(connect_timeout=config.upstream_connect_timeout,
                            read_timeout=config.upstream_read_timeout, deadline=config.upstream_deadline,
                            max_response_bytes=config.upstream_max_response_bytes, metrics=metrics)
    # Each request thread has at most one reservation call of its own under
    # way; one abandoned (the order was refused first) may hold a thread a
    # little longer, bounded by its deadline, which also counts any wait for
    # a thread.
    side_calls = SideCalls(threads=config.worker_threads)
    publisher = KafkaPublisher(config.kafka_bootstrap_servers, config.kafka_message_timeout, config.kafka_settings)
    delivery = Delivery(store, publisher)
    deps = service.Dependencies(
        store=store,
        ordering=upstream.OrderingClient(config.ordering_service_url, session, **upstream_options),
        reservations=upstream.ReservationClient(config.reservation_service_url, session, **upstream_options),
        gateway=_gateway(config, pool),
        delivery=delivery,
        topic_succeeded=config.topic_succeeded,
        topic_failed=config.topic_failed,
        delivery_timeout=config.kafka_delivery_timeout,
        pending_timeout=config.pending_timeout,
        side_calls=side_calls,
    )
    return Core(config=config, pool=pool, store=store, publisher=publisher, delivery=delivery, deps=deps,
                side_calls=side_calls, upstream_session=session)


def _gateway(config: Config, pool):
    return build_gateway(config, simulator=lambda: SimulatedGateway(
        pool, latency_ms=config.simulator_latency_ms,
        delay_before_charge_ms=config.simulator_delay_before_charge_ms,
        ledger_path=config.simulator_ledger_path))


@dataclass
class Runtime:
    app: falcon.App
    core: Core
    metrics: Metrics
    relay: OutboxRelay | None

    @property
    def deps(self) -> service.Dependencies:
        return self.core.deps

    def close(self, timeout: float = 10.0) -> None:
        if self.relay:
            self.relay.stop()
        self.core.close(timeout)


def build(config: Config, *, start_relay: bool = True) -> Runtime:
    metrics = Metrics()
    core = build_core(config, metrics=metrics)
    metrics.pool_stats = core.pool.get_stats
    metrics.outbox_backlog = core.store.outbox_backlog
    metrics.overdue_payments = lambda: core.store.count_overdue(config.pending_timeout)
    relay = make_relay(core, metrics=metrics).start() if start_relay else None
    app = create_app(core.deps, max_body_bytes=config.max_body_bytes, metrics=metrics, ready_checks={
        "database": core.store.ping,
        "broker": core.publisher.is_reachable,
    }, verifier=verifier_from(config))
    return Runtime(app=app, core=core, metrics=metrics, relay=relay)


def make_reconciler(core: Core, *, metrics: Metrics | None = None) -> Reconciler:
    config = core.config
    return Reconciler(core.deps, older_than_s=config.pending_timeout, base_backoff_s=config.relay_interval,
                      max_backoff_s=config.reconcile_max_backoff, metrics=metrics)


def make_relay(core: Core, *, metrics: Metrics | None = None, outbox: bool = True) -> OutboxRelay:
    """The relay loop with the reconciler in it; `outbox=False`: the reconciler alone."""
    config = core.config
    return OutboxRelay(
        core.store, core.delivery, outbox=outbox,
        reconciler=make_reconciler(core, metrics=metrics),
        interval_s=config.relay_interval,
        grace_s=config.relay_grace or grace_after(config.kafka_message_timeout),
        max_backoff_s=config.relay_max_backoff,
        batch_size=config.relay_batch_size,
        retention_s=config.outbox_retention,
    )


class StartupError(RuntimeError):
    """A dependency could not be prepared at start-up; the message names it."""


def prepare(config: Config, wait_s: float = 30.0) -> migrations.Outcome:
    """The release step, once per deployment before the service starts: the
    schema migrations, then the topics (created, or with
    KAFKA_TOPIC_CREATE=false found). Waits up to `wait_s` for each, as both
    may start alongside; a migration that fails or was changed stops it at
    once, since waiting cannot mend it."""
    outcome = _retry(lambda: migrations.migrate(config.database_url), wait_s,
                     "payment database is unreachable")
    topics = [config.topic_succeeded, config.topic_failed]
    if config.kafka_topic_create:
        _retry(lambda: ensure_topics(config.kafka_bootstrap_servers, topics,
                                     partitions=config.kafka_topic_partitions,
                                     replication_factor=config.kafka_topic_replication_factor,
                                     settings=config.kafka_settings),
               wait_s, "Kafka broker is unreachable")
    else:
        _retry(lambda: check_topics(config.kafka_bootstrap_servers, topics, settings=config.kafka_settings),
               wait_s, "Kafka broker is unreachable or the topics do not exist (KAFKA_TOPIC_CREATE is false)")
    return outcome


def _retry(step, wait_s: float, failure: str):
    deadline = time.monotonic() + wait_s
    while True:
        try:
            return step()
        except migrations.MigrationError as exc:
            raise StartupError(str(exc)) from None
        except Exception as exc:
            if time.monotonic() >= deadline:
                raise StartupError(f"{failure} ({type(exc).__name__})") from None
            time.sleep(0.5)
