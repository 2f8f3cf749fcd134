"""Which databases a test run may drop as left behind by a run that died:
only names of the run scheme, old enough, whose process is gone."""

from __future__ import annotations

import os

from tests.run_database import STALE_AFTER_S, is_stale, new_name

NOW = 1_800_000_000.0
GONE_PID = int(open("/proc/sys/kernel/pid_max").read())  # never a live pid


def old(pid: int = GONE_PID, suffix: str = "") -> str:
    return f"payment_test_{int(NOW - STALE_AFTER_S - 1)}_{pid}_0a1b2c{suffix}"


def test_a_dead_runs_old_database_and_those_made_beside_it_are_stale():
    assert is_stale(old(), NOW, local=True)
    assert is_stale(old(suffix="_concurrent"), NOW, local=True)


def test_a_recent_database_is_not_stale():
    assert not is_stale(new_name(now=NOW - STALE_AFTER_S + 60), NOW, local=True)
    assert not is_stale(new_name(now=NOW), NOW, local=False)


def test_a_database_whose_run_is_alive_here_is_not_stale():
    assert not is_stale(old(pid=os.getpid()), NOW, local=True)
    # On another machine's server the pid says nothing: age decides.
    assert is_stale(old(pid=os.getpid()), NOW, local=False)


def test_names_outside_the_scheme_are_never_stale():
    for name in ("test", "postgres", "payment_test", "payment_test_bench", "payment_test_12_34",
                 "payment_test_12_34_XYZ", "payment_testing_1_2_ab", "payment_test_1_2_ab;drop"):
        assert not is_stale(name, NOW, local=False), name
