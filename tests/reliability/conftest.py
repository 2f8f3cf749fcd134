from __future__ import annotations

import pytest

import devstack
from payment.db import migrations
from payment.outbox.producer import ensure_topics
from tests.reliability.postgres import StoppablePostgres
from tests.support import BROKER_STOP_S, TOPICS, parametrize_db_route


class RestartableBroker:
    """A broker process of the test's own, stopped and started on one port."""

    def __init__(self, log_path):
        self.port = devstack.free_port()
        self.bootstrap = f"127.0.0.1:{self.port}"
        self.log_path = log_path
        self.process = None

    def start(self):
        # start_broker stops a process that never listens; one that does is
        # held here before the topics are made, so `stop` reaches it.
        self.process = devstack.start_broker(self.port, self.log_path)
        # An in-memory broker comes back empty: the platform's topics exist
        # again before traffic resumes, as they would on a real cluster.
        ensure_topics(self.bootstrap, list(TOPICS), partitions=1)

    def kill(self):
        self.process.kill()
        self.process.wait()

    def stop(self):
        devstack.stop(self.process, timeout=BROKER_STOP_S)


@pytest.fixture
def own_broker(tmp_path):
    broker = RestartableBroker(tmp_path / "tansu.log")
    try:
        broker.start()
        yield broker
    finally:
        broker.stop()


@pytest.fixture(scope="session")
def postgres_template():
    """A data directory initialised and migrated once, then stopped cleanly:
    each test's own server starts from a copy (a copy takes a fraction of a
    second, initdb and the migrations several)."""
    template = StoppablePostgres()
    try:
        template.initialise()
        template.start()
        migrations.migrate(template.url)
        template.stop(mode="fast")
        yield template.pgdata
    finally:
        template.close()


@pytest.fixture
def own_postgres(db_route, postgres_template, request):
    """A server of the test's own, migrated; on the pgbouncer route `url`
    (the service's) reaches it through a PgBouncer of its own, which stays up
    while the server stops. The test reads it at `direct_url`."""
    server = StoppablePostgres()
    request.addfinalizer(server.close)  # before it starts: a start that fails is stopped too
    server.initialise(template=postgres_template)
    server.start()
    server.direct_url = server.url
    if db_route == "pgbouncer":
        bouncer = devstack.start_pgbouncer(server.url)
        request.addfinalizer(bouncer.stop)
        server.url = bouncer.url_for(server.url)
    return server


def pytest_generate_tests(metafunc):
    # Every test here that reaches the database runs twice: directly, and
    # through a transaction-pooling PgBouncer (tests/conftest.py, db_route);
    # those marked route_independent directly only.
    parametrize_db_route(metafunc)
