"""The service's PostgreSQL connection pool, and the one place psycopg's
exceptions become domain errors (`database_errors`), so that no layer above
ever sees one (nor shows its text to a client).
"""

from __future__ import annotations

import logging
import time
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Self

import psycopg
from psycopg.abc import Params, Query
from psycopg.conninfo import conninfo_to_dict
from psycopg.pq import TransactionStatus
from psycopg.rows import Row, RowFactory, TupleRow
from psycopg_pool import ConnectionPool

from payment.db.routes import DB_ROUTES, DIRECT
from payment.db.libpq_options import lift_settings, settings_statement, with_startup_settings
from payment.errors import DatabaseFault, DatabaseUnavailable

log = logging.getLogger(__name__)


Connection = psycopg.Connection[TupleRow]


class Pool(ConnectionPool[Connection]):
    """The service's connection pool, the route it was opened for, and the
    settings every transaction on it starts with (`transaction_settings`: one
    SQL statement, run in the transaction's first round trip; empty on the
    direct route, where the connection carries them)."""

    route: str = DIRECT
    transaction_settings: str = ""


def open_pool(conninfo: str, *, min_size: int, max_size: int, timeout: float,
              search_path: str | None = None, route: str = DIRECT) -> Pool:
    """A pool opened explicitly; it keeps trying in the background while the
    database is away, and a request waits at most `timeout` for a connection.

    The settings (the statement and lock timeouts, the search path, and any
    `-c` setting of the connection string) are made once, and the route
    decides where, never both:

    - direct: once per connection, as startup options, and psycopg prepares
      a statement on the server from its fifth use on that connection: each
      payment's statements are then planned once per connection, not once
      per call;
    - transaction-pooler: the connections hold no session state, since the
      pooler may hand each transaction another server connection: no startup
      options (PgBouncer refuses them), the settings set anew in every
      transaction (`transaction_settings`), and no server-side prepared
      statements (prepare_threshold=None), which another client's
      transaction would not find, or would find twice."""
    if route not in DB_ROUTES:
        raise ValueError(f"route must be one of {DB_ROUTES}")
    conninfo, settings = lift_settings(conninfo)
    milliseconds = str(int(timeout * 1000))
    # A statement that runs past the request's budget is a fault, not a slow
    # answer; so is a lock wait that long (a row held by a stuck transaction).
    settings.update(statement_timeout=milliseconds, lock_timeout=milliseconds)
    if search_path:
        settings["search_path"] = search_path
    connection: dict[str, Any] = {"autocommit": True}
    if route == DIRECT:
        conninfo = with_startup_settings(conninfo, settings)
    else:
        connection["prepare_threshold"] = None
    if "connect_timeout" not in conninfo_to_dict(conninfo):  # the connection string's Timeout wins
        connection["connect_timeout"] = max(1, round(timeout))
    pool = Pool(
        conninfo,
        min_size=min_size,
        max_size=max_size,
        timeout=timeout,
        open=False,
        name="payments",
        check=_check_unless_just_used,
        # Autocommit: a single statement is its own transaction and costs one
        # round trip (a payment's every write is one statement, its outcome
        # and event included); PaymentStore opens an explicit transaction
        # only where a block must hold one (the relay's claim, held while it
        # sends).
        kwargs=connection,
        reconnect_timeout=0,
    )
    pool.route = route
    pool.transaction_settings = "" if route == DIRECT else settings_statement(settings)
    pool.open(wait=False)
    return pool


# When each pooled connection was last seen working.
_last_used: weakref.WeakKeyDictionary[Connection, float] = weakref.WeakKeyDictionary()
_TRUSTED_FOR_S = 1.0


def _check_unless_just_used(conn: Connection) -> None:
    """The pool's check on checkout costs a round trip; it is spared for a
    connection that completed work less than a second ago (under load, nearly
    every one). A connection that fails in use is discarded by the pool."""
    if time.monotonic() - _last_used.get(conn, float("-inf")) > _TRUSTED_FOR_S:
        ConnectionPool.check_connection(conn)


