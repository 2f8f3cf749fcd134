"""The refunds' statements (sql/queries.sql), on the payment store's pool and
connection handling: a refund store is a payment store that also keeps
refunds (payment.ports.RefundStore), so the refund flow reads payments and
marks events through it."""

from __future__ import annotations

from decimal import Decimal
from typing import Any
from uuid import UUID

import psycopg
from psycopg.rows import DictRow, dict_row, tuple_row

from payment.db.queries import QUERIES
from payment.db.store import PaymentStore
from payment.model import OutboxEvent, Refund, RefundRequest
from payment.ports import RefundEventFor, RefundReservation, SettledRefund


class RefundStore(PaymentStore):
    """payment.ports.RefundStore over PostgreSQL."""

    def _refunds(self, query: str, params: dict[str, Any]) -> list[Refund]:
        with self._statement(dict_row) as cur:
            return [Refund(**row) for row in cur.execute(QUERIES[query], params).fetchall()]

    def _one_refund(self, query: str, params: dict[str, Any]) -> Refund | None:
        found = self._refunds(query, params)
        return found[0] if found else None

    def find_refund(self, refund_id: UUID) -> Refund | None:
        return self._one_refund("find_refund", {"id": refund_id})

    def find_refund_by_key(self, idempotency_key: str) -> Refund | None:
        return self._one_refund("find_refund_by_key", {"idempotency_key": idempotency_key})

    def list_refunds(self, payment_id: UUID) -> list[Refund]:
        """The payment's refunds, newest first."""
        return self._refunds("list_refunds_for_payment", {"payment_id": payment_id})

    def insert_pending_refund(self, request: RefundRequest, refund_id: UUID, *,
                              is_simulated: bool) -> RefundReservation:
        """The pending refund, inserted only if the payment has succeeded, the
        amount (all that is left when None) is within what is left to refund,
        and the idempotency key is new; one round trip (the guard's two
        statements, sql/queries.sql insert_pending_refund)."""
        with self._statements(dict_row) as cur:
            row = cur.execute(QUERIES["insert_pending_refund"], {
                "payment_id": request.payment_id, "amount": request.amount, "id": refund_id,
                "reason": request.reason, "is_simulated": is_simulated,
                "idempotency_key": request.idempotency_key, "fingerprint": request.fingerprint,
            }).fetchone()
        if row is None:
            return RefundReservation(refund=None, payment_status=None, refundable=None)
        status, refundable = row.pop("payment_status"), row.pop("refundable")
        refund = Refund(**row) if row["id"] is not None else None
        return RefundReservation(refund=refund, payment_status=status, refundable=refundable)

    def settle_refund(self, settled: Refund, event_for: RefundEventFor) -> SettledRefund | None:
        """Record a pending refund's outcome (`settled`: the refund as it is
        to be) and its event, both or neither. The payment's row is locked
        first and its refunds summed under the lock, so the event's total
        refunded counts every refund settled before it, and none settles
        between. None if the refund was no longer pending: nothing written."""
        with self._transaction(dict_row) as cur:
            event = event_for(settled, _refunded_before(cur.connection, settled)
                              + (settled.amount if settled.status == "succeeded" else 0))
            row: DictRow | None = cur.execute(QUERIES["settle_refund"], {
                "id": settled.id,
                "status": settled.status,
                "transaction_id": settled.transaction_id,
                "error_code": settled.error_code,
                "error_message": settled.error_message,
                "processed_at": settled.processed_at,
                "event_id": event.event_id,
                "topic": event.topic,
                "event_key": event.key,
                "event_type": event.event_type,
                "payload": event.payload,
            }).fetchone()
        if row is None:
            return None
        earlier_unsent = bool(row.pop("earlier_unsent"))
        return SettledRefund(Refund(**row), event, earlier_unsent)

    def earlier_unsent(self, event: OutboxEvent) -> bool:
        """Whether an event of the same order committed before `event` is still unsent."""
        with self._statement(tuple_row) as cur:
            row = cur.execute(QUERIES["earlier_unsent_event"],
                              {"event_key": event.key, "event_id": event.event_id}).fetchone()
        return bool(row and row[0])

    def claim_overdue_refunds(self, *, older_than_s: float, lease_s: float,
                              limit: int) -> list[tuple[Refund, int]]:
        """Pending refunds older than `older_than_s` that no other reconciler
        is asking about, each leased for `lease_s`, with its attempt number."""
        with self._statement(tuple_row) as cur:
            attempts: dict[UUID, int] = dict(cur.execute(QUERIES["claim_overdue_refunds"], {
                "older_than_s": older_than_s, "lease_s": lease_s, "limit": limit}).fetchall())
        if not attempts:
            return []
        pending = self._refunds("find_pending_refunds", {"ids": list(attempts)})
        return [(refund, attempts[refund.id]) for refund in pending]

    def postpone_refund_check(self, refund: Refund, after_s: float) -> None:
        with self._statement(tuple_row) as cur:
            cur.execute(QUERIES["postpone_refund_check"], {"refund_id": refund.id, "after_s": after_s})

    def forget_refund_check(self, refund: Refund) -> None:
        with self._statement(tuple_row) as cur:
            cur.execute(QUERIES["forget_refund_check"], {"refund_id": refund.id})

    def count_overdue_refunds(self, older_than_s: float) -> int:
        with self._statement(tuple_row) as cur:
            row = cur.execute(QUERIES["count_overdue_refunds"], {"older_than_s": older_than_s}).fetchone()
        return int(row[0]) if row else 0


def _refunded_before(conn: psycopg.Connection[Any], refund: Refund) -> Decimal:
    """Inside settle's transaction: the payment's row locked, then what its
    refunds already gave back. Two statements in one round trip, bound on the
    client; the cursor ends on the second's row."""
    with psycopg.ClientCursor(conn) as locking:
        locking.execute(QUERIES["lock_payment_for_refund_outcome"], {"payment_id": refund.payment_id})
        locking.nextset()
        row = locking.fetchone()
    return Decimal(row[0]) if row else Decimal(0)
