"""Least privilege, on real PostgreSQL: a database with the service's two
roles made by the very script the compose stack runs
(deploy/postgres-init/payment-roles.psql), the migrations applied as the
owner role (`DB_APP_ROLE` naming the other), then the whole service as the
application role: a payment end to end with its event, the relay sending
and marking an event, the reconciler claiming and settling an overdue
payment, the cleanup deleting sent events. The same role is refused every
kind of DDL, and any table but the service's own.

Direct connections only: the tests' PgBouncer admits the user of its own
auth file, not roles made here."""

from __future__ import annotations

import dataclasses
import re
import secrets
import uuid
from pathlib import Path

import psycopg
import pytest
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from payment.bootstrap import build_web
from payment.config import Config
from payment.db import migrations
from payment.gateways.port import Found
from payment.release import prepare
from tests.conftest import Client
from tests.run_database import admin_connection
from tests.support import ROOT, Database, deployment_env, new_order, payment_body

ROLES_SCRIPT = ROOT / "deploy" / "postgres-init" / "payment-roles.psql"


def psql_script(path: Path, conn: psycopg.Connection, variables: dict[str, str]) -> list[str]:
    """The script's statements with psql's :'var' (a literal) and :"var" (an
    identifier) filled in, as `psql -v var=...` does; `--` comments dropped."""
    def fill(match: re.Match) -> str:
        quote, name = match[1], match[2]
        value = sql.Literal(variables[name]) if quote == "'" else sql.Identifier(variables[name])
        return value.as_string(conn)

    text = "\n".join(line for line in path.read_text().splitlines() if not line.lstrip().startswith("--"))
    text = re.sub(r""":(['"])(\w+)\1""", fill, text)
    return [statement.strip() for statement in text.split(";") if statement.strip()]


@dataclasses.dataclass
class Roles:
    admin_url: str   # the test server's superuser, in this database
    owner_url: str
    app_url: str
    app: str


@pytest.fixture
def roles(server_url):
    params = conninfo_to_dict(server_url)
    name = f"{params['dbname']}_leastpriv"
    token = secrets.token_hex(3)
    owner, app = f"payment_owner_{token}", f"payment_app_{token}"
    passwords = {"owner_password": secrets.token_hex(12), "app_password": secrets.token_hex(12)}
    with admin_connection(params) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    admin_url = make_conninfo(**{**params, "dbname": name})
    try:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            for statement in psql_script(ROLES_SCRIPT, conn, {"owner": owner, "app": app, "db": name,
                                                               **passwords}):
                conn.execute(statement)

        def as_role(role: str, password: str) -> str:
            return make_conninfo(**{**params, "dbname": name, "user": role, "password": password})
        yield Roles(admin_url, as_role(owner, passwords["owner_password"]),
                    as_role(app, passwords["app_password"]), app)
    finally:
        with admin_connection(params) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
            for role in (app, owner):
                conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))


