"""What the tests' PgBouncer can reach (payment/devstack.py): a server
socket it could not open is refused at start, not discovered by every
query waiting out query_wait_timeout."""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
import time
from pathlib import Path

import pytest

from payment import devstack

ROOT = os.geteuid() == 0


@pytest.fixture
def socket_directory():
    """A directory (short enough for a socket path) holding a listening
    `.s.PGSQL.5432`, as a PostgreSQL server's socket directory does."""
    directory = Path(tempfile.mkdtemp(prefix="payment-sock-"))
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(directory / ".s.PGSQL.5432"))
    server.listen()
    (directory / ".s.PGSQL.5432").chmod(0o777)
    yield directory
    server.close()
    directory.chmod(0o700)
    shutil.rmtree(directory, ignore_errors=True)


def test_a_socket_directory_pgbouncer_cannot_enter_is_refused_at_start(socket_directory):
    # As root PgBouncer runs as `nobody`, who cannot enter a directory of
    # root's own with mode 0700 (an embedded server's data directory is
    # such); a user who is not root cannot enter one with mode 0000.
    socket_directory.chmod(0o700 if ROOT else 0o000)
    started = time.monotonic()
    with pytest.raises(RuntimeError, match="could not open the server's socket") as refused:
        bouncer = devstack.start_pgbouncer(f"postgresql://postgres@/test?host={socket_directory}")
        bouncer.stop()  # reached only when it was not refused
    assert time.monotonic() - started < 1
    assert str(socket_directory / ".s.PGSQL.5432") in str(refused.value)


def test_a_socket_directory_pgbouncer_can_enter_is_accepted(socket_directory):
    socket_directory.chmod(0o755)
    devstack.check_socket_reachable(f"postgresql://postgres@/test?host={socket_directory}",
                                    devstack.PGBOUNCER_USER if ROOT else None)
