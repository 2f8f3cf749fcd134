"""The simulated payment processor, behind the gateway port.

It answers from the amount, so that every outcome can be produced on
purpose (docs/api.md, "Test amounts"), and keeps a durable ledger the way a real
processor keeps its own records: one row per payment id (the idempotency key)
in `bc_payment.simulator_ledger`, committed on its own whatever becomes of
the payment's own transactions. The row is the charge taken or, when a
lookup found none, the payment id's void, so that a charge still on its way
is refused. The first writer wins, without a lock: each inserts with ON
CONFLICT DO NOTHING and, finding a row there, reads it (a repeated charge
returns the first result; a charge after a void is refused). A lookup reads
the ledger, so it survives a restart of the service. Views of the ledger
show the charges (`bc_payment.simulator_charges`) and the voids
(`bc_payment.simulator_voids`).

Refunds are kept the same way, one row per refund in
`bc_payment.simulator_refunds`, keyed by the refund id. Like a processor,
the simulator refunds only a payment it charged, and never more than that
charge in all; a refund whose amount ends in .77 it refuses
(REFUND_DECLINED). A lookup that finds no refund voids the refund id, so
that a refund still on its way is refused.

Latency: `delay_before_charge_ms` passes before the processor takes the
charge or the refund (the request's way there), `latency_ms` after (the
answer's way back). A fault in between is money moved and an answer lost.

Its statements are its own (sql/simulator.sql), run on the pool that the
composition root (payment/bootstrap.py) hands it: the service's database,
not the service's store.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import time
from decimal import Decimal
from typing import Any

import psycopg
from psycopg.rows import TupleRow, tuple_row
from psycopg_pool import PoolTimeout

from payment.db.pool import Pool, one_transaction_cursor, statement_cursor
from payment.db.queries import is_statement_group, load_queries
from payment.files import SQL_DIR
from payment.gateways.port import (
    NEVER_CHARGED,
    NEVER_REFUNDED,
    REFUND_UNKNOWN,
    UNKNOWN,
    GatewayUnreachable,
    Lookup,
    RefundLookup,
)
from payment.model import ChargeResult, Payment, PaymentRequest, Refund, RefundResult

log = logging.getLogger(__name__)

# The ledger's statements, loaded once.
LEDGER_QUERIES = load_queries(SQL_DIR / "simulator.sql")
# The ledger's queries of several statements (the refunds', under their lock).
_STATEMENT_GROUPS = frozenset(name for name, query in LEDGER_QUERIES.items() if is_statement_group(query))

LARGEST_ACCEPTED = Decimal("999999.99")

# (errorCode, errorMessage, failureReason)
Decline = tuple[str, str, str]

# cents -> its decline
_DECLINES: dict[Decimal, Decline] = {
    Decimal("0.13"): ("CARD_DECLINED", "Card declined", "Issuing bank rejected the transaction"),
    Decimal("0.66"): ("INSUFFICIENT_FUNDS", "Card declined due to insufficient funds",
                      "The payment gateway returned error code 51"),
    Decimal("0.99"): ("PROCESSOR_TIMEOUT", "Payment processor timed out",
                      "The payment processor did not answer in time"),
}
_TOO_LARGE = ("AMOUNT_TOO_LARGE", "Amount exceeds the gateway limit",
              "The payment gateway accepts amounts below 999999.99")
_VOIDED = ChargeResult(
    succeeded=False, transaction_id=None, simulated_response="Declined - ErrorCode: PAYMENT_VOIDED",
    error_code="PAYMENT_VOIDED", error_message="Payment was cancelled",
    failure_reason="The payment gateway had closed this payment before the charge arrived",
)

# The refund test amount: cents -> errorCode. The processor's own refusals
# (no charge, more than it) come from its ledger.
REFUND_DECLINES: dict[Decimal, str] = {Decimal("0.77"): "REFUND_DECLINED"}
REFUND_MESSAGES = {
    "REFUND_DECLINED": "Refund declined by the payment processor",
    "CHARGE_NOT_FOUND": "The payment processor holds no charge to refund for this payment",
    "AMOUNT_EXCEEDS_CHARGE": "Refund exceeds what is left of the charge",
    "REFUND_VOIDED": "Refund was cancelled",
}
_REFUND_VOIDED = RefundResult(succeeded=False, transaction_id=None, error_code="REFUND_VOIDED",
                              error_message=REFUND_MESSAGES["REFUND_VOIDED"])


def decline_for(amount: Decimal) -> Decline | None:
    """The simulated decline for this amount, or None for a success."""
    if amount >= LARGEST_ACCEPTED:
        return _TOO_LARGE
    return _DECLINES.get(amount % 1)


def decide(payment: Payment) -> ChargeResult:
    decline = decline_for(payment.amount)
    if decline:
        code, message, reason = decline
        return ChargeResult(
            succeeded=False, transaction_id=None, simulated_response=f"Declined - ErrorCode: {code}",
            error_code=code, error_message=message, failure_reason=reason,
        )
    transaction_id = "txn_" + secrets.token_hex(8)
    return ChargeResult(succeeded=True, transaction_id=transaction_id,
                        simulated_response=f"Success - TransactionId: {transaction_id}")


class SimulatedGateway:
    is_simulated = True

    def __init__(self, pool: Pool, *, latency_ms: int, delay_before_charge_ms: int, ledger_path: str | None) -> None:
        self.pool = pool
        self.latency_s = latency_ms / 1000
        self.delay_before_s = delay_before_charge_ms / 1000
        # A file that gets one JSON line per charge taken, beside the ledger:
        # for an operator (or a test) counting charges across instances.
        self.ledger_path = ledger_path

    def check_request(self, request: PaymentRequest) -> None:
        """Every request will do: a paymentToken is accepted and ignored."""

    def prepare(self, payment: Payment) -> None:
        return None  # the payment id is the simulator's key

    def charge(self, payment: Payment) -> ChargeResult:
        if self.delay_before_s:
            time.sleep(self.delay_before_s)
        decision = decide(payment)
        taken = self._ledger("simulator_charge", {
            "payment_id": payment.id, "order_id": payment.order_id, "amount": payment.amount,
            "currency": payment.currency, "succeeded": decision.succeeded,
            "transaction_id": decision.transaction_id, "error_code": decision.error_code,
            "error_message": decision.error_message, "failure_reason": decision.failure_reason,
            "response": decision.simulated_response,
        })
        if taken and self.ledger_path:
            _append_line(self.ledger_path, payment, taken[0])
        # Not taken: the payment id was charged (that first result stands) or voided.
        result = _result(taken) if taken else self._on_record(payment) or _VOIDED
        if self.latency_s:
            time.sleep(self.latency_s)
        return result

    def lookup(self, payment: Payment) -> Lookup:
        try:
            if self._ledger("simulator_lookup", {"payment_id": payment.id}):
                return NEVER_CHARGED  # voided by this call
            charge = self._on_record(payment)
        except GatewayUnreachable:
            return UNKNOWN
        return Lookup.of(charge) if charge else NEVER_CHARGED

    def _on_record(self, payment: Payment) -> ChargeResult | None:
        """The ledger's row for a payment id that an insert found there: its
        charge, or None for a void."""
        row = self._ledger("simulator_ledger_row", {"payment_id": payment.id})
        if row is None:
            # The service never deletes a row: one gone since the insert was
            # removed by hand, and what the processor did is not known.
            log.warning("simulated processor lost a ledger row", extra={"paymentId": str(payment.id)})
            raise GatewayUnreachable()
        voided, *charge = row
        return None if voided else _result(tuple(charge))

    def refund(self, payment: Payment, refund: Refund) -> RefundResult:
        if self.delay_before_s:
            time.sleep(self.delay_before_s)
        row = self._ledger("simulator_refund", {
            "refund_id": refund.id, "payment_id": payment.id, "amount": refund.amount,
            "currency": refund.currency, "transaction_id": "txn_" + secrets.token_hex(8),
            "error_code": REFUND_DECLINES.get(refund.amount % 1),
        })
        if self.latency_s:
            time.sleep(self.latency_s)
        return _refund_result(row) if row else _REFUND_VOIDED

    def lookup_refund(self, payment: Payment, refund: Refund) -> RefundLookup:
        try:
            row = self._ledger("simulator_refund_lookup", {"refund_id": refund.id, "payment_id": payment.id})
        except GatewayUnreachable:
            return REFUND_UNKNOWN
        return RefundLookup.of(_refund_result(row)) if row else NEVER_REFUNDED

    def _ledger(self, query: str, params: dict[str, Any]) -> TupleRow | None:
        """Run one ledger statement (or statement group); its (last) row, if any."""
        # A group goes as one simple query; a single statement is prepared
        # where the route allows (payment/db/pool.py).
        cursor = one_transaction_cursor if query in _STATEMENT_GROUPS else statement_cursor
        try:
            with self.pool.connection() as conn, cursor(self.pool, conn, tuple_row) as cur:
                return cur.execute(LEDGER_QUERIES[query], params).fetchone()
        except (psycopg.Error, PoolTimeout) as exc:
            log.warning("simulated processor unavailable: %s", type(exc).__name__,
                        extra={"paymentId": str(params["payment_id"])})
            raise GatewayUnreachable() from None


def _append_line(path: str, payment: Payment, succeeded: bool) -> None:
    line = json.dumps({"paymentId": str(payment.id), "orderId": str(payment.order_id),
                       "amount": str(payment.amount), "succeeded": succeeded}) + "\n"
    # One write() on an O_APPEND descriptor: lines from many processes never interleave.
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)


def _result(row: TupleRow) -> ChargeResult:
    succeeded, transaction_id, code, message, reason, response = row
    return ChargeResult(succeeded=succeeded, transaction_id=transaction_id, simulated_response=response,
                        error_code=code, error_message=message, failure_reason=reason)


def _refund_result(row: TupleRow) -> RefundResult:
    succeeded, transaction_id, code, _taken_now = row
    return RefundResult(succeeded=succeeded, transaction_id=transaction_id, error_code=code,
                        error_message=None if code is None else REFUND_MESSAGES[code])
