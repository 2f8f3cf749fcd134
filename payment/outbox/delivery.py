"""Producing committed outbox events and marking sent the ones confirmed.

A request (or the relay) waits a bounded time for each event's own delivery
report. What a request had confirmed is marked sent here: at once
(`mark_now`, one statement before the answer), or soon after by the
process's marker, in batches, off the request's thread (`mark_soon`,
payment/outbox/marker.py). The relay marks what it sent in its own claiming
transaction. An event confirmed late is handed to the marker when its
report arrives: the thread that serves delivery reports must never wait on
the database.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from concurrent.futures import Future, wait
from uuid import UUID

from payment.model import OutboxEvent
from payment.outbox.marker import SentMarker
from payment.ports import Publisher, SentMarks

log = logging.getLogger(__name__)


class Delivery:
    """payment.ports.Delivery over the producer, with the store's marks (for
    `mark_now`) and the marker (for `mark_soon` and late reports)."""

    def __init__(self, marks: SentMarks, publisher: Publisher, marker: SentMarker) -> None:
        self.marks = marks
        self.publisher = publisher
        self.marker = marker

    def send(self, events: Sequence[OutboxEvent], timeout: float) -> list[UUID]:
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
                future.add_done_callback(self._late_confirmation(event.event_id))
            elif future.exception() is None:
                confirmed.append(event.event_id)
        return confirmed

    def mark_now(self, event_ids: list[UUID]) -> None:
        """Mark confirmed events sent, in one statement, before returning."""
        self.marks.mark_sent(event_ids)

    def mark_soon(self, event_ids: list[UUID]) -> None:
        """Have confirmed events marked sent by the marker, soon and without
        the caller waiting for it."""
        self.marker.mark(event_ids)

    def _late_confirmation(self, event_id: UUID) -> Callable[[Future[None]], None]:
        """The callback of a report still to come: a confirmed event goes to the marker."""
        def confirm(future: Future[None]) -> None:
            if future.exception() is None:
                self.marker.mark([event_id])
        return confirm

    def close(self) -> None:
        """Write the marks still waiting (after the producer has flushed)."""
        self.marker.close()