def test_the_service_works_as_its_own_role_migrated_by_the_owner(roles, broker, sandbox_url, sandbox, events):
    base = Config.from_env(deployment_env(roles.owner_url, broker, sandbox_url))
    prepare(dataclasses.replace(base, db_app_role=roles.app), wait_s=5)
    admin = Database(roles.admin_url)
    owners = {row["tableowner"] for row in admin.execute_rows(
        "SELECT tableowner FROM pg_tables WHERE schemaname = 'bc_payment'")}
    assert owners == {conninfo_to_dict(roles.owner_url)["user"]}

    web = build_web(dataclasses.replace(base, database_url=roles.app_url), start_relay=False)
    try:
        # A payment, end to end: order, charge, outcome and event, marked sent.
        order_id = new_order(sandbox)
        reply = Client(web.app).pay(payment_body(order_id))
        assert reply.status == 200, reply.body
        payment_id = reply.body["payment"]["id"]
        [event] = events.read("payment-succeeded")
        assert event["value"]["paymentId"] == payment_id
        assert admin.outbox_once_sent()[0]["payment_id"] == uuid.UUID(payment_id)

        # The relay claims an event left unsent, sends it and marks it.
        admin.execute("UPDATE bc_payment.outbox SET sent_at = NULL, created_at = now() - interval '1 hour'")
        relay = web.core.make_relay()
        assert relay.send_batch() == (1, 1)
        assert [row["sent_at"] is not None for row in admin.rows("outbox")] == [True]
        assert [e["headers"]["eventId"] for e in events.read("payment-succeeded")] == [event["headers"]["eventId"]] * 2

        # The reconciler claims an overdue pending payment and settles it.
        overdue = uuid.uuid4()
        admin.execute(
            "INSERT INTO bc_payment.payments (id, order_id, customer_id, amount, currency, payment_method,"
            " status, is_simulated, created_at) VALUES (%s, %s, %s, 150, 'USD', 'credit_card', 'pending', true,"
            " now() - interval '1 hour')", (overdue, uuid.uuid4(), uuid.uuid4()))
        assert web.core.make_reconciler().run_once()[Found.NEVER_CHARGED] == 1
        [settled] = admin.rows("payments", "id = %s", (overdue,))
        assert (settled["status"], settled["error_code"]) == ("failed", "PROCESSING_INTERRUPTED")
        assert admin.rows("simulator_voids", "payment_id = %s", (overdue,)) != []

        # The cleanup deletes sent events past retention.
        admin.execute("UPDATE bc_payment.outbox SET sent_at = now() - interval '30 days'"
                      " WHERE payment_id = %s", (payment_id,))
        assert relay.clean_up() == 1
        assert admin.rows("outbox", "payment_id = %s", (payment_id,)) == []
    finally:
        web.close(timeout=1)


REFUSED = [
    "CREATE TABLE bc_payment.intruder (id int)",
    "CREATE TABLE public.intruder (id int)",
    "CREATE TABLE intruder (id int)",
    "CREATE TEMPORARY TABLE intruder (id int)",
    "CREATE SCHEMA intruder",
    "CREATE VIEW bc_payment.intruder AS SELECT 1",
    "CREATE FUNCTION bc_payment.intruder() RETURNS int LANGUAGE sql AS 'SELECT 1'",
    "CREATE INDEX intruder ON bc_payment.payments (currency)",
    "ALTER TABLE bc_payment.payments ADD COLUMN intruder int",
    "ALTER TABLE bc_payment.outbox DROP COLUMN payload",
    "DROP TABLE bc_payment.outbox",
    "DROP SCHEMA bc_payment CASCADE",
    "TRUNCATE bc_payment.payments",
    "INSERT INTO bc_payment.schema_migrations (version, name, checksum) VALUES (99, 'x', 'x')",
    "DELETE FROM bc_payment.schema_migrations",
    "SELECT * FROM public.elsewhere",
]


def test_ddl_and_other_schemas_are_refused_to_the_services_role(roles):
    migrations.migrate(roles.owner_url, app_role=roles.app)
    Database(roles.admin_url).execute("CREATE TABLE public.elsewhere (id int)")
    refused = {}
    with psycopg.connect(roles.app_url, autocommit=True) as conn:
        for statement in REFUSED:
            try:
                conn.execute(statement)
                refused[statement] = "ran"
            except psycopg.errors.InsufficientPrivilege:
                refused[statement] = "refused"
            except psycopg.Error as exc:
                refused[statement] = f"{type(exc).__name__}: {exc}"
        # What it is for, it may: read the version, read and write its tables.
        assert conn.execute("SELECT max(version) FROM bc_payment.schema_migrations").fetchone()[0] == \
            len(migrations.load())
        conn.execute("DELETE FROM bc_payment.payment_checks")
    assert refused == {statement: "refused" for statement in REFUSED}


def test_a_missing_application_role_stops_the_migration(roles):
    with pytest.raises(migrations.MigrationError, match="the service's role payment_nobody does not exist"):
        migrations.migrate(roles.owner_url, app_role="payment_nobody")
