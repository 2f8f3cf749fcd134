"""The floor: the database and broker work of one payment, and nothing else.

Per payment, what service.pay does once the request is parsed and the
upstreams agree, with the service's own objects built by its composition
root (payment/bootstrap.py build_core: PaymentStore on the same pool
settings, KafkaPublisher, Delivery, SimulatedGateway), a pool of THREADS
connections: the idempotency check, the pending insert, then
service.charge_and_settle (charge, outcome + outbox row in one transaction,
produce and wait for that message's delivery report, mark it sent). No HTTP,
no JSON parsing or schema check, no upstream call. One process, THREADS
threads, each paying order after order.

    python -m bench.floor --database-url URL --bootstrap HOST:PORT --threads 8 \
        --duration 20 --warmup 3 --run-id 0a1b2c3d

Prints `BENCH_START` when the measured window opens, then one line,
`BENCH_JSON {...}`: payments/s over that window, latency percentiles in
microseconds, errors.
"""

from __future__ import annotations

import logging
import uuid
from decimal import Decimal

from bench.paying_threads import floor_arguments, measure
from payment import service
from payment.bootstrap import build_core
from payment.config import Config
from payment.model import PaymentRequest

CUSTOMER_ID = uuid.UUID("a8098c1a-f86e-11da-bd1a-00112444be1e")
RESERVATION_ID = uuid.UUID("f47ac10b-58cc-4372-a567-0e02b2c3d479")
AMOUNT = Decimal("150.00")
log = logging.getLogger("bench.floor")


def pay_once(deps: service.Dependencies, order_id: uuid.UUID) -> None:
    """service.pay without the request, the upstream calls or the answer."""
    if deps.store.find_succeeded(order_id) is not None:
        raise RuntimeError("order already paid")
    request = PaymentRequest(order_id=order_id, customer_id=CUSTOMER_ID, reservation_id=RESERVATION_ID,
                             amount=AMOUNT, currency="USD", payment_method="credit_card")
    pending = deps.store.insert_pending(request, uuid.uuid4(), is_simulated=deps.gateway.is_simulated)
    if pending is None:
        raise RuntimeError("order has a live payment")
    payment = service.charge_and_settle(pending, deps)
    if payment.status != "succeeded":
        raise RuntimeError("payment declined")


def run(database_url: str, bootstrap: str, threads: int, duration: float, warmup: float,
        run_id: str, through_pgbouncer: bool = False) -> dict:
    # No upstream is called: the URLs are never used.
    config = Config(database_url=database_url, kafka_bootstrap_servers=bootstrap,
                    ordering_service_url="http://127.0.0.1:9", reservation_service_url="http://127.0.0.1:9",
                    db_pool_min=threads, db_pool_max=threads,
                    # Told as the service is told (DB_ROUTE): behind a
                    # transaction pooler, no startup options, nothing prepared.
                    db_route="transaction-pooler" if through_pgbouncer else "direct")
    core = build_core(config)
    core.pool.wait(10)
    # Reported before the pool closes, so that its backends are still there
    # to be accounted for.
    result = measure(lambda order_id: pay_once(core.deps, uuid.UUID(order_id)), threads=threads,
                     duration=duration, warmup=warmup, run_id=run_id, log=log)
    core.close(5)
    return result


def main() -> None:
    parser = floor_arguments(__doc__.splitlines()[0], threads=16)
    parser.add_argument("--pgbouncer", action="store_true",
                        help="the database URL is a transaction-pooling PgBouncer's")
    args = parser.parse_args()
    run(args.database_url, args.bootstrap, args.threads, min(args.duration, 600),
        min(args.warmup, 60), args.run_id, args.pgbouncer)


if __name__ == "__main__":
    main()
