"""PostgreSQL adapter: the connection pool and the payment store.

Every psycopg exception becomes a domain error here (`database_errors`), so
no layer above ever sees one (nor shows its text to a client).
"""

from __future__ import annotations

import logging
import re
import time
import weakref
from contextlib import contextmanager
from uuid import UUID

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from psycopg.rows import class_row, dict_row
from psycopg_pool import ConnectionPool

from payment import migrations
from payment.errors import DatabaseFault, DatabaseUnavailable, PaymentAlreadySettled
from payment.model import OutboxEvent, Payment, PaymentRequest
from payment.queries import QUERIES

log = logging.getLogger(__name__)


class Pool(ConnectionPool):
    """The service's connection pool, and the settings every transaction on
    it starts with (`transaction_settings`: one SQL statement, run in the
    transaction's first round trip)."""

    transaction_settings: str = ""


def open_pool(conninfo: str, *, min_size: int, max_size: int, timeout: float,
              search_path: str | None = None) -> Pool:
    """A pool opened explicitly; it keeps trying in the background while the
    database is away, and a request waits at most `timeout` for a connection.

    Its connections hold no session state, so that a transaction-pooling
    PgBouncer may hand each transaction another server connection: no
    startup options (the statement and lock timeouts, and any `-c` setting
    of the connection string such as SearchPath's search_path, are set anew
    in every transaction, see `transaction_settings`), and no server-side
    prepared statements (prepare_threshold=None)."""
    conninfo, settings = _lift_settings(conninfo)
    milliseconds = str(int(timeout * 1000))
    # A statement that runs past the request's budget is a fault, not a slow
    # answer; so is a lock wait that long (a row held by a stuck transaction).
    settings.update(statement_timeout=milliseconds, lock_timeout=milliseconds)
    if search_path:
        settings["search_path"] = search_path
    connection = {"autocommit": True, "prepare_threshold": None}
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
    pool.transaction_settings = settings_statement(settings)
    pool.open(wait=False)
    return pool


# When each pooled connection was last seen working.
_last_used: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_TRUSTED_FOR_S = 1.0


def _check_unless_just_used(conn) -> None:
    """The pool's check on checkout costs a round trip; it is spared for a
    connection that completed work less than a second ago (under load, nearly
    every one). A connection that fails in use is discarded by the pool."""
    if time.monotonic() - _last_used.get(conn, float("-inf")) > _TRUSTED_FOR_S:
        ConnectionPool.check_connection(conn)


_SETTING_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.]*")


def _lift_settings(conninfo: str) -> tuple[str, dict[str, str]]:
    """The connection string without its `-c name=value` startup options, and
    those settings. A transaction-pooling PgBouncer refuses startup options
    (`unsupported startup parameter: options`), and would not keep them per
    client anyway. Any other option is left where it was."""
    params = conninfo_to_dict(conninfo)
    settings: dict[str, str] = {}
    kept: list[str] = []
    words = _option_words(params.pop("options", "") or "")
    while words:
        word = words.pop(0)
        if word == "-c" and words:
            word = "-c" + words.pop(0)
        name, sep, value = word[2:].partition("=") if word[:2] in ("-c", "--") else ("", "", "")
        if sep and _SETTING_NAME.fullmatch(name):
            settings[name] = value
        else:
            kept.append(word)
    if kept:
        params["options"] = " ".join(_escape_option(word) for word in kept)
    return make_conninfo(**params), settings


def _option_words(options: str) -> list[str]:
    """libpq's reading of `options`: words split on spaces, a backslash
    keeps the next character (an escaped space stays in the word)."""
    words, word, escaped, started = [], [], False, False
    for char in options:
        if escaped:
            word.append(char)
            escaped = False
        elif char == "\\":
            escaped = started = True
        elif char.isspace():
            if started:
                words.append("".join(word))
            word, started = [], False
        else:
            word.append(char)
            started = True
    if started:
        words.append("".join(word))
    return words


def _escape_option(word: str) -> str:
    return word.replace("\\", "\\\\").replace(" ", "\\ ")


def settings_statement(settings: dict[str, str]) -> str:
    """One statement that sets each setting for the current transaction only
    (set_config(..., true) reads the value as a startup `-c` would: a list
    for search_path, units for timeouts)."""
    calls = sql.SQL(", ").join(
        sql.SQL("set_config({}, {}, true)").format(sql.Literal(name), sql.Literal(value))
        for name, value in settings.items())
    return sql.SQL("SELECT {};").format(calls).as_string(None)