@contextmanager
def database_errors() -> Iterator[None]:
    """Translates what psycopg raises inside into the store's domain errors
    (also a decorator):

    - OperationalError, the pool's PoolTimeout and PoolClosed among them:
      the database is out of reach or too slow (no connection, a statement
      or lock timeout, a conflict to retry) -> DatabaseUnavailable, a 503
      with Retry-After;
    - any other psycopg.Error: the database refused the operation (an
      integrity or programming error, a privilege, bad data) ->
      DatabaseFault, a 500.

    The log line names the exception's class, SQLSTATE and constraint only:
    its text may quote a row's values."""
    try:
        yield
    except psycopg.OperationalError as exc:
        log.warning("database unavailable: %s", type(exc).__name__)
        raise DatabaseUnavailable() from exc
    except psycopg.Error as exc:
        log.error("database refused an operation: %s", type(exc).__name__,
                  extra={"sqlState": exc.sqlstate, "constraint": exc.diag.constraint_name})
        raise DatabaseFault() from exc


class OneTransactionCursor(psycopg.ClientCursor[Row]):
    """A cursor whose every execute is one simple query: the pool's
    transaction settings, then the statement (or statements). One round
    trip and one implicit transaction, so the settings hold for exactly that
    statement, on whichever server connection a pooler picked. Parameters
    are bound by psycopg on the client, so nothing is prepared on a server.
    The cursor then stands on the last statement's result."""

    settings = ""

    def execute(self, query: Query, params: Params | None = None, *, prepare: bool | None = None,
                binary: bool | None = None) -> Self:
        if not isinstance(query, str):
            raise TypeError("a one-transaction statement is SQL text")
        # With parameters the whole text is a template, where % is doubled.
        settings = self.settings if params is None else self.settings.replace("%", "%%")
        super().execute(settings + query, params, prepare=prepare, binary=binary)
        while self.nextset():
            pass
        return self


def one_transaction_cursor(pool: Pool, conn: Connection, row_factory: RowFactory[Row]) -> OneTransactionCursor[Row]:
    """For a group of statements that must share one implicit transaction
    (on either route), or a single statement through a transaction pooler."""
    cursor = OneTransactionCursor(conn, row_factory=row_factory)
    cursor.settings = pool.transaction_settings
    return cursor


class PreparingCursor(psycopg.Cursor[Row]):
    """psycopg's cursor, its parameters bound on the server and a statement
    prepared from its fifth use on the connection; for statements in
    autocommit, each its own transaction.

    A prepared statement whose result changes shape (a migration added a
    column that `RETURNING *` now returns) fails with "cached plan must not
    change result type" on every connection that prepared it. Outside a
    transaction the statement did nothing, so it is run once more after
    the connection's prepared statements are dropped (DEALLOCATE ALL, which
    psycopg's own cache follows): a migration costs a re-prepare, not a
    fault per connection and statement."""

    def execute(self, query: Query, params: Params | None = None, *, prepare: bool | None = None,
                binary: bool | None = None) -> Self:
        if not isinstance(query, str):
            raise TypeError("a store statement is SQL text")
        try:
            return super().execute(query, params, prepare=prepare, binary=binary)
        except psycopg.errors.FeatureNotSupported as exc:
            if (exc.diag.source_function != "RevalidateCachedQuery"
                    or self.connection.info.transaction_status != TransactionStatus.IDLE):
                raise
        self.connection.execute("DEALLOCATE ALL")
        return super().execute(query, params, prepare=prepare, binary=binary)


def statement_cursor(pool: Pool, conn: Connection, row_factory: RowFactory[Row]) -> psycopg.Cursor[Row]:
    """A cursor for single statements, each committed on its own: on the
    direct route one that prepares them (PreparingCursor); through a
    transaction pooler, one whose statements carry the transaction settings
    and are prepared nowhere."""
    if pool.route == DIRECT:
        return PreparingCursor(conn, row_factory=row_factory)
    return one_transaction_cursor(pool, conn, row_factory)


def mark_used(conn: Connection) -> None:
    """Note that `conn` just completed work (see `_check_unless_just_used`)."""
    _last_used[conn] = time.monotonic()
