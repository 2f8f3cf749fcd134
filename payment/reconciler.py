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

Refunds left pending are settled the same way, through the refund flow's
own function (payment/refunds.py), after the payments of each pass:

  refunded        -> succeeded, payment-refunded
  refused         -> failed with the gateway's code, payment-refund-failed
  never refunded  -> failed REFUND_INTERRUPTED, payment-refund-failed; the
                     amount is refundable again, under a new Idempotency-Key
                     (the gateway has voided the refund id)
  unknown         -> stays pending, its amount still counted against the
                     payment; asked again after a backoff, counted in
                     payment_refund_reconciliations_total{result="unknown"}
                     and logged

It runs in each worker's relay thread and alone as `python -m payment reconcile`.
Several reconcilers take turns: each claims a payment or refund with a lease.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, Protocol

from payment import logs, refunds, service
from payment.model import Payment, Refund
from payment.ports import Found, RefundFound

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

    def refund_reconciled(self, result: str) -> None: ...


class Reconciler:
    def __init__(self, deps: service.Dependencies, *, refund_deps: refunds.RefundDependencies | None = None,
                 older_than_s: float, base_backoff_s: float, max_backoff_s: float, batch_size: int = BATCH_SIZE,
                 metrics: ReconcileCounter | None = None) -> None:
        self.deps = deps
        self.refund_deps = refund_deps
        self.older_than_s = older_than_s
        self.base_backoff_s = base_backoff_s
        self.max_backoff_s = max_backoff_s
        self.batch_size = batch_size
        self.metrics = metrics

    def run_once(self) -> dict[Found | RefundFound, int]:
        """One pass over the overdue payments, then the overdue refunds; how
        many of each answer."""
        counts: dict[Found | RefundFound, int] = {found: 0 for found in Found}
        claimed = self.deps.store.claim_overdue(
            older_than_s=self.older_than_s, lease_s=LEASE_S, limit=self.batch_size)
        for payment, attempts in claimed:
            counts[self._reconcile(payment, attempts)] += 1
        if self.refund_deps is not None:
            counts.update({found: 0 for found in RefundFound})
            for refund, attempts in self.refund_deps.store.claim_overdue_refunds(
                    older_than_s=self.older_than_s, lease_s=LEASE_S, limit=self.batch_size):
                counts[self._reconcile_refund(refund, attempts)] += 1
        return counts

    def _reconcile(self, payment: Payment, attempts: int) -> Found:
        settled = service.reconcile(payment, self.deps)
        found = Found.UNKNOWN if settled is None else _found(settled)
        self._record("payment", attempts, logs.payment_fields(payment), settled is not None, {
            "gatewayAnswer": found.value, "paymentStatus": getattr(settled, "status", None),
            "errorCode": getattr(settled, "error_code", None)},
            postpone=lambda wait_s: self.deps.store.postpone_check(payment, wait_s),
            forget=lambda: self.deps.store.forget_check(payment))
        if self.metrics is not None:
            self.metrics.reconciled(found.value)
        return found

    def _reconcile_refund(self, refund: Refund, attempts: int) -> RefundFound:
        deps = self.refund_deps
        assert deps is not None
        settled = refunds.reconcile(refund, deps)
        found = RefundFound.UNKNOWN if settled is None else refunds.answer_found(settled)
        self._record("refund", attempts, logs.refund_fields(refund), settled is not None, {
            "gatewayAnswer": found.value, "refundStatus": getattr(settled, "status", None),
            "errorCode": getattr(settled, "error_code", None)},
            postpone=lambda wait_s: deps.store.postpone_refund_check(refund, wait_s),
            forget=lambda: deps.store.forget_refund_check(refund))
        if self.metrics is not None:
            self.metrics.refund_reconciled(found.value)
        return found

    def _record(self, what: str, attempts: int, fields: dict[str, Any], settled: bool, outcome: dict[str, Any], *,
                postpone: Callable[[float], None], forget: Callable[[], None]) -> None:
        """Unknown: ask again after the backoff. Settled: forget the checks. A line either way."""
        fields = {**fields, "attempts": attempts}
        if not settled:
            wait_s = backoff(attempts, base_s=self.base_backoff_s, max_s=self.max_backoff_s)
            postpone(wait_s)
            log.warning("gateway cannot say what became of a pending %s; asking again in %gs",
                        what, wait_s, extra=fields)
            return
        forget()
        log.warning("pending %s settled from the gateway's answer", what, extra={**fields, **outcome})


def _found(settled: Payment) -> Found:
    if settled.status == "succeeded":
        return Found.CHARGED
    if settled.error_code == service.INTERRUPTED.error_code:
        return Found.NEVER_CHARGED
    return Found.DECLINED
