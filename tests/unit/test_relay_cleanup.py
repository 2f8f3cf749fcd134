"""The relay's cleanup of sent events over a hand-written store: bounded
batches, bounded time per pass, and a failure that backs off."""

from __future__ import annotations

import time
from contextlib import contextmanager

from payment.config import Config
from payment.errors import DatabaseUnavailable
from payment.outbox import relay
from payment.outbox.relay import OutboxRelay
from tests.timing import ceiling, eventually


class SentRows:
    """A store holding `left` sent rows past retention, and `webhook_ids`
    webhook event ids past theirs; optionally failing."""

    def __init__(self, left: int, *, fail: bool = False, batch_s: float = 0.0, webhook_ids: int = 0):
        self.left = left
        self.fail = fail
        self.batch_s = batch_s
        self.calls: list[int] = []
        self.webhook_ids = webhook_ids
        self.webhook_calls: list[tuple[float, int]] = []

    def delete_old_webhook_events(self, retention_s: float, limit: int) -> int:
        self.webhook_calls.append((retention_s, limit))
        deleted = min(limit, self.webhook_ids)
        self.webhook_ids -= deleted
        return deleted

    def delete_sent(self, retention_s: float, limit: int) -> int:
        self.calls.append(limit)
        if self.fail:
            raise DatabaseUnavailable()
        time.sleep(self.batch_s)
        deleted = min(limit, self.left)
        self.left -= deleted
        return deleted


# The configuration's defaults, which the relay is given from it.
SETTINGS = dict(interval_s=Config.relay_interval, grace_s=Config.kafka_message_timeout,
                batch_size=Config.relay_batch_size, retention_s=Config.outbox_retention,
                max_backoff_s=Config.relay_max_backoff)


def relay_on(store, delivery=None, **options) -> OutboxRelay:
    return OutboxRelay(store, delivery, **{**SETTINGS, **options})


def test_a_small_backlog_goes_in_one_pass_and_the_next_cleanup_is_far_off():
    store = SentRows(12)
    cleaner = relay_on(store, cleanup_batch=5)
    assert cleaner.clean_up() == 12
    assert store.calls == [5, 5, 5]
    assert cleaner.next_cleanup - time.monotonic() > relay.CLEANUP_EVERY_S - 5


def test_a_large_backlog_is_worked_off_over_passes_each_bounded_in_time():
    store = SentRows(1_000_000, batch_s=0.01)
    cleaner = relay_on(store, cleanup_batch=1000, cleanup_budget_s=0.05)
    started = time.monotonic()
    deleted = cleaner.clean_up()
    # The budget and at most one batch past it; all of it would take 10 s.
    assert time.monotonic() - started < ceiling(0.05 + 0.01)
    assert 0 < deleted < 1_000_000 and store.left == 1_000_000 - deleted
    # More is left: due again at once, at the next pass.
    assert cleaner.next_cleanup <= time.monotonic()


def test_webhook_event_ids_past_their_retention_go_in_the_same_pass():
    store = SentRows(3, webhook_ids=12)
    cleaner = relay_on(store, cleanup_batch=5)
    assert cleaner.clean_up() == 15
    assert (store.left, store.webhook_ids) == (0, 0)
    assert store.webhook_calls == [(relay.WEBHOOK_EVENT_RETENTION_S, 5)] * 3
    # Past Stripe's three days of retries.
    assert relay.WEBHOOK_EVENT_RETENTION_S > 3 * 24 * 3600
    assert cleaner.next_cleanup - time.monotonic() > relay.CLEANUP_EVERY_S - 5


def test_webhook_event_ids_wait_for_the_next_pass_when_the_outbox_spent_the_budget():
    store = SentRows(1_000_000, batch_s=0.01, webhook_ids=5)
    cleaner = relay_on(store, cleanup_batch=1000, cleanup_budget_s=0.05)
    cleaner.clean_up()
    assert store.webhook_calls == [] and cleaner.next_cleanup <= time.monotonic()


def test_a_failed_cleanup_backs_off_and_doubles_and_a_success_resets_it():
    store = SentRows(10, fail=True)
    cleaner = relay_on(store, cleanup_batch=5)
    waits = []
    for _ in range(3):
        assert cleaner.clean_up() == 0
        waits.append(round(cleaner.next_cleanup - time.monotonic()))
    first = relay.CLEANUP_FIRST_BACKOFF_S
    assert waits == [first, 2 * first, 4 * first]
    assert store.calls == [5, 5, 5]  # one try each, not a retry per pass

    store.fail = False
    assert cleaner.clean_up() == 10
    store.fail = True
    cleaner.clean_up()
    assert round(cleaner.next_cleanup - time.monotonic()) == first


class NoEvents(SentRows):
    """Also an outbox with nothing to send; counts the relay's passes (each
    claims once)."""

    passes = 0

    @contextmanager
    def claim_unsent(self, **_):
        self.passes += 1
        yield [], []


class NothingSent:
    def send(self, events, timeout):
        return []


def test_the_relay_loop_does_not_retry_a_failed_cleanup_on_every_pass():
    store = NoEvents(10, fail=True)
    looping = relay_on(store, NothingSent(), interval_s=0.01, cleanup_batch=5).start()
    try:
        # Well inside the backoff after the failed try (CLEANUP_FIRST_BACKOFF_S).
        eventually(lambda: store.passes >= 20, "20 passes of the relay loop", timeout_s=3)
    finally:
        looping.stop()
    assert store.calls == [5]  # one cleanup try over all those passes
