"""What one database statement costs the service's process, by the way it is sent.

    python -m bench.statement_cost [--number 3000]

The idempotency look-up (`find_succeeded_payment`) run NUMBER times, one at
a time, against BENCH_DATABASE_URL (else TEST_DATABASE_URL; only read):

- through the store as the service sends it: pool checkout, the
  transaction settings and the statement in one simple query, parameters
  bound on the client;
- through the same pool, the statement alone, bound on the server, nothing
  prepared (what a service without per-transaction settings would send);
- on one connection: bound on the server, unprepared; prepared; the
  settings and the statement bound on the client; and `SELECT 1`.

Prints the CPU this thread spent (time.thread_time) and the wall time per
statement: the first is what a saved round trip or a cheaper way of sending
saves the app, the second what it saves the request.
"""

from __future__ import annotations

import argparse
import os
import time
import uuid

import psycopg
from psycopg.rows import class_row

from payment.db.pool import open_pool
from payment.db.queries import QUERIES
from payment.db.store import PaymentStore
from payment.model import Payment


def timed(name: str, statement, number: int) -> None:
    for _ in range(200):
        statement()
    cpu, wall = time.thread_time(), time.perf_counter()
    for _ in range(number):
        statement()
    cpu, wall = time.thread_time() - cpu, time.perf_counter() - wall
    print(f"{name:52} CPU {cpu / number * 1e6:6.1f} µs   wall {wall / number * 1e6:6.1f} µs")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--number", type=int, default=3000)
    args = parser.parse_args()
    url = os.environ.get("BENCH_DATABASE_URL") or os.environ["TEST_DATABASE_URL"]
    query = QUERIES["find_succeeded_payment"]
    params = {"order_id": uuid.uuid4()}
    pool = open_pool(url, min_size=1, max_size=2, timeout=2)
    pool.wait()
    store = PaymentStore(pool)
    direct = psycopg.connect(url, autocommit=True, prepare_threshold=None)
    prepared = psycopg.connect(url, autocommit=True, prepare_threshold=0)

    def through_pool():
        with pool.connection() as conn, conn.cursor(row_factory=class_row(Payment)) as cur:
            cur.execute(query, params).fetchone()

    def on(conn):
        def statement():
            with conn.cursor(row_factory=class_row(Payment)) as cur:
                cur.execute(query, params).fetchone()
        return statement

    def settings_bound_on_client():
        with psycopg.ClientCursor(direct, row_factory=class_row(Payment)) as cur:
            cur.execute(pool.transaction_settings.replace("%", "%%") + query, params)
            while cur.nextset():
                pass
            cur.fetchone()

    try:
        timed("store (pool, settings + statement, client-bound)", lambda: store.find_succeeded(params["order_id"]),
              args.number)
        timed("pool, statement alone, server-bound, unprepared", through_pool, args.number)
        timed("one connection, server-bound, unprepared", on(direct), args.number)
        timed("one connection, prepared", on(prepared), args.number)
        timed("one connection, settings + statement, client-bound", settings_bound_on_client, args.number)
        timed("one connection, SELECT 1", lambda: direct.execute("SELECT 1").fetchone(), args.number)
    finally:
        direct.close()
        prepared.close()
        pool.close()


if __name__ == "__main__":
    main()
