"""Helpers shared by the integration and end-to-end tests: the real broker's
topics read back, the database looked into, the sandbox arranged over HTTP."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import threading
import time
import uuid
from contextlib import contextmanager
from decimal import Decimal
from pathlib import Path

import psycopg
import requests
from confluent_kafka import Consumer, Producer, TopicPartition
from psycopg.rows import dict_row

from devstack import free_port, stop, wait_for_port
from devstack.sandbox import EXAMPLE_CUSTOMER_ID
from payment import jsonio, schemas
from payment.db.pool import open_pool
from payment.db.store import PaymentStore
from payment.model import ChargeResult

ROOT = Path(__file__).resolve().parents[1]
TOPICS = ("payment-succeeded", "payment-failed", "payment-refunded", "payment-refund-failed")
# What EventLog.all() reads when nothing was produced.
NO_EVENTS = {topic: [] for topic in TOPICS}
# The in-memory broker has nothing to keep, and its graceful stop waits
# 5 s for connected clients: killed if it is not gone by then.
BROKER_STOP_S = 0.5
EVENT_SCHEMAS = {"payment-succeeded": "payment-succeeded.schema.json",
                 "payment-failed": "payment-failed.schema.json",
                 "payment-refunded": "payment-refunded.schema.json",
                 "payment-refund-failed": "payment-refund-failed.schema.json"}


# The header of the tests' own mark messages (EventLog), which every reader
# of the topics in the tests passes over.
MARK_HEADER = "x-test-mark"


def is_mark(message) -> bool:
    return any(key == MARK_HEADER for key, _ in (message.headers() or []))


def put_mark(producer: Producer, topic: str, partition: int = 0) -> int:
    """Produce a mark message to the partition; the offset the broker gave
    it, which lies past everything the partition held before."""
    delivered = []
    producer.produce(topic, value=b"", partition=partition, headers={MARK_HEADER: b"1"},
                     on_delivery=lambda error, message: delivered.append((error, message)))
    producer.flush(10)
    assert len(delivered) == 1 and delivered[0][0] is None, f"no mark on {topic} [{partition}]: {delivered}"
    return delivered[0][1].offset()


class EventLog:
    """Messages produced to the payment topics since `mark()`, read back from
    the broker (manual assignment: no consumer group to wait for).

    Where a topic ends is learnt by producing a mark message to it (a
    header-only message, skipped by every reader here) and taking the offset
    the broker gave it, not from the high watermark: the Tansu broker
    reports, after a batch of several records, a watermark just past that
    batch's first record until the next batch lands, so a watermark taken
    right after a relay's batch sits behind records already there."""

    def __init__(self, bootstrap: str):
        self.consumer = Consumer({
            "bootstrap.servers": bootstrap, "group.id": "tests", "enable.auto.commit": False,
            # A fetch still waiting at the broker holds up the next watermark
            # query on the same connection: by default up to 500 ms per read.
            "fetch.wait.max.ms": 10,
        })
        self.producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 0})
        # The topics' metadata, fetched now: librdkafka asks for a topic it
        # has not seen only on its once-a-second topic scan, so each first
        # read of a topic waited up to a second for its partition's leader.
        # From its cache, a topic's first assignment starts fetching at once.
        self.consumer.list_topics(timeout=10)
        self.start: dict[str, int] = {}

    def _end(self, topic: str) -> int:
        """The offset just past everything the topic holds now."""
        return put_mark(self.producer, topic)

    def mark(self) -> None:
        self.start = {topic: self._end(topic) for topic in TOPICS}

    def read(self, topic: str, settle_s: float = 0) -> list[dict]:
        """Every message since mark(): {key, headers, raw, value}; the value is
        parsed with Decimal amounts and checked against its schema file.
        Reads up to a mark made now, then `settle_s` more of silence (an
        event may still be on its way)."""
        end = self._end(topic)
        start = self.start.get(topic, 0)
        self.consumer.assign([TopicPartition(topic, 0, start)])
        messages = []
        reached = False
        while True:
            message = self.consumer.poll(settle_s if reached else 10)
            if message is None:
                assert reached, f"timed out reading {topic}"
                break
            assert message.error() is None, message.error()
            reached = reached or message.offset() >= end
            if is_mark(message):
                continue
            raw = message.value().decode()
            value = json.loads(raw, parse_float=Decimal)
            schemas.validator(EVENT_SCHEMAS[topic]).validate(value)
            messages.append({
                "key": message.key().decode(),
                "headers": {k: v.decode() for k, v in (message.headers() or [])},
                "raw": raw,
                "value": value,
            })
        self.consumer.unassign()
        return messages

    def all(self, settle_s: float = 0) -> dict[str, list[dict]]:
        return {topic: self.read(topic, settle_s) for topic in TOPICS}

    def close(self) -> None:
        self.producer.flush(10)
        self.consumer.close()


