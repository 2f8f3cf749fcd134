"""The reconciler: settles payments left pending by asking the gateway.

A payment stays pending when its outcome could not be recorded: the
gateway's answer was lost, the database failed after the charge, or the
worker died mid-payment. Once a pending payment is older than
`PENDING_TIMEOUT_S` (longer than any request can run), the reconciler asks
the gateway what became of it and settles it through the same service
function as the request path:

  charged        -> succeeded, payment-succeeded
  declined       -> failed with the gateway's code, payment-failed
  never charged  -> failed PROCESSING_INTERRUPTED, payment-failed; the order
                    can be paid again (the gateway has voided the payment id)
  unknown        -> stays pending; asked again after a backoff, counted in
                    payment_reconciliations_total{result="unknown"} and logged

It runs in each worker's relay thread and alone as `python -m payment reconcile`.
Several reconcilers take turns: each claims a payment with a lease.
"""

from __future__ import annotations

import logging
from typing import Protocol

from payment import logs, service
from payment.model import Payment
from payment.ports import Found

log = logging.getLogger(__name__)

# How long one reconciler holds a payment it is asking about: longer than a
# gateway lookup can take.
LEASE_S = 60.0
# The most overdue payments one pass claims.
BATCH_SIZE = 100


def backoff(attempts: int, *, base_s: float, max_s: float) -> float:
    """Wait before asking again after `attempts` unknown answers: doubling, capped."""
    return min(base_s * 2.0 ** max(attempts - 1, 0), max_s)


class ReconcileCounter(Protocol):
    """Where each answer is counted (metrics.Metrics)."""

    def reconciled(self, result: str) -> None: ...


class Reconciler:
    def __init__(self, deps: service.Dependencies, *, older_than_s: float, base_backoff_s: float,
                 max_backoff_s: float, batch_size: int = BATCH_SIZE,
                 metrics: ReconcileCounter | None = None) -> None:
        self.deps = deps
        self.older_than_s = older_than_s
        self.base_backoff_s = base_backoff_s
        self.max_backoff_s = max_backoff_s
        self.batch_size = batch_size
        self.metrics = metrics

    def run_once(self) -> dict[Found, int]:
        """One pass over the overdue payments; how many of each answer."""
        counts = {found: 0 for found in Found}
        claimed = self.deps.store.claim_overdue(
            older_than_s=self.older_than_s, lease_s=LEASE_S, limit=self.batch_size)
        for payment, attempts in claimed:
            counts[self._reconcile(payment, attempts)] += 1
        return counts

    def _reconcile(self, payment: Payment, attempts: int) -> Found:
        fields = {**logs.payment_fields(payment), "attempts": attempts}
        settled = service.reconcile(payment, self.deps)
        if settled is None:
            wait_s = backoff(attempts, base_s=self.base_backoff_s, max_s=self.max_backoff_s)
            self.deps.store.postpone_check(payment, wait_s)
            log.warning("gateway cannot say what became of a pending payment; asking again in %gs",
                        wait_s, extra=fields)
            found = Found.UNKNOWN
        else:
            found = _found(settled)
            self.deps.store.forget_check(payment)
            log.warning("pending payment settled from the gateway's answer",
                        extra={**fields, "gatewayAnswer": found.value, "paymentStatus": settled.status,
                               "errorCode": settled.error_code})
        if self.metrics is not None:
            self.metrics.reconciled(found.value)
        return found


def _found(settled: Payment) -> Found:
    if settled.status == "succeeded":
        return Found.CHARGED
    if settled.error_code == service.INTERRUPTED.error_code:
        return Found.NEVER_CHARGED
    return Found.DECLINED
