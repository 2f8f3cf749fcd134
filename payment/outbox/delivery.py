"""Producing committed outbox events and confirming them.

A request (or the relay) waits a bounded time for each event's own delivery
report. A request hands a confirmed success to the process's marker, which
marks it sent soon after, in batches, off the request's thread
(payment/outbox/marker.py); the relay marks what it sent in its own claiming
transaction. An event confirmed late is handed to the marker when its
report arrives: the thread that serves delivery reports must never wait on
the database.
"""

from __future__ import annotations

import logging
from concurrent.futures import wait
from uuid import UUID

from payment.outbox.marker import SentMarker

log = logging.getLogger(__name__)


class Delivery:
    def __init__(self, store, publisher, marker: SentMarker):
        self.store = store
        self.publisher = publisher
        self.marker = marker

    def send(self, events, timeout: float) -> list[UUID]:
        """Produce `events`; returns the ids confirmed within `timeout`, for
        the caller to mark. The others are marked sent if and when their
        report arrives."""
        futures = [(event, self.publisher.publish(event)) for event in events]
        # While the broker is known to be away, waiting would only delay the
        # answer: the events are queued and kept in the outbox either way.
        if self.publisher.brokers_down.is_set():
            timeout = min(timeout, 0.05)
        wait([future for _, future in futures], timeout=timeout)
        confirmed = []
        for event, future in futures:
            if not future.done():
                future.add_done_callback(lambda f, event_id=event.event_id: self._confirm_late(f, event_id))
            elif future.exception() is None:
                confirmed.append(event.event_id)
        return confirmed

    def mark_soon(self, event_ids: list[UUID]) -> None:
        """Have confirmed events marked sent by the marker, soon and without
        the caller waiting for it."""
        self.marker.mark(event_ids)

    def _confirm_late(self, future, event_id: UUID) -> None:
        if future.exception() is None:
            self.marker.mark([event_id])

    def close(self) -> None:
        """Write the marks still waiting (after the producer has flushed)."""
        self.marker.close()
