"""What the gateway-fault tests share: waiting, and the end state every
fault must leave: the gateway's one charge, the payment settled to match it,
one event that says so, and the order answered as the truth."""

from __future__ import annotations

import os
import signal
import threading
import time
from concurrent.futures import Future

import requests

from tests.expected_events import assert_event_of
from tests.support import payment_body

# The service's settings in these tests: the reconciler asks about a pending
# payment after PENDING_TIMEOUT_S and passes every RELAY_INTERVAL_S.
PENDING_TIMEOUT_S = 3
RELAY_INTERVAL_S = 0.3
FAST_RECONCILER = {"PENDING_TIMEOUT_S": PENDING_TIMEOUT_S, "OUTBOX_RELAY_INTERVAL_S": RELAY_INTERVAL_S,
                   "OUTBOX_RELAY_GRACE_S": 0.5, "DB_TIMEOUT_S": 1}
# Long enough for any settling the test waits on: the pending age, a few
# passes of the reconciler and the relay.
SETTLE_BOUND_S = PENDING_TIMEOUT_S + 20


def wait_for(predicate, what: str, timeout_s: float = SETTLE_BOUND_S, interval: float = 0.1):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"{what}: not within {timeout_s}s")


def assert_charged_once_and_succeeded(service, database, events, order_id: str):
    """The end state after a fault that struck once the charge was taken."""
    [charge] = database.charges(order_id)
    assert charge["succeeded"]
    settled = wait_for(lambda: database.rows(where="order_id = %s AND status = 'succeeded'", params=(order_id,)),
                       "the reconciler settles the payment")
    [payment] = database.rows(where="order_id = %s", params=(order_id,))
    assert payment["id"] == charge["payment_id"] == settled[0]["id"]
    assert payment["transaction_id"] == charge["transaction_id"]
    wait_for(lambda: not database.rows("outbox", "sent_at IS NULL"), "the event is sent")
    [event] = events.read("payment-succeeded")
    assert_event_of(event, database, payment["id"], payment_body(order_id))
    assert events.read("payment-failed") == []

    replay = service.post(payment_body(order_id))
    assert replay.status_code == 200 and replay.headers["Idempotent-Replayed"] == "true"
    assert replay.json()["payment"]["id"] == str(payment["id"])
    assert replay.json()["payment"]["status"] == "succeeded"
    assert len(database.charges(order_id)) == 1


def post_in_background(service, order_id: str) -> Future:
    """POST a payment for the order on a thread of its own; its reply, or the
    error the client saw, arrives in the Future."""
    attempt: Future = Future()

    def post():
        try:
            attempt.set_result(service.post(payment_body(order_id), 30))
        except Exception as exc:  # handed to whoever waits on the attempt
            attempt.set_exception(exc)

    threading.Thread(target=post, daemon=True).start()
    return attempt


def kill_worker(worker: int, attempt: Future) -> None:
    """SIGKILL the worker serving `attempt`: its client sees the connection drop."""
    os.kill(worker, signal.SIGKILL)
    try:
        reply = attempt.result(30)
    except requests.ConnectionError:
        return
    raise AssertionError(f"the request answered {reply.status_code} although its worker was killed")
