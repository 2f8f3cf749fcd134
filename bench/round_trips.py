"""Database round trips per payment, counted on the wire.

Pays PAYMENTS orders through the service's own code, in this process: the
collaborators built as a worker builds them (payment.bootstrap.build_core:
pool, store, producer, delivery, simulated gateway), then per payment what
service.pay does once the upstreams agree (the idempotency check, the
pending insert, service.charge_and_settle), against the real database and a
real broker. The database is reached through a small proxy on 127.0.0.1
that counts round trips as the server's ReadyForQuery messages: one per
simple query, one per extended-protocol Sync, whatever code sent it (the
request's statements, BEGIN and COMMIT, the pool's connection checks, the
marks written in the background, those written when the process closes).
Connection set-up is not counted. Payments are all successes.

    python -m bench.round_trips [--payments 200] [--threads 1] \
        [--database-url URL] [--bootstrap HOST:PORT]

The database defaults to BENCH_DATABASE_URL, else TEST_DATABASE_URL; its
`bc_payment` tables are emptied before and after (give it a database of its
own). Without --bootstrap a Tansu broker is started for the run.

It imports nothing of `bench`, so it counts another revision as well: run
this file with that revision's tree first on the path, e.g.

    git worktree add ../old REV
    cd ../old && PYTHONPATH=. python /path/to/this/bench/round_trips.py

Prints, per payment, the round trips of each kind (statements named by verb
and table, the transaction settings left out), the total, and one line
`ROUND_TRIPS_JSON {...}`.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import re
import socket
import struct
import tempfile
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from pathlib import Path

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo

import devstack
from payment import service
from payment.config import Config
from payment.db import migrations
from payment.model import PaymentRequest
from payment.outbox.producer import ensure_topics

try:
    from payment.bootstrap import build_core
except ImportError:  # a revision from before payment/bootstrap.py, which held it in payment/runtime.py
    from payment.runtime import build_core

CUSTOMER_ID = uuid.UUID("a8098c1a-f86e-11da-bd1a-00112444be1e")
WARMUP_PAYMENTS = 10
# Longer than any background mark takes to land: what the warm-up left
# behind is written before counting starts.
SETTLE_S = 0.5


def label(sql: str) -> str:
    """A round trip's statements by verb and table: `UPDATE payments + INSERT
    outbox`. The transaction settings (set_config) go with every one and
    are left out."""
    parts = []
    for statement in (part.strip() for part in sql.split(";")):
        if not statement or statement.upper().startswith("SELECT SET_CONFIG"):
            continue
        tables = list(dict.fromkeys(re.findall(r"bc_payment\.(\w+)", statement)))
        parts.append(statement.split(None, 1)[0].upper() + (" " + ",".join(tables) if tables else ""))
    return " + ".join(parts) or "(empty query: the pool's connection check)"


def statements_in(label_text: str) -> int:
    return 0 if label_text.startswith("(") else label_text.count(" + ") + 1


class CountingProxy:
    """A TCP proxy to PostgreSQL that counts the round trips it carries,
    by label. Needs sslmode=disable (it reads the protocol)."""

    def __init__(self, host: str, port: int):
        self.target = (host, port)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.lock = threading.Lock()
        self.counts: collections.Counter[str] = collections.Counter()
        self.connections = 0
        threading.Thread(target=self._accept, daemon=True).start()

    def reset(self) -> None:
        with self.lock:
            self.counts.clear()
            self.connections = 0

    def snapshot(self) -> tuple[collections.Counter, int]:
        with self.lock:
            return collections.Counter(self.counts), self.connections

    def _accept(self) -> None:
        while True:
            client, _ = self.listener.accept()
            server = socket.create_connection(self.target)
            for sock in (client, server):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sent: collections.deque[str] = collections.deque()
            with self.lock:
                self.connections += 1
            threading.Thread(target=self._from_client, args=(client, server, sent), daemon=True).start()
            threading.Thread(target=self._from_server, args=(server, client, sent), daemon=True).start()

    def _from_client(self, client, server, sent) -> None:
        stream = client.makefile("rb")
        try:
            # The startup message has no type byte.
            length = _read(stream, 4)
            server.sendall(length + _read(stream, struct.unpack("!i", length)[0] - 4))
            parsed = None
            while True:
                kind = _read(stream, 1)
                length = _read(stream, 4)
                body = _read(stream, struct.unpack("!i", length)[0] - 4)
                if kind == b"Q":
                    sent.append(label(body[:-1].decode()))
                elif kind == b"P":
                    parsed = label(body.split(b"\0")[1].decode())
                elif kind == b"S":
                    sent.append(parsed or "(extended protocol)")
                    parsed = None
                server.sendall(kind + length + body)
        except (EOFError, OSError):
            pass
        finally:
            _close(client, server)

    def _from_server(self, server, client, sent) -> None:
        stream = server.makefile("rb")
        started = False
        try:
            while True:
                kind = _read(stream, 1)
                length = _read(stream, 4)
                body = _read(stream, struct.unpack("!i", length)[0] - 4)
                if kind == b"Z":
                    if started:
                        what = sent.popleft() if sent else "(unknown)"
                        with self.lock:
                            self.counts[what] += 1
                    started = True  # the first one ends the connection's start-up
                client.sendall(kind + length + body)
        except (EOFError, OSError):
            pass
        finally:
            _close(client, server)


def _read(stream, size: int) -> bytes:
    data = stream.read(size)
    if len(data) < size:
        raise EOFError
    return data


def _close(*socks) -> None:
    for sock in socks:
        try:
            sock.close()
        except OSError:
            pass


def pay_once(deps, order_id: uuid.UUID) -> None:
    """service.pay without the request, the upstream calls or the answer."""
    if deps.store.find_succeeded(order_id) is not None:
        raise RuntimeError("order already paid")
    request = PaymentRequest(order_id=order_id, customer_id=CUSTOMER_ID, reservation_id=None,
                             amount=Decimal("150.00"), currency="USD", payment_method="credit_card")
    pending = deps.store.insert_pending(request, uuid.uuid4(), is_simulated=deps.gateway.is_simulated)
    if pending is None:
        raise RuntimeError("order has a live payment")
    if service.charge_and_settle(pending, deps).status != "succeeded":
        raise RuntimeError("payment declined")


def empty_tables(url: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("TRUNCATE bc_payment.outbox, bc_payment.payment_checks, bc_payment.refund_checks,"
                     " bc_payment.refunds, bc_payment.payments, bc_payment.simulator_ledger,"
                     " bc_payment.simulator_refunds, bc_payment.simulator_refund_voids")


def count(database_url: str, bootstrap: str, payments: int, threads: int) -> dict:
    target = conninfo_to_dict(database_url)
    proxy = CountingProxy(target.get("host") or "127.0.0.1", int(target.get("port") or 5432))
    proxied = make_conninfo(database_url, host="127.0.0.1", port=str(proxy.port),
                            sslmode="disable", gssencmode="disable")
    config = Config(database_url=proxied, kafka_bootstrap_servers=bootstrap,
                    ordering_service_url="http://127.0.0.1:9", reservation_service_url="http://127.0.0.1:9",
                    db_pool_min=threads, db_pool_max=threads)
    core = build_core(config)
    try:
        core.pool.wait(10)
        for _ in range(WARMUP_PAYMENTS):
            pay_once(core.deps, uuid.uuid4())
        time.sleep(SETTLE_S)
        proxy.reset()
        started = time.monotonic()
        with ThreadPoolExecutor(threads) as pool:
            list(pool.map(lambda _: pay_once(core.deps, uuid.uuid4()), range(payments)))
        elapsed = time.monotonic() - started
    finally:
        core.close()  # the marks still waiting are written, and counted
    counts, connections = proxy.snapshot()
    total = sum(counts.values())
    return {
        "payments": payments,
        "threads": threads,
        "round_trips_per_payment": total / payments,
        "statements_per_payment": sum(statements_in(k) * n for k, n in counts.items()) / payments,
        "by_kind": {kind: n / payments for kind, n in counts.most_common()},
        "connections_opened": connections,
        "seconds": round(elapsed, 2),
    }


def report(result: dict) -> None:
    print(f"{result['payments']} payments, {result['threads']} thread(s), {result['seconds']} s")
    print(f"{'per payment':>12}  round trip")
    for kind, per_payment in result["by_kind"].items():
        print(f"{per_payment:12.3f}  {kind}")
    print(f"{result['round_trips_per_payment']:12.3f}  round trips in all "
          f"({result['statements_per_payment']:.3f} statements)")
    print("ROUND_TRIPS_JSON " + json.dumps(result))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--payments", type=int, default=200)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--database-url", default=os.environ.get("BENCH_DATABASE_URL")
                        or os.environ.get("TEST_DATABASE_URL"))
    parser.add_argument("--bootstrap", help="a broker to use; else a Tansu broker is started")
    args = parser.parse_args()
    if not args.database_url:
        parser.error("--database-url, BENCH_DATABASE_URL or TEST_DATABASE_URL is needed")
    migrations.migrate(args.database_url)
    broker = None
    bootstrap = args.bootstrap
    if not bootstrap:
        port = devstack.free_port()
        broker = devstack.start_broker(port, Path(tempfile.mkdtemp(prefix="round-trips-")) / "tansu.log")
        bootstrap = f"127.0.0.1:{port}"
    try:
        ensure_topics(bootstrap, ["payment-succeeded", "payment-failed"], partitions=1)
        empty_tables(args.database_url)
        report(count(args.database_url, bootstrap, args.payments, args.threads))
    finally:
        empty_tables(args.database_url)
        devstack.stop(broker)


if __name__ == "__main__":
    main()
