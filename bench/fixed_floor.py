"""The fixed floor: the least database and broker work one payment can need.

bench/floor.py runs the service's own code path, so every round trip the
service saves, that floor saves too, and the service's share of it cannot
show the saving. This floor shares no code with the service: plain psycopg
and confluent-kafka calls, hand-written SQL on the service's tables, so it
only moves when the database, the broker or the machine do. Per payment:

  1. one INSERT of the pending row, committed (autocommit: one round trip);
  2. one transaction with the outcome UPDATE and the outbox INSERT: one
     statement (a data-modifying WITH), so one round trip, both or neither;
  3. produce the event and wait for its delivery report;
  4. one UPDATE marking the outbox row sent, committed (one round trip).

No idempotency look-up, no per-transaction settings, no check on checkout:
what the service adds on top of these four steps is what the ratio shows.
One process, THREADS threads, each paying order after order, on a
psycopg_pool.ConnectionPool and a confluent_kafka.Producer set up as the
service sets up its own (values copied below, with where they come from).

    python -m bench.fixed_floor --database-url URL --bootstrap HOST:PORT --threads 8 \
        --duration 20 --warmup 3 --run-id 0a1b2c3d [--pgbouncer]

Prints `BENCH_START` when the measured window opens, then one line,
`BENCH_JSON {...}`: payments/s over that window, latency percentiles in
microseconds, errors (the same output as bench/floor.py).
"""

from __future__ import annotations

import json
import logging
import secrets
import threading
import uuid
from datetime import datetime, timezone

from confluent_kafka import Producer
from psycopg_pool import ConnectionPool

from bench.paying_threads import floor_arguments, measure

CUSTOMER_ID = "a8098c1a-f86e-11da-bd1a-00112444be1e"
RESERVATION_ID = "f47ac10b-58cc-4372-a567-0e02b2c3d479"
AMOUNT = "150.00"  # text, written into the payload as a JSON number with its decimals
CURRENCY = "USD"
PAYMENT_METHOD = "credit_card"
TOPIC = "payment-succeeded"
EVENT_TYPE = "payment-succeeded"

# The service's pool: payment/config.py's DB_POOL_MAX and DB_TIMEOUT_S
# defaults (8 connections per worker, 2 s), opened full like bench/floor.py's
# (min = max = threads) so that no connection is made in the window; the
# connect timeout is payment/db/pool.py open_pool's (the timeout, rounded).
POOL_TIMEOUT_S = 2.0
CONNECT_TIMEOUT_S = 2

# payment/outbox/producer.py producer_config and MESSAGE_TIMEOUT_S.
PRODUCER_SETTINGS = {
    "client.id": "payment-service",
    "acks": "all",
    "enable.idempotence": False,
    "max.in.flight.requests.per.connection": 1,
    "linger.ms": 0,
    "message.timeout.ms": 10_000,
    "socket.connection.setup.timeout.ms": 3000,
    "reconnect.backoff.max.ms": 2000,
}
# payment/config.py KAFKA_DELIVERY_TIMEOUT_S: how long a payment waits for its report.
DELIVERY_TIMEOUT_S = 2.0

INSERT_PENDING = """
INSERT INTO bc_payment.payments (id, order_id, customer_id, reservation_id, amount, currency,
                                 payment_method, status, is_simulated)
VALUES (%(id)s, %(order_id)s, %(customer_id)s, %(reservation_id)s, %(amount)s, %(currency)s,
        %(payment_method)s, 'pending', true)"""

# The outcome and its event in one statement: one implicit transaction, and
# no outbox row unless the payment was still pending.
SETTLE = """
WITH settled AS (
    UPDATE bc_payment.payments
       SET status = 'succeeded', transaction_id = %(transaction_id)s,
           simulated_response = %(simulated_response)s, processed_at = %(processed_at)s
     WHERE id = %(id)s AND status = 'pending'
    RETURNING id)
INSERT INTO bc_payment.outbox (event_id, payment_id, topic, event_key, event_type, payload)
SELECT %(event_id)s, id, %(topic)s, %(event_key)s, %(event_type)s, %(payload)s FROM settled"""

MARK_SENT = "UPDATE bc_payment.outbox SET sent_at = now() WHERE event_id = %(event_id)s AND sent_at IS NULL"

log = logging.getLogger("bench.fixed_floor")


