"""bench/telemetry_cost.py compares like with like: its earlier way and the
service's way log the same fields for a payment and count the same series."""

from __future__ import annotations

import io
import json
import logging
import uuid
from types import SimpleNamespace

from bench.telemetry_cost import OldJsonFormatter, new_request, old_metrics, old_request
from payment.api.telemetry import TelemetryMiddleware
from payment.logs import JsonFormatter
from payment.metrics import Metrics


class Pool:
    def get_stats(self) -> dict:
        return {"pool_size": 3, "pool_available": 2, "pool_max": 4, "requests_waiting": 0}


def lines_and_samples(formatter, request, metrics) -> tuple[list[dict], dict]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    try:
        request()
    finally:
        root.removeHandler(handler)
        root.setLevel(level)
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for family in metrics.registry.collect() for s in family.samples if not s.name.endswith("_created")}
    return [json.loads(line) for line in stream.getvalue().splitlines()], samples


def test_both_ways_log_the_payments_fields_and_count_the_same_series():
    payment = SimpleNamespace(id=uuid.uuid4(), order_id=uuid.uuid4(), status="succeeded", error_code=None)
    old, new = old_metrics(Pool().get_stats), Metrics(pool_stats=Pool().get_stats)
    old_lines, old_samples = lines_and_samples(OldJsonFormatter(), lambda: old_request(old, payment), old)
    new_lines, new_samples = lines_and_samples(
        JsonFormatter(), lambda: new_request(new, TelemetryMiddleware(new), payment), new)

    assert [line["message"] for line in old_lines] == ["payment succeeded", "request"]
    [access] = new_lines
    assert access["message"] == "request"
    promised = {"requestId", "orderId", "paymentId", "paymentStatus", "errorCode",
                "method", "path", "route", "status", "durationMs"}
    assert promised <= set(old_lines[0]) | set(old_lines[1]) and promised <= set(access)
    assert access["paymentId"] == old_lines[0]["paymentId"] == str(payment.id)

    def counts(samples):  # sums and buckets hold the measured durations
        return {key: value for key, value in samples.items() if not key[0].endswith(("_sum", "_bucket"))}
    assert counts(old_samples) == counts(new_samples)
