"""Marking confirmed events sent, in batches, off the request path.

A request waits for its event's delivery report (that is promised), not for
the outbox row to be marked: it hands the event id to its process's marker,
which writes the marks that came within MARK_DELAY_S of each other in one
statement, on a thread of its own. Closing the marker writes what is left.

A mark that never lands (the database away, the process killed first) costs
a resend by the relay, under the same eventId: delivery stays at least once.
The relay leaves an event alone until it is older than its grace period,
which must exceed the marker's delay (config.py owns both: MARK_DELAY_S, and
it refuses a shorter grace), so that it does not resend events the marker is
about to mark.
"""

from __future__ import annotations

import logging
import threading
import time
from uuid import UUID

from payment.ports import SentMarks

log = logging.getLogger(__name__)

# The most ids one statement marks.
MARK_BATCH = 500


class SentMarker:
    """`delay_s`: the longest a confirmed event waits for others to share its
    statement (config.MARK_DELAY_S in the service)."""

    def __init__(self, store: SentMarks, *, delay_s: float, batch_size: int = MARK_BATCH) -> None:
        self.store = store
        self.delay_s = delay_s
        self.batch_size = batch_size
        self._waiting: list[UUID] = []
        self._oldest = 0.0  # time.monotonic() when the oldest waiting id came
        self._changed = threading.Condition()
        self._closed = False
        self._thread: threading.Thread | None = None

    def mark(self, event_ids: list[UUID]) -> None:
        """Have these events marked sent soon. Never waits on the database:
        the thread that serves delivery reports calls it too."""
        with self._changed:
            if self._closed:
                # Shutting down: the relay sends them again.
                log.warning("events not marked sent after shutdown; left to the outbox relay",
                            extra={"eventIds": [str(event_id) for event_id in event_ids]})
                return
            if not self._waiting:
                self._oldest = time.monotonic()
            self._waiting.extend(event_ids)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="outbox-marker", daemon=True)
                self._thread.start()
            self._changed.notify()

    def close(self, timeout: float = 10.0) -> None:
        """Write the marks still waiting, then stop."""
        with self._changed:
            self._closed = True
            self._changed.notify()
            thread = self._thread
        if thread is not None:
            thread.join(timeout)

    def _run(self) -> None:
        while True:
            batch = self._next_batch()
            if not batch:
                return
            self._write(batch)

    def _next_batch(self) -> list[UUID]:
        """The next ids to mark, once the oldest has waited `delay_s` (or
        at once when the batch is full or the marker closing); empty once
        closed with nothing left."""
        with self._changed:
            while not self._waiting and not self._closed:
                self._changed.wait()
            while not self._closed and len(self._waiting) < self.batch_size:
                left = self._oldest + self.delay_s - time.monotonic()
                if left <= 0:
                    break
                self._changed.wait(left)
            # Ids left over from a full batch have waited already: the next
            # batch goes at once.
            batch = self._waiting[:self.batch_size]
            del self._waiting[:self.batch_size]
            return batch

    def _write(self, batch: list[UUID]) -> None:
        try:
            self.store.mark_sent(batch)
        except Exception:
            # The relay sends them again, under the same eventIds.
            log.warning("events not marked sent; left to the outbox relay",
                        extra={"eventIds": [str(event_id) for event_id in batch]})
