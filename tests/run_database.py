"""A database of one test run's own, on the server TEST_DATABASE_URL names
(or an embedded one): created empty under a name of its own, built by the
migrations, dropped when the run ends. Whatever the named database holds
(an old schema, rows of another run) plays no part, and two runs against
one server do not meet.

The name is `payment_test_<unix time>_<pid>_<random>`; databases the tests
make beside it (tests/integration/test_migrations.py) add `_<suffix>`. A run
that died before dropping its databases leaves them behind: the next run
drops those of this scheme older than STALE_AFTER_S, unless their run is
still alive on this machine or something is connected to them."""

from __future__ import annotations

import os
import re
import secrets
import time

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

PREFIX = "payment_test"
# Longer than any run of the suite, `make reliability-soak` included.
STALE_AFTER_S = 3600
_NAME = re.compile(rf"{PREFIX}_(?P<created>\d+)_(?P<pid>\d+)_[0-9a-f]+(?:_[a-z0-9_]+)?")
_LOCAL_HOSTS = {"", "localhost", "127.0.0.1", "::1"}


def new_name(now: float | None = None) -> str:
    return f"{PREFIX}_{int(time.time() if now is None else now)}_{os.getpid()}_{secrets.token_hex(3)}"


class RunDatabase:
    """This run's database on the server of `given_url` (same host, port,
    user, password and options; another database name)."""

    def __init__(self, given_url: str):
        self.params = conninfo_to_dict(given_url)
        self.name = new_name()
        self.url = make_conninfo(**{**self.params, "dbname": self.name})

    def create(self) -> str:
        drop_stale(self.params)
        with admin_connection(self.params) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(self.name)))
        return self.url

    def drop(self) -> None:
        with admin_connection(self.params) as conn:
            # FORCE: a connection some test left open must not keep it alive.
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(self.name)))


def admin_connection(params: dict) -> psycopg.Connection:
    """An autocommit connection for CREATE and DROP DATABASE: to the
    database named in the URL, else to the server's maintenance database
    (the named one need not exist)."""
    first_error = None
    for dbname in dict.fromkeys([params.get("dbname") or "postgres", "postgres", "template1"]):
        try:
            return psycopg.connect(make_conninfo(**{**params, "dbname": dbname}), autocommit=True,
                                   connect_timeout=10)
        except psycopg.OperationalError as exc:
            first_error = first_error or exc
    raise first_error


def drop_stale(params: dict, now: float | None = None) -> list[str]:
    """Drop the databases of runs that died: named by this scheme, created
    more than STALE_AFTER_S ago, whose process is gone (when the server is on
    this machine, where the pid means something). No FORCE: one still in use
    is left alone. Returns the names dropped."""
    now = time.time() if now is None else now
    host = params.get("host", "")
    local = host in _LOCAL_HOSTS or host.startswith("/")
    dropped = []
    with admin_connection(params) as conn:
        # Those with a session are skipped up front: DROP DATABASE would wait
        # 5 s for it to end before refusing.
        names = [row[0] for row in conn.execute(
            "SELECT datname FROM pg_database WHERE datname LIKE %s AND NOT EXISTS"
            " (SELECT 1 FROM pg_stat_activity a WHERE a.datid = pg_database.oid)", (PREFIX + r"\_%",))]
        for name in names:
            if not is_stale(name, now, local):
                continue
            try:
                conn.execute(sql.SQL("DROP DATABASE IF EXISTS {}").format(sql.Identifier(name)))
                dropped.append(name)
            except psycopg.errors.ObjectInUse:
                pass
    return dropped


def is_stale(name: str, now: float, local: bool) -> bool:
    match = _NAME.fullmatch(name)
    if not match or now - int(match["created"]) < STALE_AFTER_S:
        return False
    return not (local and _alive(int(match["pid"])))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
