"""No lost event: the broker process dies under a steady stream of payments
and comes back; every committed payment ends with its event on its topic."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

from tests.support import EventLog, new_order, payment_body

DELIVERY_TIMEOUT_S = 2.0
# A payment's answer may wait for its event at most DELIVERY_TIMEOUT_S.
ANSWER_BOUND_S = DELIVERY_TIMEOUT_S + 1.5


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


def read_all(bootstrap) -> dict[str, list[dict]]:
    log = EventLog(bootstrap)
    try:
        return log.all(settle_s=2)
    finally:
        log.close()


def wait_until_outbox_drained(database, timeout_s=60):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not database.rows("outbox", "sent_at IS NULL"):
            return
        time.sleep(0.25)
    raise AssertionError(f"{len(database.rows('outbox', 'sent_at IS NULL'))} events still unsent")


def test_broker_outage_loses_no_event(own_broker, services, service_env, database, sandbox):
    service = services({**service_env, "KAFKA_BOOTSTRAP_SERVERS": own_broker.bootstrap},
                       KAFKA_DELIVERY_TIMEOUT_S=DELIVERY_TIMEOUT_S, KAFKA_MESSAGE_TIMEOUT_S=1, OUTBOX_RELAY_GRACE_S=2,
                       OUTBOX_RELAY_INTERVAL_S=0.5, OUTBOX_RELAY_MAX_BACKOFF_S=1,
                       DB_TIMEOUT_S=2)

    pay_stream(service, sandbox, 20)
    wait_until_outbox_drained(database)
    before = read_all(own_broker.bootstrap)

    own_broker.kill()
    during = pay_stream(service, sandbox, 20)
    # Two declines of one order while the broker is away: their events must
    # reach the topic in commit order.
    repeat_order = new_order(sandbox, total=150.13)
    for _ in range(2):
        assert service.post(payment_body(repeat_order, amount="150.13")).status_code == 402
    assert len(database.rows("outbox", "sent_at IS NULL")) >= len(during)
    # Longer than the producer's own retries (KAFKA_MESSAGE_TIMEOUT_S=1): from
    # here on only the outbox relay can bring these events out.
    time.sleep(1.5)

    own_broker.start()
    pay_stream(service, sandbox, 20)
    wait_until_outbox_drained(database)
    after = read_all(own_broker.bootstrap)

    committed = database.rows("outbox")
    assert len(committed) == 62
    seen = {}
    for topic in ("payment-succeeded", "payment-failed"):
        for message in before[topic] + after[topic]:
            event_id = message["headers"]["eventId"]
            # A repeat is the same event: same id, same bytes.
            assert seen.setdefault(event_id, message["raw"]) == message["raw"]
    missing = [row for row in committed if str(row["event_id"]) not in seen]
    assert missing == []
    for row in committed:
        assert seen[str(row["event_id"])] == row["payload"]

    failed_for_repeat = [m["headers"]["eventId"] for m in after["payment-failed"] if m["key"] == repeat_order]
    expected_order = [str(r["event_id"]) for r in committed if r["event_key"] == repeat_order]
    assert list(dict.fromkeys(failed_for_repeat)) == expected_order