class Database:
    def __init__(self, url: str):
        self.url = url

    # Tables, and the simulator ledger's views (simulator_charges, simulator_voids).
    TABLES = {"payments": "created_at", "outbox": "created_at", "simulator_charges": "charged_at",
              "simulator_voids": "voided_at", "simulator_ledger": "coalesce(charged_at, voided_at)",
              "payment_checks": "payment_id", "webhook_events": "received_at",
              "refunds": "created_at", "refund_checks": "refund_id", "simulator_refunds": "refunded_at",
              "simulator_refund_voids": "voided_at"}

    def rows(self, table: str = "payments", where: str = "TRUE", params=()) -> list[dict]:
        order = self.TABLES[table]
        with psycopg.connect(self.url, row_factory=dict_row) as conn:
            return conn.execute(
                f"SELECT * FROM bc_payment.{table} WHERE {where} ORDER BY {order}", params).fetchall()

    def charges(self, order_id) -> list[dict]:
        """What the simulated processor charged for the order, in its own ledger."""
        return self.rows("simulator_charges", "order_id = %s", (str(order_id),))

    def outbox_once_sent(self, timeout: float = 5) -> list[dict]:
        """The outbox rows, once every one is marked sent: a confirmed event
        is marked soon after the answer, by the process's marker
        (payment/outbox/marker.py), not before it. Fails past `timeout`."""
        deadline = time.monotonic() + timeout
        while True:
            rows = self.rows("outbox")
            if all(row["sent_at"] is not None for row in rows):
                return rows
            if time.monotonic() > deadline:
                raise AssertionError(f"{sum(r['sent_at'] is None for r in rows)} of {len(rows)} events"
                                     f" not marked sent within {timeout}s")
            time.sleep(0.02)

    def execute(self, sql: str, params=()) -> None:
        with psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute(sql, params)

    def execute_rows(self, sql: str, params=()) -> list[dict]:
        with psycopg.connect(self.url, autocommit=True, row_factory=dict_row) as conn:
            return conn.execute(sql, params).fetchall()

    def refunds(self, payment_id) -> list[dict]:
        """The payment's refunds as the service recorded them, oldest first."""
        return self.rows("refunds", "payment_id = %s", (str(payment_id),))

    def gateway_refunds(self, payment_id) -> list[dict]:
        """What the simulated processor refunded of the payment, in its own ledger."""
        return self.rows("simulator_refunds", "payment_id = %s", (str(payment_id),))

    def truncate(self) -> None:
        self.execute("TRUNCATE bc_payment.outbox, bc_payment.payment_checks, bc_payment.refund_checks,"
                     " bc_payment.refunds, bc_payment.payments, bc_payment.simulator_ledger,"
                     " bc_payment.simulator_refunds, bc_payment.simulator_refund_voids,"
                     " bc_payment.webhook_events")


class Sandbox:
    def __init__(self, url: str):
        self.url = url

    def reset(self) -> None:
        requests.post(f"{self.url}/_reset", timeout=5).raise_for_status()

    def put_order(self, order_id: str, customer_id: str = EXAMPLE_CUSTOMER_ID, total=150.00,
                  currency: str = "USD", status: str = "pending") -> None:
        requests.put(f"{self.url}/orders/{order_id}", timeout=5, json={
            "id": order_id, "customerId": customer_id, "totalAmount": total,
            "currency": currency, "status": status,
        }).raise_for_status()

    def put_reservation(self, reservation_id: str, customer_id: str = EXAMPLE_CUSTOMER_ID,
                        status: str = "active", expires_at: str = "2099-01-01T00:00:00Z") -> None:
        requests.put(f"{self.url}/reservations/{reservation_id}", timeout=5, json={
            "id": reservation_id, "customerId": customer_id, "status": status, "expiresAt": expires_at,
        }).raise_for_status()

    def script(self, path: str, *, status: int = 200, body: str = "", content_type: str = "application/json",
               delay_ms: int = 0, trickle_ms: int = 0, pad_bytes: int = 0, declare_length: bool = True) -> None:
        requests.put(f"{self.url}/_script", timeout=5, json={
            "path": path, "status": status, "body": body, "contentType": content_type, "delayMs": delay_ms,
            "trickleMs": trickle_ms, "padBytes": pad_bytes, "declareLength": declare_length,
        }).raise_for_status()

    def latency(self, delay_ms: int) -> None:
        """Every order and reservation answered delay_ms later (until reset)."""
        requests.put(f"{self.url}/_latency", timeout=5, json={"delayMs": delay_ms}).raise_for_status()

    def calls(self) -> list[str]:
        return requests.get(f"{self.url}/_calls", timeout=5).json()["calls"]

    def request_ids(self) -> list[str | None]:
        """The X-Request-ID of each call, in the order of calls()."""
        return requests.get(f"{self.url}/_calls", timeout=5).json()["requestIds"]


