"""The payment store: every statement of the service's own tables, each
a named query of sql/queries.sql, on the pool of payment/db/pool.py."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from uuid import UUID

import psycopg
from psycopg.rows import Row, RowFactory, class_row, dict_row, tuple_row

from payment.db.pool import (
    Connection,
    OneTransactionCursor,
    Pool,
    database_errors,
    mark_used,
    one_transaction_cursor,
    statement_cursor,
)
from payment.db.queries import QUERIES
from payment.model import OutboxEvent, Payment, PaymentRequest


class PaymentStore:
    """payment.ports.PaymentStore, and the outbox's side of it (OutboxStore)."""

    def __init__(self, pool: Pool) -> None:
        self.pool = pool

    @contextmanager
    def _connection(self) -> Iterator[Connection]:
        """A pooled connection; whatever psycopg raises while it is held,
        in the store's statements or the block they run, leaves translated."""
        with database_errors(), self.pool.connection() as conn:
            yield conn
            mark_used(conn)

    @contextmanager
    def _statement(self, row_factory: RowFactory[Row]) -> Iterator[psycopg.Cursor[Row]]:
        """A cursor whose each statement (one statement) is committed on its
        own: prepared on a direct route, with the transaction settings in the
        same round trip through a pooler (payment/db/pool.py)."""
        with self._connection() as conn:
            with statement_cursor(self.pool, conn, row_factory) as cur:
                yield cur

    @contextmanager
    def _statements(self, row_factory: RowFactory[Row]) -> Iterator[OneTransactionCursor[Row]]:
        """A cursor whose each execute is a group of statements sent as one
        simple query: one round trip, one implicit transaction (with the
        transaction settings first, through a pooler); it stands on the last
        statement's result."""
        with self._connection() as conn:
            with one_transaction_cursor(self.pool, conn, row_factory) as cur:
                yield cur

    @contextmanager
    def _transaction(self, row_factory: RowFactory[Row]) -> Iterator[psycopg.Cursor[Row]]:
        """A cursor in one transaction: committed when the block ends, rolled
        back if it raises. Through a pooler, BEGIN and the settings go in one
        round trip, as BEGIN alone does on a direct route."""
        with self._connection() as conn:
            conn.execute("BEGIN; " + self.pool.transaction_settings if self.pool.transaction_settings
                         else "BEGIN")
            try:
                with conn.cursor(row_factory=row_factory) as cur:
                    yield cur
            except BaseException:
                _roll_back(conn)
                raise
            conn.execute("COMMIT")

    def ping(self) -> bool:
        with self._statement(tuple_row) as cur:
            return cur.execute("SELECT 1").fetchone() == (1,)

    def _one_payment(self, query: str, params: dict[str, Any]) -> Payment | None:
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

    def attach_reference(self, payment: Payment, reference: str) -> Payment | None:
        """Keep the processor's reference on the pending payment, before it is
        charged; None if it was no longer pending, and nothing was written."""
        return self._one_payment("attach_gateway_reference", {"id": payment.id, "reference": reference})

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
        batches, payment/outbox/marker.py)."""
        with self._statement(tuple_row) as cur:
            cur.execute(QUERIES["mark_outbox_sent"], {"event_ids": list(event_ids)})

    @contextmanager
    def claim_unsent(self, *, grace_s: float, limit: int) -> Iterator[tuple[list[OutboxEvent], list[UUID]]]:
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
        with self._statement(tuple_row) as cur:
            attempts: dict[UUID, int] = dict(cur.execute(QUERIES["claim_overdue_payments"], {
                "older_than_s": older_than_s, "lease_s": lease_s, "limit": limit}).fetchall())
        if not attempts:
            return []
        with self._statement(class_row(Payment)) as cur:
            payments = cur.execute(QUERIES["find_pending_payments"], {"ids": list(attempts)}).fetchall()
        return [(payment, attempts[payment.id]) for payment in payments]

    def postpone_check(self, payment: Payment, after_s: float) -> None:
        with self._statement(tuple_row) as cur:
            cur.execute(QUERIES["postpone_check"], {"payment_id": payment.id, "after_s": after_s})

    def forget_check(self, payment: Payment) -> None:
        with self._statement(tuple_row) as cur:
            cur.execute(QUERIES["forget_check"], {"payment_id": payment.id})

    def count_overdue(self, older_than_s: float) -> int:
        with self._statement(tuple_row) as cur:
            count: int = _only_row(cur.execute(QUERIES["count_overdue_payments"], {"older_than_s": older_than_s}))[0]
            return count

    def delete_sent(self, retention_s: float, limit: int) -> int:
        """Delete at most `limit` sent events past retention, in a statement
        of its own (autocommit): a short transaction, however large the
        backlog. Returns how many went."""
        with self._statement(tuple_row) as cur:
            return cur.execute(QUERIES["delete_sent_events"], {"retention_s": retention_s, "limit": limit}).rowcount

    def remember_webhook_event(self, event_id: str) -> bool:
        """Record a gateway's webhook event by its id; False when it was
        recorded already (a repeated delivery)."""
        with self._statement(tuple_row) as cur:
            return cur.execute(QUERIES["remember_webhook_event"], {"event_id": event_id}).fetchone() is not None

    def forget_webhook_event(self, event_id: str) -> None:
        with self._statement(tuple_row) as cur:
            cur.execute(QUERIES["forget_webhook_event"], {"event_id": event_id})

    def delete_old_webhook_events(self, retention_s: float, limit: int) -> int:
        """Delete at most `limit` webhook event ids past retention; how many went."""
        with self._statement(tuple_row) as cur:
            return cur.execute(QUERIES["delete_old_webhook_events"],
                               {"retention_s": retention_s, "limit": limit}).rowcount

    def find(self, payment_id: UUID) -> Payment | None:
        return self._one_payment("find_payment", {"id": payment_id})

    def list_for_order(self, order_id: UUID) -> list[Payment]:
        """Every attempt for the order, newest first: one statement, so one
        round trip, its own transaction."""
        with self._statement(class_row(Payment)) as cur:
            return cur.execute(QUERIES["list_payments_for_order"], {"order_id": order_id}).fetchall()

    def outbox_backlog(self) -> tuple[int, float | None]:
        """(unsent events, age in seconds of the oldest, or None when none)."""
        with self._statement(tuple_row) as cur:
            unsent, oldest_age_s = _only_row(cur.execute(QUERIES["outbox_backlog"]))
            return unsent, oldest_age_s


def _only_row(cur: psycopg.Cursor[Row]) -> Row:
    """The row of a statement that always returns one (an aggregate)."""
    row = cur.fetchone()
    if row is None:
        raise psycopg.DataError("an aggregate returned no row")
    return row


def _roll_back(conn: Connection) -> None:
    # A connection already broken is discarded by the pool; the first error
    # is the one to report.
    try:
        conn.execute("ROLLBACK")
    except psycopg.Error:
        pass
