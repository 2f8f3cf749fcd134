"""No stranded payment: a worker killed between the pending row and the
outcome leaves a pending payment, resolved after PENDING_TIMEOUT_S."""

from __future__ import annotations

import os
import signal
import time
from concurrent.futures import ThreadPoolExecutor

import requests

from tests.support import new_order, payment_body


def wait_for(predicate, timeout_s=20, interval=0.1):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError("condition not met in time")


def test_killed_worker_leaves_a_payment_that_is_failed_later(serve, service_env, database, sandbox, events):
    service = serve(service_env, workers=1, SIMULATOR_LATENCY_MS=1500, PENDING_TIMEOUT_S=2,
                       OUTBOX_RELAY_GRACE_S=0.5, OUTBOX_RELAY_INTERVAL_S=0.3)
    order_id = new_order(sandbox)
    [worker] = service.worker_pids()

    with ThreadPoolExecutor(max_workers=1) as pool:
        attempt = pool.submit(service.post, payment_body(order_id))
        wait_for(lambda: database.rows())  # the pending row is committed, the charge under way
        os.kill(worker, signal.SIGKILL)
        try:
            attempt.result()
        except requests.ConnectionError:
            pass  # the client saw its connection drop, as it would
    [stranded] = database.rows()
    assert stranded["status"] == "pending"

    # Within the pending timeout the order stays blocked: no second charge.
    assert service.post(payment_body(order_id)).status_code == 409

    failed = wait_for(lambda: database.rows(where="status = 'failed'"), timeout_s=20)
    assert failed[0]["id"] == stranded["id"]
    assert failed[0]["error_code"] == "PROCESSING_INTERRUPTED"
    assert failed[0]["error_message"] == "Payment processing was interrupted"
    assert failed[0]["failure_reason"] == "No outcome was recorded within 2 seconds of the attempt"

    wait_for(lambda: not database.rows("outbox", "sent_at IS NULL"))
    [event] = events.read("payment-failed")
    assert event["value"]["paymentId"] == str(stranded["id"])
    assert event["value"]["errorCode"] == "PROCESSING_INTERRUPTED"

    # The order can be paid again.
    retry = service.post(payment_body(order_id))
    assert retry.status_code == 200
    assert retry.json()["payment"]["id"] != str(stranded["id"])
