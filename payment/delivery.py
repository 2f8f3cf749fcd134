"""Producing committed outbox events and confirming them.

A request (or the relay) waits a bounded time for each event's own delivery
report. An event confirmed later is still marked sent when its report
arrives, on a thread of its own: the thread that serves delivery reports
must never wait on the database.
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor, wait
from uuid import UUID

log = logging.getLogger(__name__)


class Delivery:
    def __init__(self, store, publisher):
        self.store = store
        self.publisher = publisher
        self._late = ThreadPoolExecutor(max_workers=1, thread_name_prefix="outbox-late-confirm")

    def send(self, events, timeout: float) -> list[UUID]:
        """Produce `events`; returns the ids confirmed within `timeout`. The
        others are marked sent if and when their report arrives."""
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

    def _confirm_late(self, future, event_id: UUID) -> None:
        if future.exception() is None:
            self._late.submit(self._mark, event_id)

    def _mark(self, event_id: UUID) -> None:
        try:
            self.store.mark_sent([event_id])
        except Exception:
            # The relay sends it again, under the same eventId.
            log.warning("could not mark event sent", extra={"eventId": str(event_id)})

    def close(self) -> None:
        self._late.shutdown(wait=True)
