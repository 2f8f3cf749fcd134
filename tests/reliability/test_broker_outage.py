"""No lost event: the broker process dies under a steady stream of payments
and comes back; every committed payment ends with its event on its topic."""

from __future__ import annotations

import os
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.expected_events import assert_as_committed
from tests.support import EventLog, new_order, payment_body
from tests.timing import ceiling

# `make reliability-soak` repeats the outage; the suite runs it once.
CYCLES = int(os.environ.get("RELIABILITY_CYCLES", "1"))
# Short: each payment taken while the broker is away waits this long.
DELIVERY_TIMEOUT_S = 0.5
# A payment's answer may wait for its event at most DELIVERY_TIMEOUT_S.
ANSWER_BOUND_S = ceiling(DELIVERY_TIMEOUT_S)


def pay_stream(service, sandbox, count, amount="150.00"):
    """`count` payments from 4 concurrent clients; each answered 200 in bound."""
    def one(_):
        order_id = new_order(sandbox, total=float(amount))
        started = time.monotonic()
        reply = service.post(payment_body(order_id, amount=amount))
        return order_id, reply, time.monotonic() - started

    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(one, range(count)))
    for order_id, reply, elapsed in results:
        assert reply.status_code == 200, reply.text
        assert elapsed < ANSWER_BOUND_S, elapsed
    return results


# The topics a payment's event goes to: the refund topics play no part here.
PAYMENT_TOPICS = ("payment-succeeded", "payment-failed")


def read_all(bootstrap) -> dict[str, list[dict]]:
    """Every message the payment topics hold, up to a mark made now: the
    offset the broker gives a mark is exact, a restarted broker's
    watermark need not be (tests.support.EventLog)."""
    log = EventLog(bootstrap)
    try:
        return {topic: log.read(topic) for topic in PAYMENT_TOPICS}
    finally:
        log.close()


def wait_until_outbox_drained(database, timeout_s=60):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not database.rows("outbox", "sent_at IS NULL"):
            return
        time.sleep(0.25)
    raise AssertionError(f"{len(database.rows('outbox', 'sent_at IS NULL'))} events still unsent")


@pytest.mark.timeout(120 * CYCLES)
def test_broker_outage_loses_no_event(own_broker, serve, service_env, database, sandbox):
    service = serve({**service_env, "KAFKA_BOOTSTRAP_SERVERS": own_broker.bootstrap},
                       KAFKA_DELIVERY_TIMEOUT_S=DELIVERY_TIMEOUT_S, KAFKA_MESSAGE_TIMEOUT_S=1, OUTBOX_RELAY_GRACE_S=2,
                       OUTBOX_RELAY_INTERVAL_S=0.5, OUTBOX_RELAY_MAX_BACKOFF_S=1,
                       DB_TIMEOUT_S=2)
    seen: dict[str, dict] = {}  # eventId -> the message on the topic
    repeat_orders = []

    def collect():
        """What this broker incarnation holds (an in-memory broker restarts empty)."""
        messages = read_all(own_broker.bootstrap)
        for topic in PAYMENT_TOPICS:
            for message in messages[topic]:
                # A repeat is the same event: same id, same topic, same bytes.
                first = seen.setdefault(message["headers"]["eventId"], {**message, "topic": topic})
                assert (first["topic"], first["raw"]) == (topic, message["raw"])
        return messages

    for cycle in range(CYCLES):
        pay_stream(service, sandbox, 20)
        wait_until_outbox_drained(database)
        messages = collect()
        if repeat_orders:
            assert_commit_order(messages, database, repeat_orders[-1])

        own_broker.kill()
        during = pay_stream(service, sandbox, 20)
        # Two declines of one order while the broker is away: their events
        # must reach the topic in commit order.
        repeat_orders.append(new_order(sandbox, total=150.13))
        for _ in range(2):
            assert service.post(payment_body(repeat_orders[-1], amount="150.13")).status_code == 402
        assert len(database.rows("outbox", "sent_at IS NULL")) >= len(during)
        # Longer than the producer's own retries (KAFKA_MESSAGE_TIMEOUT_S=1):
        # from here on only the outbox relay can bring these events out.
        time.sleep(1.5)
        own_broker.start()

    pay_stream(service, sandbox, 20)
    wait_until_outbox_drained(database)
    assert_commit_order(collect(), database, repeat_orders[-1])

    committed = database.rows("outbox")
    assert len(committed) == CYCLES * 42 + 20
    assert [row for row in committed if str(row["event_id"]) not in seen] == []
    for row in committed:
        message = seen[str(row["event_id"])]
        assert message["topic"] == row["topic"]
        assert_as_committed(message, row)


def assert_commit_order(messages, database, order_id):
    on_topic = [m["headers"]["eventId"] for m in messages["payment-failed"] if m["key"] == order_id]
    committed = [str(r["event_id"]) for r in database.rows("outbox") if r["event_key"] == order_id]
    assert list(dict.fromkeys(on_topic)) == committed
