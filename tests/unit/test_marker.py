"""The marker: confirmed events marked sent in batches, on its own thread,
and what is left written on close."""

from __future__ import annotations

import logging
import threading
import time
import uuid

from payment.config import MARK_DELAY_S
from payment.outbox.marker import SentMarker


class RecordingStore:
    def __init__(self, fail: bool = False):
        self.batches: list[list[uuid.UUID]] = []
        self.fail = fail
        self.written = threading.Event()

    def mark_sent(self, event_ids):
        if self.fail:
            raise RuntimeError("database away")
        self.batches.append(list(event_ids))
        self.written.set()


def test_ids_handed_over_together_go_in_one_batch_soon():
    store = RecordingStore()
    marker = SentMarker(store, delay_s=0.2)
    ids = [uuid.uuid4() for _ in range(5)]
    started = time.monotonic()
    for event_id in ids:
        marker.mark([event_id])
    assert store.written.wait(2)
    elapsed = time.monotonic() - started
    assert store.batches == [ids]
    assert 0.15 <= elapsed < 1.5
    marker.close()


def test_close_writes_what_is_left_at_once():
    store = RecordingStore()
    marker = SentMarker(store, delay_s=60)
    ids = [uuid.uuid4() for _ in range(3)]
    marker.mark(ids)
    started = time.monotonic()
    marker.close()
    assert time.monotonic() - started < 2
    assert store.batches == [ids]


def test_a_batch_holds_at_most_batch_size_ids():
    store = RecordingStore()
    marker = SentMarker(store, delay_s=60, batch_size=2)
    ids = [uuid.uuid4() for _ in range(5)]
    marker.mark(ids)
    marker.close()
    assert store.batches == [ids[:2], ids[2:4], ids[4:]]


def test_a_failed_write_is_logged_and_the_marker_goes_on(caplog):
    store = RecordingStore(fail=True)
    marker = SentMarker(store, delay_s=0.01)
    lost = uuid.uuid4()
    with caplog.at_level(logging.WARNING, logger="payment.outbox.marker"):
        marker.mark([lost])
        deadline = time.monotonic() + 2
        while not caplog.records and time.monotonic() < deadline:
            time.sleep(0.01)
    [record] = caplog.records
    assert record.message == "events not marked sent; left to the outbox relay"
    assert record.eventIds == [str(lost)]
    store.fail = False
    kept = uuid.uuid4()
    marker.mark([kept])
    marker.close()
    assert store.batches == [[kept]]


def test_a_mark_after_close_is_left_to_the_relay_and_said_so(caplog):
    store = RecordingStore()
    marker = SentMarker(store, delay_s=MARK_DELAY_S)
    marker.close()
    late = uuid.uuid4()
    with caplog.at_level(logging.WARNING, logger="payment.outbox.marker"):
        marker.mark([late])
    [record] = caplog.records
    assert record.message == "events not marked sent after shutdown; left to the outbox relay"
    assert record.eventIds == [str(late)] and store.batches == []
