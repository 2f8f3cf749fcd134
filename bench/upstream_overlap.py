"""The order and reservation calls one after the other and overlapped, in one run.

    python -m bench.upstream_overlap [--latency-ms 0,20,300] [--calls 200] [--cpu-calls 2000]

Starts the sandbox (`python -m devstack sandbox`, its own process) and times
the contract's example order and reservation through the service's clients,
one caller at a time, two ways, alternating call by call so that the
machine's noise falls on both:

- **sequential**: the order's GET, then the reservation's (sent and read at
  once), as before the calls overlapped;
- **overlapped**: `service.check_upstreams` as the service runs it: the
  reservation's request sent, the order fetched, the reservation's answer read.

Latency at one connection: for each sandbox latency, the median, p90 and mean.

CPU, in this process (the sandbox is another): the process CPU time per
call of each way at 0 ms latency, the best of a few rounds; the difference
is what overlapping costs the request's thread (it was the hand-off to a
pool thread and back when the reservation call ran on one).

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
from decimal import Decimal

import requests

import devstack
from devstack.sandbox import EXAMPLE_CUSTOMER_ID, EXAMPLE_ORDER_ID, EXAMPLE_RESERVATION_ID
from payment import service
from payment.bootstrap import upstream_clients
from payment.config import Config
from payment.model import PaymentRequest
from payment.upstream import clients as upstream

REQUEST = PaymentRequest(order_id=uuid.UUID(EXAMPLE_ORDER_ID), customer_id=uuid.UUID(EXAMPLE_CUSTOMER_ID),
                         reservation_id=uuid.UUID(EXAMPLE_RESERVATION_ID), amount=Decimal("150.00"),
                         currency="USD", payment_method="credit_card")


def sequential(request: PaymentRequest, deps: service.Dependencies) -> None:
    service.validate_order(request, deps.ordering.get_order(request.order_id))
    service.validate_reservation(request, deps.reservations.start_reservation(request.reservation_id).result())


MODES = {"sequential": sequential, "overlapped": service.check_upstreams}


def dependencies(url: str) -> tuple[service.Dependencies, object]:
    """The clients as the service builds them, with the default settings
    (nothing here reads the database or broker settings), and their pool."""
    config = Config(database_url="", kafka_bootstrap_servers="", ordering_service_url=url,
                    reservation_service_url=url)
    session = upstream.new_session(pool_size=config.db_pool_max)
    ordering, reservations = upstream_clients(config, session)
    deps = service.Dependencies(
        store=None, ordering=ordering, reservations=reservations, gateway=None, delivery=None,
        topic_succeeded="payment-succeeded", topic_failed="payment-failed",
        delivery_timeout=Config.kafka_delivery_timeout, pending_timeout=Config.pending_timeout)
    return deps, session


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def set_latency(url: str, latency_ms: int) -> None:
    requests.put(f"{url}/_latency", json={"delayMs": latency_ms}, timeout=5).raise_for_status()


def latency_at_one_connection(url: str, latency_ms: int, calls: int) -> dict:
    set_latency(url, latency_ms)
    deps, session = dependencies(url)
    timings: dict[str, list[float]] = {mode: [] for mode in MODES}
    for check in MODES.values():  # warm-up: connections, imports
        check(REQUEST, deps)
    for _ in range(calls):
        for mode, check in MODES.items():
            started = time.perf_counter()
            check(REQUEST, deps)
            timings[mode].append(time.perf_counter() - started)
    session.close()
    return {mode: {"median_ms": statistics.median(values) * 1000, "p90_ms": percentile(values, 0.9) * 1000,
                   "mean_ms": statistics.fmean(values) * 1000}
            for mode, values in timings.items()}


def cpu_cost(url: str, calls: int, rounds: int = 3) -> dict:
    """Process CPU and wall time per call at 0 ms latency, per mode; the best
    of `rounds` (the least disturbed by the machine's other work)."""
    set_latency(url, 0)
    deps, session = dependencies(url)
    for check in MODES.values():
        check(REQUEST, deps)
    best = {mode: {"cpu_us": float("inf"), "wall_us": float("inf")} for mode in MODES}
    for _round in range(rounds):
        for mode, check in MODES.items():
            cpu, wall = time.process_time(), time.perf_counter()
            for _ in range(calls):
                check(REQUEST, deps)
            cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
            best[mode]["cpu_us"] = min(best[mode]["cpu_us"], cpu / calls * 1e6)
            best[mode]["wall_us"] = min(best[mode]["wall_us"], wall / calls * 1e6)
    session.close()
    best["overlap"] = {key: best["overlapped"][key] - best["sequential"][key] for key in ("cpu_us", "wall_us")}
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--latency-ms", default="0,20,300",
                        help="the sandbox's latency for each run, comma-separated")
    parser.add_argument("--calls", type=int, default=200, help="calls per mode at each latency (fewer above 100 ms)")
    parser.add_argument("--cpu-calls", type=int, default=2000, help="calls per mode and round for the CPU cost")
    args = parser.parse_args()

    port = devstack.free_port()
    sandbox = subprocess.Popen([sys.executable, "-m", "devstack", "sandbox", "--port", str(port)],
                               stdout=subprocess.DEVNULL)
    result = {"latency": {}, "cpu": None}
    try:
        devstack.wait_for_port(port, process=sandbox)
        url = f"http://127.0.0.1:{port}"
        print(f"{'latency':>9}  {'mode':<11} {'median ms':>10} {'p90 ms':>8} {'mean ms':>8}")
        for latency_ms in (int(value) for value in args.latency_ms.split(",")):
            calls = args.calls if latency_ms <= 100 else max(10, min(args.calls, 20))
            timings = latency_at_one_connection(url, latency_ms, calls)
            result["latency"][latency_ms] = {**timings, "calls": calls}
            for mode, row in timings.items():
                print(f"{latency_ms:>7}ms  {mode:<11} {row['median_ms']:>10.2f} {row['p90_ms']:>8.2f} "
                      f"{row['mean_ms']:>8.2f}")
        result["cpu"] = cpu_cost(url, args.cpu_calls)
        print(f"\nthis process at 0 ms ({args.cpu_calls} calls per round, best of 3):")
        for mode, row in result["cpu"].items():
            print(f"  {mode:<11} CPU {row['cpu_us']:>7.1f} µs/call   wall {row['wall_us']:>7.1f} µs/call")
    finally:
        devstack.stop(sandbox)
    print("BENCH_JSON " + json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
