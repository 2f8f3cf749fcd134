from __future__ import annotations

import os

import pytest

from payment import db, devstack
from payment.kafka import ensure_topics
from tests.reliability.postgres import StoppablePostgres
from tests.support import TOPICS, Served


class RestartableBroker:
    """A broker process of the test's own, stopped and started on one port."""

    def __init__(self, log_path):
        self.port = devstack.free_port()
        self.bootstrap = f"127.0.0.1:{self.port}"
        self.log_path = log_path
        self.process = None
        self.start()

    def start(self):
        self.process = devstack.start_broker(self.port, self.log_path)
        # An in-memory broker comes back empty: the platform's topics exist
        # again before traffic resumes, as they would on a real cluster.
        ensure_topics(self.bootstrap, list(TOPICS))

    def kill(self):
        self.process.kill()
        self.process.wait()


@pytest.fixture
def own_broker(tmp_path):
    broker = RestartableBroker(tmp_path / "tansu.log")
    yield broker
    devstack.stop(broker.process)


@pytest.fixture
def own_postgres():
    server = StoppablePostgres()
    db.apply_schema(server.url)
    yield server
    server.close()


@pytest.fixture
def services():
    """services(env, workers=2, **more_env): instances of `python -m payment
    serve`, stopped after the test."""
    started = []

    def start(env, workers=2, **extra):
        full_env = {**os.environ, **env, "WEB_CONCURRENCY": str(workers),
                    **{name: str(value) for name, value in extra.items()}}
        full_env.pop("PROMETHEUS_MULTIPROC_DIR", None)
        started.append(Served(full_env))
        return started[-1]

    yield start
    for service in started:
        service.stop()
