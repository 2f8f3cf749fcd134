"""Topic set-up against the real broker: the broker's own defaults unless
told otherwise (KIP-464's -1), a warning for replication factor 1, and with
KAFKA_TOPIC_CREATE=false a start that waits for the platform's topics."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import uuid

import pytest
from confluent_kafka.admin import AdminClient

from payment.outbox.producer import TopicsMissing, check_topics, ensure_topics


def fresh(name: str) -> str:
    return f"{name}-{uuid.uuid4().hex[:8]}"


def partitions(broker: str, topic: str) -> int:
    return len(AdminClient({"bootstrap.servers": broker}).list_topics(topic, timeout=10).topics[topic].partitions)


def test_by_default_the_broker_decides_partitions_and_replication(broker, caplog):
    topic = fresh("defaults")
    with caplog.at_level(logging.WARNING, logger="payment.outbox.producer"):
        ensure_topics(broker, [topic])
    assert partitions(broker, topic) >= 1
    assert not [r for r in caplog.records if "replication factor 1" in r.getMessage()]


def test_explicit_partitions_and_a_warning_for_replication_factor_one(broker, caplog):
    topic = fresh("explicit")
    with caplog.at_level(logging.WARNING, logger="payment.outbox.producer"):
        ensure_topics(broker, [topic], partitions=2, replication_factor=1)
        ensure_topics(broker, [topic], partitions=2, replication_factor=1)  # exists: left as it is
    assert partitions(broker, topic) == 2
    assert any("replication factor 1" in r.getMessage() for r in caplog.records)


def test_check_topics_names_the_missing_ones(broker):
    present, absent = fresh("present"), fresh("absent")
    ensure_topics(broker, [present], partitions=1)
    check_topics(broker, [present])
    with pytest.raises(TopicsMissing, match=absent):
        check_topics(broker, [present, absent])


def migrate(service_env, **extra) -> subprocess.CompletedProcess:
    env = {**os.environ, **service_env, **extra}
    return subprocess.run([sys.executable, "-m", "payment", "migrate", "--wait", "1"], env=env,
                          capture_output=True, text=True, timeout=60)


@pytest.mark.route_independent
def test_with_creation_off_start_up_needs_the_platforms_topics(service_env, broker):
    succeeded, failed = fresh("succeeded"), fresh("failed")
    names = {"KAFKA_TOPIC_PAYMENT_SUCCEEDED": succeeded, "KAFKA_TOPIC_PAYMENT_FAILED": failed}

    refused = migrate(service_env, KAFKA_TOPIC_CREATE="false", **names)
    assert refused.returncode != 0
    # The failure is the last line, JSON like the others, on stdout with them.
    failure = json.loads(refused.stdout.splitlines()[-1])
    assert failure["level"] == "ERROR" and refused.stderr == ""
    assert "the topics do not exist (KAFKA_TOPIC_CREATE is false)" in failure["message"]
    assert AdminClient({"bootstrap.servers": broker}).list_topics(timeout=10).topics.keys().isdisjoint(
        {succeeded, failed})

    ensure_topics(broker, [succeeded, failed], partitions=1)
    assert migrate(service_env, KAFKA_TOPIC_CREATE="false", **names).returncode == 0
