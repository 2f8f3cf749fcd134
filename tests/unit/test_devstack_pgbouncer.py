"""Where the tests' PgBouncer comes from, and what it can reach
(devstack/__init__.py): a machine that lacks it is told once which package
to install, and a server socket it could not open is refused at start,
not discovered by every query waiting out query_wait_timeout."""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
import time
from pathlib import Path

import pytest

import devstack

pytest_plugins = ["pytester"]

ROOT = os.geteuid() == 0


def test_without_pgbouncer_a_user_who_cannot_install_it_is_told_the_package_at_once(tmp_path):
    started = time.monotonic()
    with pytest.raises(devstack.PgBouncerMissing) as missing:
        devstack.pgbouncer_binary(search_path=str(tmp_path), euid=1000)
    assert time.monotonic() - started < 1
    assert "Debian package `pgbouncer`" in str(missing.value)
    assert "apt-get install pgbouncer" in str(missing.value)


def test_root_without_apt_get_is_told_the_package_too(tmp_path):
    with pytest.raises(devstack.PgBouncerMissing, match="Debian package `pgbouncer`"):
        devstack.pgbouncer_binary(search_path=str(tmp_path), euid=0)


def test_pgbouncer_on_the_path_is_used(tmp_path):
    binary = tmp_path / "pgbouncer"
    binary.write_text("#!/bin/sh\n")
    binary.chmod(0o755)
    assert devstack.pgbouncer_binary(search_path=f"{tmp_path / 'elsewhere'}:{tmp_path}", euid=1000) == str(binary)


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


# The suite's own hooks and fixtures (tests/conftest.py) on a machine
# without PgBouncer, run by a user who is not root.
WITHOUT_PGBOUNCER = """
import functools

import devstack
from tests.conftest import *  # noqa: F401,F403

devstack.pgbouncer_binary = functools.partial(devstack.pgbouncer_binary, search_path={empty!r}, euid=1000)
"""

THROUGH_PGBOUNCER = """
import pytest

@pytest.mark.parametrize("n", range(4))
def test_with_a_pgbouncer_of_its_own(pgbouncer_installed, n):
    pass

@pytest.mark.parametrize("db_route", ["direct", "pgbouncer"])
def test_on_each_route(db_route):
    pass

def test_without_the_database():
    pass
"""


def test_a_run_without_pgbouncer_skips_its_tests_with_one_line_naming_the_package(pytester, tmp_path, monkeypatch):
    monkeypatch.setenv("PYTHONPATH", str(Path(__file__).resolve().parents[2]))
    pytester.makeconftest(WITHOUT_PGBOUNCER.format(empty=str(tmp_path)))
    pytester.makepyfile(test_through_pgbouncer=THROUGH_PGBOUNCER)

    result = pytester.runpytest_subprocess("-ra", "-p", "no:cacheprovider")

    result.assert_outcomes(passed=2, skipped=5)
    [summary] = [line for line in result.outlines if line.startswith("SKIPPED")]
    assert summary.startswith("SKIPPED [5] ")
    assert "Debian package `pgbouncer` (sudo apt-get install pgbouncer)" in summary
