"""The outbox relay: sends committed events that were not confirmed at
request time (the broker was away, or slow), oldest first.

Every worker of every instance runs one. A relay claims whole order keys
(sql/queries.sql claim_unsent_events): the events of one order are sent by
one relay at a time, in commit order, never split between two.

It only claims an order whose oldest unsent event is older than a grace
period, past the producer's own retry window, so it does not race a request
still waiting for its delivery report (Config.outbox_relay_grace). A row
sent twice carries the same eventId both times.

Each pass also runs the reconciler, when one is given: payments left
pending are settled from what the gateway knows (payment/reconciler.py).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Protocol

from payment.errors import DatabaseUnavailable
from payment.ports import Delivery, OutboxStore

log = logging.getLogger(__name__)

# How long a pass waits for the delivery reports of the events it sent;
# those not confirmed by then stay unsent, for a later pass.
DELIVERY_WAIT_S = 10.0
# Sent events past retention are deleted every CLEANUP_EVERY_S, in batches of
# CLEANUP_BATCH rows (each its own short statement, far inside the statement
# timeout), for at most CLEANUP_BUDGET_S per pass so that sending is not held
# up; a backlog left over goes on at the next pass. A failed cleanup waits
# CLEANUP_FIRST_BACKOFF_S, doubling up to CLEANUP_EVERY_S, rather than
# hammering a database that is already slow.
CLEANUP_EVERY_S = 600.0
CLEANUP_BATCH = 2000
CLEANUP_BUDGET_S = 0.5
CLEANUP_FIRST_BACKOFF_S = 5.0
# The ids of the gateway's webhook events already handled are kept this
# long: past Stripe's three days of retries, after which no delivery repeats.
WEBHOOK_EVENT_RETENTION_S = 7 * 24 * 3600.0


class Pass(Protocol):
    """What else each pass runs: the reconciler (payment/reconciler.py)."""

    def run_once(self) -> object: ...


class OutboxRelay:
    def __init__(self, store: OutboxStore, delivery: Delivery, *, reconciler: Pass | None = None, outbox: bool = True,
                 interval_s: float, grace_s: float, batch_size: int, retention_s: float, max_backoff_s: float,
                 delivery_timeout_s: float = DELIVERY_WAIT_S,
                 cleanup_batch: int = CLEANUP_BATCH, cleanup_budget_s: float = CLEANUP_BUDGET_S) -> None:
        """The settings the configuration holds are required (payment/bootstrap.py
        passes them); the others are this module's constants."""
        self.store = store
        self.delivery = delivery
        self.reconciler = reconciler
        self.outbox = outbox  # False: a loop for the reconciler alone
        self.interval_s = interval_s
        self.grace_s = grace_s
        self.batch_size = batch_size
        self.delivery_timeout_s = delivery_timeout_s
        self.retention_s = retention_s
        self.max_backoff_s = max_backoff_s
        self.cleanup_batch = cleanup_batch
        self.cleanup_budget_s = cleanup_budget_s
        self.next_cleanup = 0.0  # time.monotonic() of the next cleanup
        self._cleanup_backoff = 0.0
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def send_batch(self) -> tuple[int, int]:
        """One pass: returns (claimed, confirmed). The claimed orders' oldest
        events stay locked while they are sent, so no other relay sends any
        event of those orders at the same moment."""
        with self.store.claim_unsent(grace_s=self.grace_s, limit=self.batch_size) as (events, sent):
            sent.extend(self.delivery.send(events, timeout=self.delivery_timeout_s))
            return len(events), len(sent)

    def run(self) -> None:
        """Loop until stopped, backing off while the broker or database is away."""
        delay = self.interval_s
        while not self._stopping.is_set():
            try:
                if self.reconciler is not None:
                    self.reconciler.run_once()
                if not self.outbox:
                    delay = self.interval_s
                else:
                    delay = self._outbox_pass(delay)
                    if time.monotonic() >= self.next_cleanup:
                        self.clean_up()
            except DatabaseUnavailable:
                delay = min(max(delay, self.interval_s) * 2, self.max_backoff_s)
            except Exception:
                log.exception("outbox relay pass failed")
                delay = min(max(delay, self.interval_s) * 2, self.max_backoff_s)
            self._stopping.wait(delay)

    def _outbox_pass(self, delay: float) -> float:
        """Send one batch; the wait before the next pass."""
        claimed, sent = self.send_batch()
        if claimed:
            log.info("outbox relay sent %d of %d events", sent, claimed)
        if sent == self.batch_size:
            return 0
        return self.interval_s if sent == claimed else min(delay * 2, self.max_backoff_s)

    def clean_up(self) -> int:
        """Delete sent events past retention, batch by batch, for at most the
        cleanup budget; sets when the next cleanup is due. Returns how many
        went. Never raises: a failure backs the cleanup off, not the sending."""
        deadline = time.monotonic() + self.cleanup_budget_s
        deleted = 0
        try:
            done = True
            for delete in (lambda: self.store.delete_sent(self.retention_s, self.cleanup_batch),
                           lambda: self.store.delete_old_webhook_events(WEBHOOK_EVENT_RETENTION_S,
                                                                        self.cleanup_batch)):
                more, count = self._delete_batches(delete, deadline)
                deleted += count
                done = done and not more
            # More left: go on at the next pass, after its sending.
            self._schedule_cleanup(CLEANUP_EVERY_S if done else 0.0, failed=False)
        except Exception as exc:
            self._cleanup_backoff = min(max(self._cleanup_backoff * 2, CLEANUP_FIRST_BACKOFF_S), CLEANUP_EVERY_S)
            self._schedule_cleanup(self._cleanup_backoff, failed=True)
            log.warning("outbox cleanup failed (%s); next try in %.0f s", type(exc).__name__, self._cleanup_backoff)
        if deleted:
            log.info("outbox relay deleted %d sent events past retention", deleted)
        return deleted

    def _delete_batches(self, delete: Callable[[], int], deadline: float) -> tuple[bool, int]:
        """Batches of one kind of row past retention until none is left or
        the budget is spent: (whether more is left, how many went)."""
        deleted = 0
        while time.monotonic() < deadline and not self._stopping.is_set():
            batch = delete()
            deleted += batch
            if batch < self.cleanup_batch:
                return False, deleted  # nothing more past retention (or another relay holds it)
        return True, deleted

    def _schedule_cleanup(self, after_s: float, *, failed: bool) -> None:
        if not failed:
            self._cleanup_backoff = 0.0
        self.next_cleanup = time.monotonic() + after_s

    def start(self) -> "OutboxRelay":
        self._thread = threading.Thread(target=self.run, name="outbox-relay", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        self._stopping.set()
        if self._thread:
            self._thread.join(timeout)