def utc_millis(moment: datetime) -> str:
    """`2026-03-04T15:30:02.123Z`, as the contract writes times."""
    moment = moment.astimezone(timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def succeeded_payload(payment_id: str, order_id: str, transaction_id: str, processed_at: datetime) -> str:
    """The payment-succeeded event's JSON, fields in the contract's order,
    the amount a number that keeps its two decimals."""
    text = json.dumps
    return ("{"
            f'"paymentId":{text(payment_id)},"orderId":{text(order_id)},'
            f'"customerId":{text(CUSTOMER_ID)},"reservationId":{text(RESERVATION_ID)},'
            f'"amount":{AMOUNT},"currency":{text(CURRENCY)},"paymentMethod":{text(PAYMENT_METHOD)},'
            f'"transactionId":{text(transaction_id)},"processedAt":{text(utc_millis(processed_at))},'
            '"status":"succeeded"}')


def pool_kwargs(through_pgbouncer: bool) -> dict:
    """Each connection autocommits, so a single statement costs one round
    trip. Direct, psycopg prepares a statement on its fifth use (its
    default), which spares the server the parsing and planning: the least
    work. Through a transaction-pooling PgBouncer the next transaction may
    run on another server connection, where that prepared statement does
    not exist, so nothing is prepared (prepare_threshold=None)."""
    kwargs = {"autocommit": True, "connect_timeout": CONNECT_TIMEOUT_S}
    if through_pgbouncer:
        kwargs["prepare_threshold"] = None
    return kwargs


class Reports:
    """One daemon thread serving the producer's delivery reports, so that
    each payment waits on its own message's report and nothing else."""

    def __init__(self, producer: Producer):
        self.producer = producer
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="delivery-reports", daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stopping.is_set():
            self.producer.poll(0.1)

    def stop(self) -> None:
        self._stopping.set()
        self._thread.join()


def produce_and_wait(producer: Producer, *, key: str, value: str, event_id: str, payment_id: str) -> None:
    delivered = threading.Event()
    failure: list = []

    def on_delivery(err, _msg):
        if err is not None:
            failure.append(err)
        delivered.set()

    producer.produce(TOPIC, key=key.encode(), value=value.encode(), headers=[
        ("eventType", EVENT_TYPE.encode()), ("eventId", event_id.encode()),
        ("paymentId", payment_id.encode()), ("contentType", b"application/json")],
        on_delivery=on_delivery)
    if not delivered.wait(DELIVERY_TIMEOUT_S):
        raise TimeoutError("no delivery report in time")
    if failure:
        raise RuntimeError(f"not delivered: {failure[0]}")


def pay_once(pool: ConnectionPool, producer: Producer, order_id: str) -> None:
    payment_id, event_id = str(uuid.uuid4()), str(uuid.uuid4())
    with pool.connection() as conn:
        conn.execute(INSERT_PENDING, {
            "id": payment_id, "order_id": order_id, "customer_id": CUSTOMER_ID,
            "reservation_id": RESERVATION_ID, "amount": AMOUNT, "currency": CURRENCY,
            "payment_method": PAYMENT_METHOD})
    transaction_id = "txn_" + secrets.token_hex(8)
    processed_at = datetime.now(timezone.utc)
    payload = succeeded_payload(payment_id, order_id, transaction_id, processed_at)
    with pool.connection() as conn:
        settled = conn.execute(SETTLE, {
            "id": payment_id, "transaction_id": transaction_id,
            "simulated_response": f"Success - TransactionId: {transaction_id}",
            "processed_at": processed_at, "event_id": event_id, "topic": TOPIC,
            "event_key": order_id, "event_type": EVENT_TYPE, "payload": payload}).rowcount
    if settled != 1:
        raise RuntimeError("payment was not pending")
    produce_and_wait(producer, key=order_id, value=payload, event_id=event_id, payment_id=payment_id)
    with pool.connection() as conn:
        conn.execute(MARK_SENT, {"event_id": event_id})


def run(database_url: str, bootstrap: str, threads: int, duration: float, warmup: float,
        run_id: str, through_pgbouncer: bool = False) -> dict:
    pool = ConnectionPool(database_url, min_size=threads, max_size=threads, timeout=POOL_TIMEOUT_S,
                          kwargs=pool_kwargs(through_pgbouncer), open=False, name="fixed-floor")
    pool.open(wait=True, timeout=10)
    producer = Producer({**PRODUCER_SETTINGS, "bootstrap.servers": bootstrap})
    reports = Reports(producer)
    # Reported before the pool closes, so that its backends are still there
    # to be accounted for.
    result = measure(lambda order_id: pay_once(pool, producer, order_id), threads=threads,
                     duration=duration, warmup=warmup, run_id=run_id, log=log)
    producer.flush(5)
    reports.stop()
    pool.close()
    return result


def main() -> None:
    parser = floor_arguments(__doc__.splitlines()[0], threads=8)
    parser.add_argument("--pgbouncer", action="store_true",
                        help="the database URL is a transaction-pooling PgBouncer: prepare nothing")
    args = parser.parse_args()
    run(args.database_url, args.bootstrap, args.threads, min(args.duration, 600),
        min(args.warmup, 60), args.run_id, through_pgbouncer=args.pgbouncer)


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING)
    main()
