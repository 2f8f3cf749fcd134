"""The outbox relay: sends committed events that were not confirmed at
request time (the broker was away, or slow), oldest first.

It only claims rows older than a grace period, past the producer's own
retry window, so it does not race a request still waiting for its delivery
report. A row sent twice carries the same eventId both times.

Each pass also resolves stranded payments: a payment still pending long
after any request could have finished (its worker was killed between the
pending row and the outcome) is marked failed with PROCESSING_INTERRUPTED and
its payment-failed event sent, so the order can be paid again.
"""

from __future__ import annotations

import logging
import threading
import time

from payment import logs
from payment.errors import DatabaseUnavailable
from payment.kafka import MESSAGE_TIMEOUT_S

log = logging.getLogger(__name__)


def grace_after(message_timeout_s: float) -> float:
    """Past the producer's own retry window, so as not to race it."""
    return message_timeout_s + 5


GRACE_S = grace_after(MESSAGE_TIMEOUT_S)
CLEANUP_EVERY_S = 600.0

INTERRUPTED = "PROCESSING_INTERRUPTED"


def interrupted_outcome(after_s: float) -> dict:
    return {
        "status": "failed", "transaction_id": None, "simulated_response": None,
        "error_code": INTERRUPTED,
        "error_message": "Payment processing was interrupted",
        "failure_reason": f"No outcome was recorded within {after_s:g} seconds of the attempt",
    }


class OutboxRelay:
    def __init__(self, store, delivery, *, event_for=None, stranded_after_s: float = 120.0,
                 interval_s: float = 1.0, grace_s: float = GRACE_S,
                 batch_size: int = 200, delivery_timeout_s: float = 10.0,
                 retention_s: float = 7 * 24 * 3600, max_backoff_s: float = 10.0):
        self.store = store
        self.delivery = delivery
        self.event_for = event_for  # payment -> OutboxEvent; None: no stranded check
        self.stranded_after_s = stranded_after_s
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

    def resolve_stranded(self) -> int:
        """Fail the payments stranded in pending; returns how many."""
        if self.event_for is None:
            return 0
        events = self.store.abandon_stranded(
            older_than_s=self.stranded_after_s, limit=self.batch_size,
            outcome=interrupted_outcome(self.stranded_after_s), event_for=self.event_for)
        for event in events:
            log.warning("stranded payment marked failed", extra=logs.event_fields(event))
        # Their events leave with the following batches, in commit order.
        return len(events)

    def run(self) -> None:
        """Loop until stopped, backing off while the broker or database is away."""
        delay = self.interval_s
        next_cleanup = 0.0
        while not self._stopping.is_set():
            try:
                self.resolve_stranded()
                claimed, sent = self.send_batch()
                if claimed:
                    log.info("outbox relay sent %d of %d events", sent, claimed)
                delay = self.interval_s if sent == claimed else min(delay * 2, self.max_backoff_s)
                if sent == self.batch_size:
                    delay = 0
                if time.monotonic() >= next_cleanup:
                    deleted = self.store.delete_sent(self.retention_s)
                    if deleted:
                        log.info("outbox relay deleted %d sent events past retention", deleted)
                    next_cleanup = time.monotonic() + CLEANUP_EVERY_S
            except DatabaseUnavailable:
                delay = min(max(delay, self.interval_s) * 2, self.max_backoff_s)
            except Exception:
                log.exception("outbox relay pass failed")
                delay = min(max(delay, self.interval_s) * 2, self.max_backoff_s)
            self._stopping.wait(delay)

    def start(self) -> "OutboxRelay":
        self._thread = threading.Thread(target=self.run, name="outbox-relay", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        self._stopping.set()
        if self._thread:
            self._thread.join(timeout)
