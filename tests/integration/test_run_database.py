"""The run's own database on TEST_DATABASE_URL's server: the tests reach
it, and a run drops what runs that died left behind, and nothing else."""

from __future__ import annotations

import time

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from tests.run_database import PREFIX, STALE_AFTER_S, admin_connection, drop_stale

GONE_PID = int(open("/proc/sys/kernel/pid_max").read())  # never a live pid


def names(params) -> set[str]:
    with admin_connection(params) as conn:
        return {row[0] for row in conn.execute("SELECT datname FROM pg_database")}


def test_the_run_database_is_its_own_and_migrated(server_url):
    name = conninfo_to_dict(server_url)["dbname"]
    assert name.startswith(PREFIX + "_")
    with psycopg.connect(server_url) as conn:
        assert conn.execute("SELECT current_database()").fetchone()[0] == name
        assert conn.execute("SELECT max(version) FROM bc_payment.schema_migrations").fetchone()[0] >= 1


def test_databases_of_dead_runs_are_dropped_and_no_other(server_url):
    params = conninfo_to_dict(server_url)
    created = int(time.time()) - STALE_AFTER_S - 60
    dead = f"{PREFIX}_{created}_{GONE_PID}_0a1b2c"
    made_beside_it = dead + "_concurrent"
    in_use = f"{PREFIX}_{created}_{GONE_PID}_3d4e5f"
    made = [dead, made_beside_it, in_use]
    with admin_connection(params) as conn:
        for name in made:
            conn.execute(f'CREATE DATABASE "{name}"')
    try:
        with psycopg.connect(make_conninfo(**{**params, "dbname": in_use})):
            dropped = drop_stale(params)
        left = names(params)
        # Gone, whoever dropped them (another run on this server may have).
        assert not {dead, made_beside_it} & left
        # Kept: the one in use, and this run's own (recent, its process alive).
        assert {in_use, params["dbname"]} <= left
        assert not {in_use, params["dbname"]} & set(dropped)
    finally:
        with admin_connection(params) as conn:
            for name in made:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
