"""The release step: the schema migrations, then the topics, once per
deployment before the service starts (`python -m payment migrate`)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

from payment.config import Config
from payment.db import migrations
from payment.outbox.producer import check_topics, ensure_topics

T = TypeVar("T")


class StartupError(RuntimeError):
    """A dependency could not be prepared at start-up; the message names it."""


def prepare(config: Config, wait_s: float = 30.0) -> migrations.Outcome:
    """The schema migrations, then the topics (created, or with
    KAFKA_TOPIC_CREATE=false found). Waits up to `wait_s` for each, as both
    may start alongside; a migration that fails or was changed stops it at
    once, since waiting cannot mend it."""
    outcome = _retry(lambda: migrations.migrate(config.database_url, app_role=config.db_app_role), wait_s,
                     "payment database is unreachable")
    topics = config.topics
    if config.kafka_topic_create:
        _retry(lambda: ensure_topics(config.kafka_bootstrap_servers, topics,
                                     partitions=config.kafka_topic_partitions,
                                     replication_factor=config.kafka_topic_replication_factor,
                                     settings=config.kafka_settings),
               wait_s, "Kafka broker is unreachable")
    else:
        _retry(lambda: check_topics(config.kafka_bootstrap_servers, topics, settings=config.kafka_settings),
               wait_s, "Kafka broker is unreachable or the topics do not exist (KAFKA_TOPIC_CREATE is false)")
    return outcome


def _retry(step: Callable[[], T], wait_s: float, failure: str) -> T:
    deadline = time.monotonic() + wait_s
    while True:
        try:
            return step()
        except migrations.MigrationError as exc:
            raise StartupError(str(exc)) from None
        except Exception as exc:
            if time.monotonic() >= deadline:
                raise StartupError(f"{failure} ({type(exc).__name__})") from None
            time.sleep(0.5)
