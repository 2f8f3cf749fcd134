"""The composition root: every process of the service is built here from the
configuration, and closed here, in one order.

- a gunicorn worker (app.py): `build_web`, the WSGI app over a core, the
  outbox relay on a thread of its own;
- `python -m payment relay` and `python -m payment reconcile`: `build_loop`,
  a core whose relay loop (the reconciler alone, for `reconcile`) the
  process runs in its main thread;
- the tests and the benchmarks: the same functions, or `build_core`.

Each gunicorn worker builds its own (after the fork): a pool, a producer and
threads do not survive a fork. `Core.close` is the one way they are closed:
gunicorn's worker_exit, the loop processes and the tests all call it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

import falcon
import jwt

from payment import refunds, service
from payment.api.app import create_app
from payment.api.auth import TokenVerifier
from payment.config import MARK_DELAY_S, Config
from payment.db.pool import Pool, open_pool
from payment.db.refund_store import RefundStore
from payment.gateways.factory import build_gateway, readiness_check
from payment.gateways.port import PaymentGateway
from payment.gateways.simulator import SimulatedGateway
from payment.metrics import Metrics
from payment.outbox.delivery import Delivery
from payment.outbox.marker import SentMarker
from payment.outbox.producer import KafkaPublisher
from payment.outbox.relay import OutboxRelay
from payment.reconciler import Reconciler
from payment.upstream import clients as upstream
from payment.upstream.httpclient import ConnectionPool

if TYPE_CHECKING:
    from payment.api.webhooks import StripeWebhookResource

log = logging.getLogger(__name__)

# A relay or reconciler process holds few connections at once: the relay's
# claim, the marker's batch and the reconciler's statement.
LOOP_POOL_MAX = 3


@dataclass
class Core:
    """What every process of the service holds: the pool and the store, the
    producer and the delivery of events (with its marker), the upstream
    connections, the gateway, the
    service's dependencies over them, and the relay loop once one is made."""

    config: Config
    pool: Pool
    store: RefundStore
    publisher: KafkaPublisher
    delivery: Delivery
    upstream_session: ConnectionPool
    gateway: PaymentGateway
    deps: service.Dependencies
    refund_deps: refunds.RefundDependencies
    metrics: Metrics | None = None
    relay: OutboxRelay | None = None

    def make_reconciler(self) -> Reconciler:
        config = self.config
        return Reconciler(self.deps, refund_deps=self.refund_deps, older_than_s=config.pending_timeout,
                          base_backoff_s=config.relay_interval, max_backoff_s=config.reconcile_max_backoff,
                          metrics=self.metrics)

    def make_relay(self, *, outbox: bool = True) -> OutboxRelay:
        """The relay loop with the reconciler in it (`outbox=False`: the
        reconciler alone), kept so that `close` stops it first. The caller
        starts it on a thread or runs it."""
        config = self.config
        self.relay = OutboxRelay(
            self.store, self.delivery, outbox=outbox,
            reconciler=self.make_reconciler(),
            interval_s=config.relay_interval,
            grace_s=config.outbox_relay_grace,
            max_backoff_s=config.relay_max_backoff,
            batch_size=config.relay_batch_size,
            retention_s=config.outbox_retention,
        )
        return self.relay

    def close(self, timeout: float = 10.0) -> None:
        """Close everything, in this order:

        1. the relay loop, so that nothing new is claimed or produced;
        2. the upstream connections kept alive;
        3. the producer, flushed for up to `timeout`: the events queued are
           delivered, and their reports hand the marker more marks;
        4. the marker, which writes the marks still waiting (after the flush,
           before the pool goes);
        5. the pool, which the marker and the simulated gateway use.
        """
        if self.relay is not None:
            self.relay.stop()
        self.upstream_session.close()
        left = self.publisher.close(timeout=timeout)
        if left:
            log.warning("%d events left unconfirmed at shutdown; the outbox keeps them", left)
        self.delivery.close()
        self.pool.close()


def build_core(config: Config, *, metrics: Metrics | None = None, pool_max: int | None = None) -> Core:
    """A core from the configuration; `pool_max`, when given, sizes the pool
    instead of DB_POOL_MAX, for a process that needs fewer connections."""
    pool_max = pool_max or config.db_pool_max
    pool = open_pool(config.database_url, min_size=min(config.db_pool_min, pool_max), max_size=pool_max,
                        timeout=config.db_timeout, search_path=config.db_search_path, route=config.db_route)
    # The payment store with the refunds' statements: one store, one pool.
    store = RefundStore(pool)
    # Each of a worker's threads holds at most one call to an upstream at a
    # time: as many connections per host stay open for the next calls.
    session = upstream.new_session(pool_size=config.worker_threads)
    ordering, reservations = upstream_clients(config, session, metrics=metrics)
    publisher = KafkaPublisher(config.kafka_bootstrap_servers, config.kafka_message_timeout, config.kafka_settings)
    delivery = Delivery(store, publisher, SentMarker(store, delay_s=MARK_DELAY_S))
    gateway = build_gateway(config, metrics=metrics, simulator=lambda: SimulatedGateway(
        pool, latency_ms=config.simulator_latency_ms,
        delay_before_charge_ms=config.simulator_delay_before_charge_ms,
        ledger_path=config.simulator_ledger_path))
    deps = service.Dependencies(
        store=store,
        ordering=ordering,
        reservations=reservations,
        gateway=gateway,
        delivery=delivery,
        topic_succeeded=config.topic_succeeded,
        topic_failed=config.topic_failed,
        delivery_timeout=config.kafka_delivery_timeout,
        pending_timeout=config.pending_timeout,
    )
    refund_deps = refunds.RefundDependencies(
        store=store,
        gateway=gateway,
        delivery=delivery,
        topic_refunded=config.topic_refunded,
        topic_refund_failed=config.topic_refund_failed,
        delivery_timeout=config.kafka_delivery_timeout,
        pending_timeout=config.pending_timeout,
        mark_delay=MARK_DELAY_S,
    )
    return Core(config=config, pool=pool, store=store, publisher=publisher, delivery=delivery,
                upstream_session=session, gateway=gateway, deps=deps, refund_deps=refund_deps, metrics=metrics)


