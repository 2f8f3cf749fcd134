"""The order and reservation calls one after the other and overlapped, in one run.

    python -m bench.upstream_overlap [--latency-ms 0,20,300] [--calls 200] [--handoffs 20000]

Latency at one connection: starts the sandbox (`python -m payment sandbox`,
its own process) and, for each latency, times `service.check_upstreams` for
the contract's example order and reservation, one caller at a time, with the
reservation call made after the order on the calling thread (`InOrder`, as
before the calls overlapped) and on the pool (`SideCalls`, as the service
runs), alternating call by call so that the machine's noise falls on both.

CPU of the hand-off, in this process: the same function over clients that
answer at once, with and without the pool; the difference in process CPU
time (every thread's) per call is what moving the reservation call to a
pool thread and back costs.

Prints a table and a `BENCH_JSON {...}` line.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
import uuid
from datetime import datetime, timedelta, timezone
from decimal import Decimal

import requests

from payment import devstack, service, upstream
from payment.bootstrap import upstream_clients
from payment.config import Config
from payment.model import Order, PaymentRequest, Reservation
from payment.sandbox import EXAMPLE_CUSTOMER_ID, EXAMPLE_ORDER_ID, EXAMPLE_RESERVATION_ID
from payment.side_calls import InOrder, SideCalls

REQUEST = PaymentRequest(order_id=uuid.UUID(EXAMPLE_ORDER_ID), customer_id=uuid.UUID(EXAMPLE_CUSTOMER_ID),
                         reservation_id=uuid.UUID(EXAMPLE_RESERVATION_ID), amount=Decimal("150.00"),
                         currency="USD", payment_method="credit_card")
THREADS = Config.worker_threads  # GUNICORN_THREADS' default


def dependencies(ordering, reservations, side_calls) -> service.Dependencies:
    return service.Dependencies(
        store=None, ordering=ordering, reservations=reservations, gateway=None, delivery=None,
        topic_succeeded="payment-succeeded", topic_failed="payment-failed", delivery_timeout=Config.kafka_delivery_timeout,
        side_calls=side_calls)


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def latency_at_one_connection(url: str, latency_ms: int, calls: int, pool: SideCalls) -> dict:
    requests.put(f"{url}/_latency", json={"delayMs": latency_ms}, timeout=5).raise_for_status()
    # The clients as the service builds them, with the default settings;
    # nothing here reads the database or broker settings.
    config = Config(database_url="", kafka_bootstrap_servers="", ordering_service_url=url,
                    reservation_service_url=url)
    session = upstream.new_session(pool_size=config.db_pool_max)
    ordering, reservations = upstream_clients(config, session)
    modes = {"sequential": dependencies(ordering, reservations, InOrder()),
             "overlapped": dependencies(ordering, reservations, pool)}
    timings: dict[str, list[float]] = {mode: [] for mode in modes}
    for deps in modes.values():  # warm-up: connections, imports
        service.check_upstreams(REQUEST, deps)
    for _ in range(calls):
        for mode, deps in modes.items():
            started = time.perf_counter()
            service.check_upstreams(REQUEST, deps)
            timings[mode].append(time.perf_counter() - started)
    session.close()
    return {mode: {"median_ms": statistics.median(values) * 1000, "p90_ms": percentile(values, 0.9) * 1000,
                   "mean_ms": statistics.fmean(values) * 1000}
            for mode, values in timings.items()}


class Instant:
    """Clients that answer at once, with the example's documents."""
    part = "instant service"
    deadline = Config.upstream_deadline
    order = Order(REQUEST.order_id, REQUEST.customer_id, REQUEST.amount, "USD", "pending")
    reservation = Reservation(REQUEST.reservation_id, REQUEST.customer_id, "active",
                              datetime.now(timezone.utc) + timedelta(days=1))

    def get_order(self, order_id, *, deadline=None):
        return self.order

    def get_reservation(self, reservation_id, *, deadline=None):
        return self.reservation


def handoff_cost(handoffs: int, pool: SideCalls, rounds: int = 5) -> dict:
    """CPU and wall time per check_upstreams over instant clients, per mode;
    the best of `rounds` (the least disturbed by the machine's other work)."""
    clients = Instant()
    modes = {"sequential": dependencies(clients, clients, InOrder()),
             "overlapped": dependencies(clients, clients, pool)}
    best = {mode: {"cpu_us": float("inf"), "wall_us": float("inf")} for mode in modes}
    for _round in range(rounds):
        for mode, deps in modes.items():
            cpu, wall = time.process_time(), time.perf_counter()
            for _ in range(handoffs):
                service.check_upstreams(REQUEST, deps)
            cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
            best[mode]["cpu_us"] = min(best[mode]["cpu_us"], cpu / handoffs * 1e6)
            best[mode]["wall_us"] = min(best[mode]["wall_us"], wall / handoffs * 1e6)
    best["handoff"] = {key: best["overlapped"][key] - best["sequential"][key] for key in ("cpu_us", "wall_us")}
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--latency-ms", default="0,20,300",
                        help="the sandbox's latency for each run, comma-separated")
    parser.add_argument("--calls", type=int, default=200, help="calls per mode at each latency (fewer above 100 ms)")
    parser.add_argument("--handoffs", type=int, default=20000, help="calls per mode and round for the CPU cost")
    args = parser.parse_args()

    port = devstack.free_port()
    sandbox = subprocess.Popen([sys.executable, "-m", "payment", "sandbox", "--port", str(port)],
                               stdout=subprocess.DEVNULL)
    pool = SideCalls(threads=THREADS)
    result = {"latency": {}, "cpu": None}
    try:
        devstack.wait_for_port(port, process=sandbox)
        url = f"http://127.0.0.1:{port}"
        print(f"{'latency':>9}  {'mode':<11} {'median ms':>10} {'p90 ms':>8} {'mean ms':>8}")
        for latency_ms in (int(value) for value in args.latency_ms.split(",")):
            calls = args.calls if latency_ms <= 100 else max(10, min(args.calls, 20))
            timings = latency_at_one_connection(url, latency_ms, calls, pool)
            result["latency"][latency_ms] = {**timings, "calls": calls}
            for mode, row in timings.items():
                print(f"{latency_ms:>7}ms  {mode:<11} {row['median_ms']:>10.2f} {row['p90_ms']:>8.2f} "
                      f"{row['mean_ms']:>8.2f}")
        result["cpu"] = handoff_cost(args.handoffs, pool)
        print(f"\nin-process, instant clients ({args.handoffs} calls per round, best of 5):")
        for mode, row in result["cpu"].items():
            print(f"  {mode:<11} CPU {row['cpu_us']:>7.1f} µs/call   wall {row['wall_us']:>7.1f} µs/call")
    finally:
        pool.close()
        devstack.stop(sandbox)
    print("BENCH_JSON " + json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
