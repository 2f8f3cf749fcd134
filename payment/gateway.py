"""The payment gateway port and its simulator.

`PaymentGateway` is the port: a real processor adapter (Stripe, Adyen...)
replaces `SimulatedGateway` by implementing `charge`. The simulator answers
deterministically from the amount, so that every outcome can be produced on
purpose (see README, "Test amounts").
"""

from __future__ import annotations

import json
import os
import secrets
import time
from decimal import Decimal
from typing import Protocol

from payment.model import ChargeResult, Payment

LARGEST_ACCEPTED = Decimal("999999.99")

# cents -> (errorCode, errorMessage, failureReason)
_DECLINES = {
    Decimal("0.13"): ("CARD_DECLINED", "Card declined", "Issuing bank rejected the transaction"),
    Decimal("0.66"): ("INSUFFICIENT_FUNDS", "Card declined due to insufficient funds",
                      "The payment gateway returned error code 51"),
    Decimal("0.99"): ("PROCESSOR_TIMEOUT", "Payment processor timed out",
                      "The payment processor did not answer in time"),
}
_TOO_LARGE = ("AMOUNT_TOO_LARGE", "Amount exceeds the gateway limit",
              "The payment gateway accepts amounts below 999999.99")


class PaymentGateway(Protocol):
    is_simulated: bool

    def charge(self, payment: Payment) -> ChargeResult: ...


class SimulatedGateway:
    """`ledger_path`, when given, gets one JSON line per charge attempt, the
    way a processor keeps its own record: it lets an operator (or a test)
    count what reached the gateway, across processes and instances."""

    is_simulated = True

    def __init__(self, latency_ms: int = 0, ledger_path: str | None = None):
        self.latency_s = latency_ms / 1000
        self.ledger_path = ledger_path

    def charge(self, payment: Payment) -> ChargeResult:
        if self.latency_s:
            time.sleep(self.latency_s)
        result = self._decide(payment)
        if self.ledger_path:
            self._record(payment, result)
        return result

    def _record(self, payment: Payment, result: ChargeResult) -> None:
        line = json.dumps({"paymentId": str(payment.id), "orderId": str(payment.order_id),
                           "amount": str(payment.amount), "succeeded": result.succeeded}) + "\n"
        # One write() on an O_APPEND descriptor: lines from many processes never interleave.
        fd = os.open(self.ledger_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(fd, line.encode())
        finally:
            os.close(fd)

    def _decide(self, payment: Payment) -> ChargeResult:
        decline = decline_for(payment.amount)
        if decline:
            code, message, reason = decline
            return ChargeResult(
                succeeded=False, transaction_id=None,
                simulated_response=f"Declined - ErrorCode: {code}",
                error_code=code, error_message=message, failure_reason=reason,
            )
        transaction_id = "txn_" + secrets.token_hex(8)
        return ChargeResult(
            succeeded=True, transaction_id=transaction_id,
            simulated_response=f"Success - TransactionId: {transaction_id}",
        )


def decline_for(amount: Decimal):
    """The simulated decline for this amount, or None for a success."""
    if amount >= LARGEST_ACCEPTED:
        return _TOO_LARGE
    return _DECLINES.get(amount % 1)
