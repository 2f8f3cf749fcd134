"""The measuring loop both floors share: threads paying order after order,
a warm-up, then a measured window; `BENCH_START` when it opens and one
`BENCH_JSON {...}` line when it closes (payments/s, latency percentiles in
microseconds, errors)."""

from __future__ import annotations

import argparse
import json
import logging
import threading
import time
import uuid
from typing import Callable


def floor_arguments(description: str, threads: int) -> argparse.ArgumentParser:
    """The command line both floors take (bench/run.py passes the same)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--threads", type=int, default=threads)
    parser.add_argument("--duration", type=float, default=20)
    parser.add_argument("--warmup", type=float, default=3)
    parser.add_argument("--run-id", default=uuid.uuid4().hex[:8])
    return parser


def measure(pay: Callable[[str], None], *, threads: int, duration: float, warmup: float, run_id: str,
            log: logging.Logger) -> dict:
    """Run `pay(order_id)` in `threads` threads until the window closes; each
    order id is a fresh GUID made from `run_id` (8 hex digits)."""
    start = time.monotonic()
    measure_from, deadline = start + warmup, start + warmup + duration
    latencies: list[list[float]] = [[] for _ in range(threads)]
    errors = [0] * threads

    def worker(index: int) -> None:
        counter = 0
        mine = latencies[index]
        while True:
            began = time.monotonic()
            if began >= deadline:
                return
            counter += 1
            try:
                pay(f"{run_id}-{index:04x}-4000-8000-{counter:012x}")
            except Exception:
                if not any(errors):
                    log.exception("payment failed")  # the first one; the count says the rest
                if began >= measure_from:
                    errors[index] += 1
                continue
            ended = time.monotonic()
            if began >= measure_from and ended <= deadline:
                mine.append(ended - began)

    workers = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(threads)]
    for thread in workers:
        thread.start()
    time.sleep(max(0.0, measure_from - time.monotonic()))
    print("BENCH_START", flush=True)  # the measured window opens
    for thread in workers:
        thread.join()
    all_latencies = sorted(x for mine in latencies for x in mine)
    count = len(all_latencies)

    def pct(p: float) -> int:
        return int(all_latencies[min(count - 1, int(count * p / 100))] * 1e6) if count else 0

    result = {"payments": count, "duration_s": duration, "rate": count / duration,
              "errors": sum(errors), "p50_us": pct(50), "p95_us": pct(95), "p99_us": pct(99),
              "threads": threads}
    print("BENCH_JSON " + json.dumps(result), flush=True)
    return result
