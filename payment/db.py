"""PostgreSQL adapter: the connection pool, the payment store and the schema.

Database faults become DatabaseUnavailable here, so no layer above ever sees
a psycopg exception (nor shows its text to a client).
"""

from __future__ import annotations

import logging
import time
import weakref
from contextlib import contextmanager
from uuid import UUID

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from psycopg.rows import class_row, dict_row
from psycopg_pool import ConnectionPool, PoolTimeout

from payment.errors import DatabaseUnavailable, PaymentAlreadySettled
from payment.model import ChargeResult, OutboxEvent, Payment, PaymentRequest
from payment.queries import QUERIES, SCHEMA_SQL

log = logging.getLogger(__name__)

# Any two-int key works; this one is "payment" spelled on a phone keypad.
_MIGRATION_LOCK = 7_296_368


def open_pool(conninfo: str, *, min_size: int, max_size: int, timeout: float) -> ConnectionPool:
    """A pool opened explicitly; it keeps trying in the background while the
    database is away, and a request waits at most `timeout` for a connection."""
    pool = ConnectionPool(
        _with_statement_timeout(conninfo, timeout),
        min_size=min_size,
        max_size=max_size,
        timeout=timeout,
        open=False,
        name="payments",
        check=_check_unless_just_used,
        # Autocommit: a single statement is its own transaction and costs one
        # round trip; PaymentStore opens explicit transactions for the rest.
        kwargs={"connect_timeout": max(1, round(timeout)), "autocommit": True},
        reconnect_timeout=0,
    )
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


def _with_statement_timeout(conninfo: str, timeout: float) -> str:
    # A statement that runs past the request's budget is a fault, not a slow
    # answer. Kept beside any options already given (SearchPath).
    params = conninfo_to_dict(conninfo)
    params["options"] = f"{params.get('options', '')} -c statement_timeout={int(timeout * 1000)}".strip()
    return make_conninfo(**params)


def apply_schema(conninfo: str) -> None:
    """Apply sql/schema.sql once, whoever else is starting at the same time."""
    with psycopg.connect(conninfo, autocommit=True, connect_timeout=10) as conn:
        conn.execute("SELECT pg_advisory_lock(%s)", (_MIGRATION_LOCK,))
        try:
            conn.execute(SCHEMA_SQL)
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (_MIGRATION_LOCK,))


class PaymentStore:
    def __init__(self, pool: ConnectionPool):
        self.pool = pool

    @contextmanager
    def _connection(self):
        try:
            with self.pool.connection() as conn:
                yield conn
                _last_used[conn] = time.monotonic()
        except (psycopg.OperationalError, PoolTimeout) as exc:
            log.warning("database unavailable: %s", type(exc).__name__)
            raise DatabaseUnavailable() from exc

    @contextmanager
    def _statement(self, row_factory=None):
        """A cursor for one statement, committed on its own (autocommit)."""
        with self._connection() as conn:
            with conn.cursor(row_factory=row_factory) as cur:
                yield cur

    @contextmanager
    def _transaction(self, row_factory=None):
        """A cursor in one transaction: committed when the block ends, rolled
        back if it raises."""
        with self._connection() as conn:
            with conn.transaction(), conn.cursor(row_factory=row_factory) as cur:
                yield cur

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

    @contextmanager
    def settlement(self):
        """One transaction for a payment's outcome and its event: both or neither."""
        with self._transaction(class_row(Payment)) as cur:
            yield Settlement(cur)

    def mark_sent(self, event_ids: list[UUID]) -> None:
        # Each mark is a statement of its own: committed alone, no BEGIN or
        # COMMIT round trips.
        with self._statement() as cur:
            for event_id in event_ids:
                cur.execute(QUERIES["mark_outbox_sent"], {"event_id": event_id})

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
            for event_id in sent:
                cur.execute(QUERIES["mark_outbox_sent"], {"event_id": event_id})

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
        """Every attempt for the order, newest first."""
        with self._transaction(class_row(Payment)) as cur:
            return cur.execute(QUERIES["list_payments_for_order"], {"order_id": order_id}).fetchall()

    def outbox_backlog(self) -> tuple[int, float | None]:
        """(unsent events, age in seconds of the oldest, or None when none)."""
        with self._transaction() as cur:
            unsent, oldest_age_s = cur.execute(QUERIES["outbox_backlog"]).fetchone()
            return unsent, oldest_age_s


class Settlement:
    """The statements of one settling transaction (PaymentStore.settlement)."""

    def __init__(self, cursor):
        self.cursor = cursor

    def record_outcome(self, payment: Payment, result: ChargeResult) -> Payment | None:
        """The payment settled with the gateway's result (processed_at from
        the database clock), or None if it was no longer pending."""
        return self.cursor.execute(QUERIES["record_outcome"], {
            "id": payment.id,
            "status": "succeeded" if result.succeeded else "failed",
            "transaction_id": result.transaction_id,
            "error_code": result.error_code,
            "error_message": result.error_message,
            "failure_reason": result.failure_reason,
            "simulated_response": result.simulated_response,
        }).fetchone()

    def add_event(self, event: OutboxEvent) -> bool:
        """Write the event to the outbox; True if an older event of the same
        order is still unsent (this one must then wait its turn)."""
        return self.cursor.connection.execute(QUERIES["insert_outbox_event"], _outbox_params(event)).fetchone()[0]


def _outbox_params(event: OutboxEvent) -> dict:
    return {
        "event_id": event.event_id, "payment_id": event.payment_id, "topic": event.topic,
        "event_key": event.key, "event_type": event.event_type, "payload": event.payload,
    }