def apply_schema(conninfo: str) -> None:
    """Bring the schema up to date: the versioned migrations of
    payment/migrations.py, the one way the schema changes. (Kept under this
    name for the callers that set up a database in one line.)"""
    migrations.migrate(conninfo)


@contextmanager
def database_errors():
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


class OneTransactionCursor(psycopg.ClientCursor):
    """A cursor whose every execute is one simple query: the pool's
    transaction settings, then the statement (or statements). One round
    trip and one implicit transaction, so the settings hold for exactly that
    statement, on whichever server connection a pooler picked. Parameters
    are bound by psycopg on the client, so nothing is prepared on a server.
    The cursor then stands on the last statement's result."""

    settings = ""

    def execute(self, query, params=None, **kwargs):
        # With parameters the whole text is a template, where % is doubled.
        settings = self.settings if params is None else self.settings.replace("%", "%%")
        super().execute(settings + query, params, **kwargs)
        while self.nextset():
            pass
        return self


def one_transaction_cursor(pool: Pool, conn, row_factory=None) -> OneTransactionCursor:
    cursor = OneTransactionCursor(conn, row_factory=row_factory)
    cursor.settings = pool.transaction_settings
    return cursor


class PaymentStore:
    def __init__(self, pool: Pool):
        self.pool = pool

    @contextmanager
    def _connection(self):
        """A pooled connection; whatever psycopg raises while it is held,
        in the store's statements or the block they run, leaves translated."""
        with database_errors(), self.pool.connection() as conn:
            yield conn
            _last_used[conn] = time.monotonic()

    @contextmanager
    def _statement(self, row_factory=None):
        """A cursor whose each statement is committed on its own, with the
        transaction settings in the same round trip."""
        with self._connection() as conn:
            with one_transaction_cursor(self.pool, conn, row_factory) as cur:
                yield cur

    @contextmanager
    def _transaction(self, row_factory=None):
        """A cursor in one transaction: committed when the block ends, rolled
        back if it raises. BEGIN and the settings go in one round trip, as
        BEGIN alone did before."""
        with self._connection() as conn:
            conn.execute("BEGIN; " + self.pool.transaction_settings)
            try:
                with conn.cursor(row_factory=row_factory) as cur:
                    yield cur
            except BaseException:
                _roll_back(conn)
                raise
            conn.execute("COMMIT")

    def ping(self) -> bool:
        with self._statement() as cur:
            return cur.execute("SELECT 1").fetchone() == (1,)

    def _one_payment(self, query: str, params: dict) -> Payment | None:
        with self._statement(class_row(Payment)) as cur:
            return cur.execute(QUERIES[query], params).fetchone()

    def find_succeeded(self, order_id: UUID) -> Payment | None:
        return self._one_payment("find_succeeded_payment", {"order_id": order_id})

    def find_live(self, order_id: UUID) -> Payment | None:
        return self._one_payment("find_live_payment", {"order_id": order_id})

    def insert_pending(self, request: PaymentRequest, payment_id: UUID, *, is_simulated: bool) -> Payment | None:
        """The new pending payment, or None if the order already has a live one."""
        return self._one_payment("insert_pending_payment", {
            "id": payment_id, "order_id": request.order_id, "customer_id": request.customer_id,
            "reservation_id": request.reservation_id, "amount": request.amount,
            "currency": request.currency, "payment_method": request.payment_method,
            "is_simulated": is_simulated,
        })

    def attach_reference(self, payment: Payment, reference: str) -> Payment:
        """Keep the processor's reference on the pending payment, before it is charged."""
        attached = self._one_payment("attach_gateway_reference", {"id": payment.id, "reference": reference})
        if attached is None:
            raise PaymentAlreadySettled()
        return attached

    def settle(self, settled: Payment, event: OutboxEvent) -> tuple[Payment, bool] | None:
        """Record a pending payment's outcome (`settled`: the payment as it
        is to be, processed_at included) and its event, both or neither, in
        one statement: one round trip, one implicit transaction, with the
        transaction settings in the same simple query. Returns the payment as
        recorded and whether an older event of the same order is still
        unsent (this one must then wait its turn); None if the payment was no
        longer pending, and nothing was written."""
        with self._statement(dict_row) as cur:
            row = cur.execute(QUERIES["settle_payment"], {
                "id": settled.id,
                "status": settled.status,
                "transaction_id": settled.transaction_id,
                "error_code": settled.error_code,
                "error_message": settled.error_message,
                "failure_reason": settled.failure_reason,
                "simulated_response": settled.simulated_response,
                "processed_at": settled.processed_at,
                "event_id": event.event_id,
                "topic": event.topic,
                "event_key": event.key,
                "event_type": event.event_type,
                "payload": event.payload,
            }).fetchone()
        if row is None:
            return None
        earlier_unsent = row.pop("earlier_unsent")
        return Payment(**row), earlier_unsent

    def mark_sent(self, event_ids: list[UUID]) -> None:
        """Mark these events sent: one statement, however many (the marker's
        batches, payment/marker.py)."""
        with self._statement() as cur:
            cur.execute(QUERIES["mark_outbox_sent"], {"event_ids": list(event_ids)})

    @contextmanager
    def claim_unsent(self, *, grace_s: float, limit: int):
        """Unsent events, locked until the block ends; the block sends them and
        gives back the ids that made it, which are marked sent in the same
        transaction."""
        with self._transaction(dict_row) as cur:
            rows = cur.execute(
                QUERIES["claim_unsent_events"], {"grace_s": grace_s, "limit": limit}
            ).fetchall()
            events = [OutboxEvent(
                event_id=r["event_id"], payment_id=r["payment_id"], topic=r["topic"],
                key=r["event_key"], event_type=r["event_type"], payload=r["payload"],
            ) for r in rows]
            sent: list[UUID] = []
            yield events, sent
            if events:
                cur.execute(QUERIES["count_attempt"], {"event_ids": [e.event_id for e in events]})
            if sent:
                cur.execute(QUERIES["mark_outbox_sent"], {"event_ids": sent})

    def claim_overdue(self, *, older_than_s: float, lease_s: float, limit: int) -> list[tuple[Payment, int]]:
        """Pending payments older than `older_than_s` that no other reconciler
        is asking about, each leased for `lease_s`, with its attempt number."""
        with self._statement() as cur:
            attempts = dict(cur.execute(QUERIES["claim_overdue_payments"], {
                "older_than_s": older_than_s, "lease_s": lease_s, "limit": limit}).fetchall())
        if not attempts:
            return []
        with self._statement(class_row(Payment)) as cur:
            payments = cur.execute(QUERIES["find_pending_payments"], {"ids": list(attempts)}).fetchall()
        return [(payment, attempts[payment.id]) for payment in payments]

    def postpone_check(self, payment: Payment, after_s: float) -> None:
        with self._statement() as cur:
            cur.execute(QUERIES["postpone_check"], {"payment_id": payment.id, "after_s": after_s})

    def forget_check(self, payment: Payment) -> None:
        with self._statement() as cur:
            cur.execute(QUERIES["forget_check"], {"payment_id": payment.id})

    def count_overdue(self, older_than_s: float) -> int:
        with self._statement() as cur:
            return cur.execute(QUERIES["count_overdue_payments"], {"older_than_s": older_than_s}).fetchone()[0]

    def delete_sent(self, retention_s: float, limit: int) -> int:
        """Delete at most `limit` sent events past retention, in a statement
        of its own (autocommit): a short transaction, however large the
        backlog. Returns how many went."""
        with self._statement() as cur:
            return cur.execute(QUERIES["delete_sent_events"], {"retention_s": retention_s, "limit": limit}).rowcount

    def find(self, payment_id: UUID) -> Payment | None:
        return self._one_payment("find_payment", {"id": payment_id})

    def list_for_order(self, order_id: UUID) -> list[Payment]:
        """Every attempt for the order, newest first: one statement, so one
        round trip, its own transaction."""
        with self._statement(class_row(Payment)) as cur:
            return cur.execute(QUERIES["list_payments_for_order"], {"order_id": order_id}).fetchall()

    def outbox_backlog(self) -> tuple[int, float | None]:
        """(unsent events, age in seconds of the oldest, or None when none)."""
        with self._statement() as cur:
            unsent, oldest_age_s = cur.execute(QUERIES["outbox_backlog"]).fetchone()
            return unsent, oldest_age_s


def _roll_back(conn) -> None:
    # A connection already broken is discarded by the pool; the first error
    # is the one to report.
    try:
        conn.execute("ROLLBACK")
    except psycopg.Error:
        pass
