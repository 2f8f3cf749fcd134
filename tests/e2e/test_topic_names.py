"""Topic names set by the environment (KAFKA_TOPIC_PAYMENT_SUCCEEDED,
KAFKA_TOPIC_PAYMENT_FAILED, KAFKA_TOPIC_PAYMENT_REFUNDED,
KAFKA_TOPIC_PAYMENT_REFUND_FAILED), against `python -m payment serve`: the
service creates the renamed topics, each event goes to its renamed topic,
whole, and nothing to the default ones."""

from __future__ import annotations

import json
import uuid
from decimal import Decimal

import requests
from confluent_kafka import Consumer, TopicPartition

from payment import jsonio, schemas
from tests.expected_events import REFUND_DECLINED, assert_event_of, assert_refund_event_of
from tests.support import EVENT_SCHEMAS, NO_EVENTS, new_order, payment_body

INSUFFICIENT_FUNDS = ("INSUFFICIENT_FUNDS", "Card declined due to insufficient funds",
                      "The payment gateway returned error code 51")


def read_topic(bootstrap: str, topic: str, schema: str) -> list[dict]:
    """Every message of the topic, from every partition, as tests.support.EventLog reads them."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "tests", "enable.auto.commit": False})
    try:
        messages = []
        for partition in consumer.list_topics(topic, timeout=10).topics[topic].partitions:
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=10)
            if high <= low:
                continue
            consumer.assign([TopicPartition(topic, partition, low)])
            for _ in range(high - low):
                message = consumer.poll(10)
                assert message is not None and message.error() is None, f"reading {topic}"
                raw = message.value().decode()
                value = json.loads(raw, parse_float=Decimal)
                schemas.validator(schema).validate(value)
                messages.append({"key": message.key().decode(), "raw": raw, "value": value,
                                 "headers": {k: v.decode() for k, v in (message.headers() or [])}})
            consumer.unassign()
        return messages
    finally:
        consumer.close()


def test_events_go_to_the_topics_the_environment_names(serve, service_env, broker, database, sandbox, events):
    suffix = uuid.uuid4().hex[:8]
    succeeded_topic, failed_topic = f"payments-ok-{suffix}", f"payments-ko-{suffix}"
    refunded_topic, refund_failed_topic = f"refunds-ok-{suffix}", f"refunds-ko-{suffix}"
    served = serve(service_env, workers=1, KAFKA_TOPIC_PAYMENT_SUCCEEDED=succeeded_topic,
                   KAFKA_TOPIC_PAYMENT_FAILED=failed_topic, KAFKA_TOPIC_PAYMENT_REFUNDED=refunded_topic,
                   KAFKA_TOPIC_PAYMENT_REFUND_FAILED=refund_failed_topic)

    paid_body = payment_body(new_order(sandbox))
    paid = served.post(paid_body)
    declined_body = payment_body(new_order(sandbox, total=42.66), amount="42.66")
    declined = served.post(declined_body)
    assert (paid.status_code, declined.status_code) == (200, 402)
    payment = paid.json()["payment"]
    refunds = [requests.post(f"{served.url}/payments/{payment['id']}/refunds", data=jsonio.dumps(body), timeout=15,
                             headers={"Content-Type": "application/json", "Idempotency-Key": key})
               for body, key in (({"amount": Decimal("10.00")}, "ok"), ({"amount": Decimal("1.77")}, "ko"))]
    assert [r.status_code for r in refunds] == [200, 402]
    served.wait_for(lambda: not database.rows("outbox", "sent_at IS NULL"), "the events confirmed", timeout=15)

    [succeeded] = read_topic(broker, succeeded_topic, EVENT_SCHEMAS["payment-succeeded"])
    assert_event_of(succeeded, database, paid.json()["payment"]["id"], paid_body)
    [failed] = read_topic(broker, failed_topic, EVENT_SCHEMAS["payment-failed"])
    assert_event_of(failed, database, declined.json()["payment"]["id"], declined_body, failure=INSUFFICIENT_FUNDS)
    [refunded] = read_topic(broker, refunded_topic, EVENT_SCHEMAS["payment-refunded"])
    assert_refund_event_of(refunded, database, refunds[0].json()["refund"]["id"], payment, amount="10.00",
                           amount_refunded="10.00")
    [refund_failed] = read_topic(broker, refund_failed_topic, EVENT_SCHEMAS["payment-refund-failed"])
    assert_refund_event_of(refund_failed, database, refunds[1].json()["refund"]["id"], payment, amount="1.77",
                           failure=REFUND_DECLINED)
    assert sorted(row["topic"] for row in database.rows("outbox")) == sorted(
        [succeeded_topic, failed_topic, refunded_topic, refund_failed_topic])
    assert events.all(settle_s=1) == NO_EVENTS
