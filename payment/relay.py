"""The outbox relay: sends committed events that were not confirmed at
request time (the broker was away, or slow), oldest first.

It only claims rows older than a grace period, past the producer's own
retry window, so it does not race a request still waiting for its delivery
report. A row sent twice carries the same eventId both times.

Each pass also runs the reconciler, when one is given: payments left
pending are settled from what the gateway knows (payment/reconciler.py).
"""

from __future__ import annotations

import logging
import threading
import time

from payment.errors import DatabaseUnavailable
from payment.kafka import MESSAGE_TIMEOUT_S

log = logging.getLogger(__name__)


def grace_after(message_timeout_s: float) -> float:
    """Past the producer's own retry window, so as not to race it."""
    return message_timeout_s + 5


GRACE_S = grace_after(MESSAGE_TIMEOUT_S)
CLEANUP_EVERY_S = 600.0

class OutboxRelay:
    def __init__(self, store, delivery, *, reconciler=None, outbox: bool = True, interval_s: float = 1.0, grace_s: float = GRACE_S,
                 batch_size: int = 200, delivery_timeout_s: float = 10.0,
                 retention_s: float = 7 * 24 * 3600, max_backoff_s: float = 10.0):
        self.store = store
        self.delivery = delivery
        self.reconciler = reconciler  # reconciler.Reconciler, or None
        self.outbox = outbox  # False: a loop for the reconciler alone
        self.interval_s = interval_s
        self.grace_s = grace_s
        self.batch_size = batch_size
        self.delivery_timeout_s = delivery_timeout_s
        self.retention_s = retention_s
        self.max_backoff_s = max_backoff_s
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def send_batch(self) -> tuple[int, int]:
        """One pass: returns (claimed, confirmed). The rows stay locked while
        they are sent, so no other relay sends them at the same moment."""
        with self.store.claim_unsent(grace_s=self.grace_s, limit=self.batch_size) as (events, sent):
            sent.extend(self.delivery.send(events, timeout=self.delivery_timeout_s))
            return len(events), len(sent)

    def run(self) -> None:
        """Loop until stopped, backing off while the broker or database is away."""
        delay = self.interval_s
        next_cleanup = 0.0
        while not self._stopping.is_set():
            try:
                if self.reconciler is not None:
                    self.reconciler.run_once()
                if not self.outbox:
                    delay = self.interval_s
                else:
                    delay = self._outbox_pass(delay)
                    if time.monotonic() >= next_cleanup:
                        self._clean_up()
                        next_cleanup = time.monotonic() + CLEANUP_EVERY_S
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

    def _clean_up(self) -> None:
        deleted = self.store.delete_sent(self.retention_s)
        if deleted:
            log.info("outbox relay deleted %d sent events past retention", deleted)

    def start(self) -> "OutboxRelay":
        self._thread = threading.Thread(target=self.run, name="outbox-relay", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        self._stopping.set()
        if self._thread:
            self._thread.join(timeout)