def upstream_clients(config: Config, session: ConnectionPool, *, metrics: Metrics | None = None
                     ) -> tuple[upstream.OrderingClient, upstream.ReservationClient]:
    """(ordering client, reservation client) over one connection pool."""
    return (upstream.OrderingClient(config.ordering_service_url, session, **_upstream_options(config, metrics)),
            upstream.ReservationClient(config.reservation_service_url, session, **_upstream_options(config, metrics)))


def _upstream_options(config: Config, metrics: Metrics | None) -> upstream.ClientOptions:
    return upstream.ClientOptions(
        connect_timeout=config.upstream_connect_timeout, read_timeout=config.upstream_read_timeout,
        deadline=config.upstream_deadline, max_response_bytes=config.upstream_max_response_bytes, metrics=metrics)


@dataclass
class Web:
    """A gunicorn worker's service: the WSGI app and the core beneath it."""

    app: falcon.App[falcon.Request, falcon.Response]
    core: Core

    def close(self, timeout: float = 10.0) -> None:
        self.core.close(timeout)


def build_web(config: Config, *, start_relay: bool = True) -> Web:
    """The WSGI app with its metrics and readiness checks, over a core whose
    relay runs on a thread of its own (unless `start_relay` is false)."""
    metrics = Metrics()
    core = build_core(config, metrics=metrics)
    metrics.pool_stats = core.pool.get_stats
    metrics.outbox_backlog = core.store.outbox_backlog
    metrics.overdue_payments = lambda: core.store.count_overdue(config.pending_timeout)
    metrics.overdue_refunds = lambda: core.store.count_overdue_refunds(config.pending_timeout)
    if start_relay:
        core.make_relay().start()
    ready_checks = {"database": core.store.ping, "broker": core.publisher.is_reachable}
    gateway_ready = readiness_check(core.gateway)
    if gateway_ready is not None:
        ready_checks["gateway"] = gateway_ready
    app = create_app(core.deps, refund_deps=core.refund_deps, max_body_bytes=config.max_body_bytes, metrics=metrics,
                     ready_checks=ready_checks, verifier=verifier_from(config),
                     refund_scope=config.auth_refund_scope, webhook=stripe_webhook(config, core, metrics))
    return Web(app=app, core=core)


def stripe_webhook(config: Config, core: Core, metrics: Metrics) -> StripeWebhookResource | None:
    """POST /webhooks/stripe's resource when STRIPE_WEBHOOK_SECRET is set, else None (no route)."""
    if not config.stripe_webhook_secrets:
        return None
    # Imported here, as the adapter is: the Stripe SDK only where Stripe is configured.
    from payment.api.webhooks import StripeWebhookResource

    return StripeWebhookResource(core.deps, secrets=config.stripe_webhook_secrets, metrics=metrics)


def build_loop(config: Config, *, outbox: bool = True) -> Core:
    """A core for a process that runs the relay loop alone (`outbox=False`:
    the reconciler alone): `core.relay.run()`, then `core.close()`."""
    core = build_core(config, pool_max=LOOP_POOL_MAX)
    core.make_relay(outbox=outbox)
    return core


def verifier_from(config: Config) -> TokenVerifier | None:
    """The verifier the configuration asks for; None when authorization is off."""
    if not config.auth_enabled:
        return None
    jwks = None
    if config.auth_jwks_url:
        jwks = jwt.PyJWKClient(
            config.auth_jwks_url, cache_jwk_set=True, lifespan=config.auth_jwks_cache,
            timeout=config.auth_jwks_timeout,
            # A token with an unknown kid refetches the set at most this often,
            # so made-up kids cannot turn into a stream of fetches.
            cooldown_duration=30,
        )
    return TokenVerifier(
        hs256_secret=config.auth_hs256_secret, jwks_client=jwks,
        audience=config.auth_audience, issuer=config.auth_issuer,
        service_scope=config.auth_service_scope, refund_scope=config.auth_refund_scope, leeway=config.auth_leeway,
    )
