"""The pool gauges are sampled at most once a second per worker, and at every
scrape: a hand-written clock and pool, in one process (no multiprocess dir)."""

from __future__ import annotations

from payment.metrics import POOL_SAMPLE_INTERVAL_S, Metrics


class Clock:
    def __init__(self, now: float = 1000.0):
        self.now = now

    def __call__(self) -> float:
        return self.now


class Pool:
    """get_stats as psycopg_pool answers it; counts how often it is asked."""

    def __init__(self):
        self.asked = 0
        self.size, self.available, self.max, self.waiting = 2, 1, 4, 0

    def get_stats(self) -> dict:
        self.asked += 1
        return {"pool_size": self.size, "pool_available": self.available, "pool_max": self.max,
                "requests_waiting": self.waiting}


def request(metrics: Metrics) -> None:
    metrics.request_done("/payments", "POST", 200, 0.01)


def gauge(metrics: Metrics, name: str, **labels) -> float:
    return metrics.registry.get_sample_value(name, labels)


def test_the_first_request_samples_and_the_next_ones_within_the_second_do_not():
    clock, pool = Clock(), Pool()
    metrics = Metrics(pool_stats=pool.get_stats, clock=clock)
    request(metrics)
    assert pool.asked == 1
    assert gauge(metrics, "payment_db_pool_connections", state="in_use") == 1
    assert gauge(metrics, "payment_db_pool_connections", state="idle") == 1
    assert gauge(metrics, "payment_db_pool_max_connections") == 4
    assert gauge(metrics, "payment_db_pool_requests_waiting") == 0

    pool.available, pool.waiting = 0, 3
    for elapsed in (0.0, 0.5, POOL_SAMPLE_INTERVAL_S - 0.001):
        clock.now = 1000.0 + elapsed
        request(metrics)
    assert pool.asked == 1
    assert gauge(metrics, "payment_db_pool_connections", state="in_use") == 1  # the first sample's

    clock.now = 1000.0 + POOL_SAMPLE_INTERVAL_S
    request(metrics)
    assert pool.asked == 2
    assert gauge(metrics, "payment_db_pool_connections", state="in_use") == 2
    assert gauge(metrics, "payment_db_pool_requests_waiting") == 3
    assert gauge(metrics, "payment_http_requests_total", route="/payments", method="POST", status="200") == 5


def test_a_scrape_always_samples_and_restarts_the_second():
    clock, pool = Clock(), Pool()
    metrics = Metrics(pool_stats=pool.get_stats, clock=clock)
    request(metrics)
    pool.available = 2
    clock.now += 0.2
    metrics.exposition()
    assert pool.asked == 2
    assert gauge(metrics, "payment_db_pool_connections", state="in_use") == 0

    clock.now += POOL_SAMPLE_INTERVAL_S - 0.1  # over a second since the first request, not since the scrape
    request(metrics)
    assert pool.asked == 2
    clock.now += 0.1
    request(metrics)
    assert pool.asked == 3