def new_order(sandbox: Sandbox, **order) -> str:
    """A fresh order in the sandbox; returns its id."""
    order_id = str(uuid.uuid4())
    sandbox.put_order(order_id, **order)
    return order_id


def payment_body(order_id: str, amount="150.00", **fields) -> dict:
    """A request body as a client would send it; the amount is written as a
    JSON number (json.dumps cannot, so callers send `dumps(body)`)."""
    body = {
        "orderId": order_id,
        "customerId": EXAMPLE_CUSTOMER_ID,
        "amount": Decimal(amount),
        "currency": "USD",
        "paymentMethod": "credit_card",
    }
    body.update(fields)
    return body


DB_ROUTES = ("direct", "pgbouncer")


def parametrize_db_route(metafunc) -> None:
    """Run a test that reaches the database on every route (db_route in
    tests/conftest.py), or, marked route_independent, on the direct one:
    HTTP framing, validation, tokens, upstream faults and logs are the same
    whichever way the service reaches PostgreSQL."""
    if "database_url" not in metafunc.fixturenames:
        return
    routes = DB_ROUTES[:1] if metafunc.definition.get_closest_marker("route_independent") else DB_ROUTES
    metafunc.parametrize("db_route", list(routes), indirect=True, scope="session")


class Served:
    """`python -m payment serve` on a free port, its output read line by line.
    Started by the constructor, ready after `wait_ready()`: whoever starts
    one registers it for stopping in between, so that a start that fails or
    times out is stopped too."""

    def __init__(self, env: dict, cwd: Path = ROOT, command=(sys.executable, "-m", "payment", "serve")):
        self.port = free_port()
        self.env = {**env, "PORT": str(self.port)}
        self.url = f"http://127.0.0.1:{self.port}"
        self.process = subprocess.Popen(
            list(command), cwd=cwd, env=self.env,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self._lines: list[str] = []
        self._terminated = False
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def wait_ready(self) -> "Served":
        """Returns once every worker has booted and one answers."""
        wait_for_port(self.port, timeout=60, process=self.process)
        workers = int(self.env.get("WEB_CONCURRENCY", 1))
        self.wait_for(lambda: len(self.worker_pids()) >= workers, "workers booted")
        self.wait_for(self._answers, "a worker answering")
        return self

    def _read(self):
        for line in self.process.stdout:
            self._lines.append(line.rstrip("\n"))

    def _answers(self) -> bool:
        try:
            return requests.get(f"{self.url}/health/live", timeout=2).status_code == 200
        except requests.RequestException:
            return False

    def wait_for(self, condition, what: str, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"{what}: not within {timeout}s\n" + "\n".join(self._lines[-30:]))
            time.sleep(0.05)

    def lines(self) -> list[str]:
        return list(self._lines)

    def records(self) -> list[dict]:
        """Every output line, each of which must be one JSON object."""
        return [json.loads(line) for line in self.lines()]

    def worker_pids(self) -> list[int]:
        """Workers booted so far, oldest first (gunicorn's own JSON lines)."""
        pids = []
        for line in self.lines():
            if "Booting worker with pid" in line:
                pids.append(int(json.loads(line)["message"].rsplit(" ", 1)[1]))
        return pids

    def post(self, body, timeout: float = 15):
        return requests.post(f"{self.url}/payments", data=jsonio.dumps(body),
                             headers={"Content-Type": "application/json"}, timeout=timeout)

    def log(self) -> str:
        return "\n".join(self.lines())

    def terminate(self) -> None:
        """SIGTERM, as a platform stops it, once."""
        if not self._terminated and self.process.poll() is None:
            self._terminated = True
            self.process.terminate()

    def stop(self) -> int:
        """SIGTERM, then wait; killed when it is not gone in 30 s (the exit
        code then says so)."""
        self.terminate()
        try:
            code = self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            code = self.process.wait()
        self._reader.join(5)
        return code


# The service's DB_ROUTE for each of the suite's routes (tests/conftest.py, db_route).
DB_ROUTE_SETTING = {"direct": "direct", "pgbouncer": "transaction-pooler"}


def deployment_env(database_url: str, broker: str, sandbox_url: str, db_route: str = "direct") -> dict:
    """The environment a deployment would give the service, pointed at the
    test components; `db_route` is the suite's route to `database_url`."""
    return {
        "DATABASE_URL": database_url,
        "DB_ROUTE": DB_ROUTE_SETTING[db_route],
        "KAFKA_BOOTSTRAP_SERVERS": broker,
        "ORDERING_SERVICE_URL": sandbox_url,
        "RESERVATION_SERVICE_URL": sandbox_url,
        "UPSTREAM_READ_TIMEOUT_S": "1",
        "DB_TIMEOUT_S": "1",
    }


def start_served(started: list, env: dict, workers: int = 2, **extra) -> Served:
    """`python -m payment serve` with `env` over this process's environment
    and `extra` over both, ready; put in `started` before anything waits on
    it, for the caller to stop (stop_all_served)."""
    return start_served_together(started, 1, env, workers, **extra)[0]


def start_served_together(started: list, count: int, env: dict, workers: int = 2, **extra) -> list[Served]:
    """`count` instances as start_served starts one, all started before any
    is waited for: their boots (gunicorn, the start-up migration, the
    workers' imports) overlap instead of following one another."""
    full_env = {**os.environ, **env, "WEB_CONCURRENCY": str(workers),
                **{name: str(value) for name, value in extra.items()}}
    full_env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    instances = []
    for _ in range(count):
        instances.append(Served(full_env))
        started.append(instances[-1])
    return [served.wait_ready() for served in instances]


def stop_all_served(started: list[Served]) -> None:
    """All told to stop at once, then waited for: their graceful shutdowns overlap."""
    for served in started:
        served.terminate()
    for served in started:
        served.stop()


class Processes:
    """Processes a test starts by hand, each registered as soon as it is
    started (before anything waits on it) and stopped at the test's end
    however it ended: SIGTERM, then SIGKILL after `timeout`."""

    def __init__(self):
        self._started: list[subprocess.Popen] = []

    def add(self, process: subprocess.Popen) -> subprocess.Popen:
        self._started.append(process)
        return process

    def stop_all(self, timeout: float = 10.0) -> None:
        for process in reversed(self._started):
            stop(process, timeout)


@contextmanager
def relay_on(config, **overrides):
    """An outbox relay of its own, built as `python -m payment relay` builds
    one from `config` with `overrides` (Config fields), closed afterwards."""
    from payment.bootstrap import build_loop

    core = build_loop(dataclasses.replace(config, **overrides))
    try:
        yield core.relay
    finally:
        core.close()


def dockerfile_instructions(path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of a Dockerfile, in order, continued lines joined."""
    instructions, pending = [], ""
    for line in Path(path).read_text().splitlines():
        if not pending and (not line.strip() or line.lstrip().startswith("#")):
            continue
        pending += line.rstrip()
        if pending.endswith("\\"):
            pending = pending[:-1] + " "
            continue
        keyword, _, arguments = pending.strip().partition(" ")
        instructions.append((keyword.upper(), arguments.strip()))
        pending = ""
    assert not pending, "Dockerfile ends inside a continued line"
    return instructions


def json_refs(node):
    """Every `$ref` in a JSON document (a schema, the OpenAPI document)."""
    if isinstance(node, dict):
        if "$ref" in node:
            yield node["$ref"]
        for value in node.values():
            yield from json_refs(value)
    elif isinstance(node, list):
        for value in node:
            yield from json_refs(value)


# The gateway's two answers, for tests that settle payments through the store.
CHARGED = ChargeResult(succeeded=True, transaction_id="txn_0123456789abcdef",
                       simulated_response="Success - TransactionId: txn_0123456789abcdef")
DECLINED = ChargeResult(succeeded=False, transaction_id=None, simulated_response="Declined - ErrorCode: CARD_DECLINED",
                        error_code="CARD_DECLINED", error_message="Card declined",
                        failure_reason="Issuing bank rejected the transaction")


@contextmanager
def open_store(database_url: str, db_route: str, *, max_size: int, timeout: float):
    """A PaymentStore on a pool of its own, open until the block ends;
    `db_route` is the suite's route to `database_url`."""
    pool = open_pool(database_url, min_size=1, max_size=max_size, timeout=timeout,
                     route=DB_ROUTE_SETTING[db_route])
    try:
        pool.wait(10)
        yield PaymentStore(pool)
    finally:
        pool.close()
