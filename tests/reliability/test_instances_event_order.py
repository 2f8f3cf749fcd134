"""Three service instances on one database, each with its workers' relays:
a broker outage leaves a backlog several relay batches long, and once the
broker is back every event reaches its topic, each order's events in commit
order, however the relays share the work."""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal

from confluent_kafka import Consumer, Producer, TopicPartition

from payment import schemas
from tests.expected_events import assert_as_committed
from tests.support import EVENT_SCHEMAS, TOPICS, is_mark, new_order, payment_body, put_mark

BATCH = 2
ORDERS = 16
# Per order, while the broker is away: two declines, then the success.
ATTEMPTS = (("150.13", 402), ("150.66", 402), ("150.00", 200))


def read_all(bootstrap) -> dict[str, list[dict]]:
    """Every message of the two topics, from every partition. A producer that
    reaches the restarted in-memory broker before the test has created the
    topics again gets them auto-created, with the broker's own partition
    count: each key still lands in one partition, in its order."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "tests", "enable.auto.commit": False,
                         "fetch.wait.max.ms": 10})
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 0})
    try:
        topics = consumer.list_topics(timeout=10).topics
        messages = {}
        for topic in TOPICS:
            messages[topic] = []
            for partition in topics[topic].partitions:
                messages[topic] += read_partition(consumer, producer, TopicPartition(topic, partition))
        return messages
    finally:
        producer.flush(10)
        consumer.close()


def read_partition(consumer, producer, partition: TopicPartition) -> list[dict]:
    """Up to a mark produced now (tests.support.EventLog): the offset the
    broker gives it is exact, where the watermark of a restarted broker
    may lie behind what it holds."""
    end = put_mark(producer, partition.topic, partition.partition)
    partition.offset = consumer.get_watermark_offsets(partition, timeout=10)[0]
    consumer.assign([partition])
    messages = []
    while True:
        message = consumer.poll(10)
        assert message is not None, f"timed out reading {partition}"
        assert message.error() is None, message.error()
        if message.offset() >= end:
            break
        if is_mark(message):
            continue
        value = message.value().decode()
        schemas.validator(EVENT_SCHEMAS[partition.topic]).validate(json.loads(value, parse_float=Decimal))
        messages.append({"key": message.key().decode(), "raw": value,
                         "headers": {k: v.decode() for k, v in message.headers()}})
    consumer.unassign()
    return messages


def wait_until_outbox_drained(database, timeout_s=60):
    deadline = time.monotonic() + timeout_s
    while database.rows("outbox", "sent_at IS NULL"):
        assert time.monotonic() < deadline, f"{len(database.rows('outbox', 'sent_at IS NULL'))} events still unsent"
        time.sleep(0.25)


def pay_in_rounds(instances, sandbox, orders):
    """Round by round, every order at once, spread over the instances, so
    that one order's events lie far apart in the outbox, in different batches."""
    with ThreadPoolExecutor(max_workers=6) as pool:
        for amount, status in ATTEMPTS:
            def attempt(n, amount=amount):
                sandbox.put_order(orders[n], total=float(amount))
                return instances[n % len(instances)].post(payment_body(orders[n], amount=amount))
            replies = list(pool.map(attempt, range(len(orders))))
            assert [r.status_code for r in replies] == [status] * len(orders), [r.text for r in replies][:2]


def first_seen_order(messages: list[dict]) -> dict[str, list[str]]:
    """Per key, event ids in the order they first appear on the topic (a
    repeat of an event already delivered does not reorder anything)."""
    per_key: dict[str, list[str]] = {}
    for message in messages:
        ids = per_key.setdefault(message["key"], [])
        if message["headers"]["eventId"] not in ids:
            ids.append(message["headers"]["eventId"])
    return per_key


def test_three_instances_drain_an_outage_backlog_in_commit_order_per_order(own_broker, serve_together, service_env,
                                                                           database, sandbox):
    env = {**service_env, "KAFKA_BOOTSTRAP_SERVERS": own_broker.bootstrap}
    # A short delivery timeout: each payment taken while the broker is away waits that long.
    instances = serve_together(3, env, workers=2, KAFKA_DELIVERY_TIMEOUT_S=0.5, KAFKA_MESSAGE_TIMEOUT_S=1,
                               OUTBOX_RELAY_GRACE_S=2, OUTBOX_RELAY_INTERVAL_S=0.2, OUTBOX_RELAY_MAX_BACKOFF_S=1,
                               OUTBOX_RELAY_BATCH_SIZE=BATCH, DB_TIMEOUT_S=2)
    orders = [new_order(sandbox) for _ in range(ORDERS)]

    own_broker.kill()
    pay_in_rounds(instances, sandbox, orders)
    backlog = database.rows("outbox", "sent_at IS NULL")
    # More than a batch for each of the six relays (three instances, two workers).
    assert len(backlog) == ORDERS * len(ATTEMPTS) > 6 * BATCH
    # Past the producers' own retries (KAFKA_MESSAGE_TIMEOUT_S=1): from here
    # on only the relays can bring these events out.
    time.sleep(1.5)
    own_broker.start()
    wait_until_outbox_drained(database)

    messages = read_all(own_broker.bootstrap)
    committed = sorted(database.rows("outbox"), key=lambda row: row["seq"])
    seen = {m["headers"]["eventId"]: m["raw"] for topic in messages.values() for m in topic}
    # Every event, with the bytes committed, on its topic, its key and headers as committed.
    assert {str(row["event_id"]): row["payload"] for row in committed} == seen
    for topic, on_topic in messages.items():
        rows = {str(row["event_id"]): row for row in committed if row["topic"] == topic}
        for message in on_topic:
            assert_as_committed(message, rows[message["headers"]["eventId"]])
    for topic, on_topic in messages.items():
        expected: dict[str, list[str]] = {}
        for row in committed:
            if row["topic"] == topic:
                expected.setdefault(row["event_key"], []).append(str(row["event_id"]))
        assert first_seen_order(on_topic) == expected, topic
    # The relays of more than one instance shared the backlog.
    senders = [n for n, served in enumerate(instances) if "outbox relay sent" in served.log()]
    assert len(senders) > 1, senders
