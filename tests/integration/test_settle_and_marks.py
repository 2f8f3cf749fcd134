"""The one-statement settle and the batched sent marks, against the real
database (directly and through PgBouncer) and, for a whole payment, the
real broker: the outcome and its event are written both or neither, and a
confirmed success is marked sent soon after the answer, in batches, the
marks still waiting written when the process closes."""

from __future__ import annotations

import json
import threading
import time
import uuid
from dataclasses import replace
from datetime import datetime, timezone
from decimal import Decimal

import psycopg
import pytest

from payment import representations, service
from payment.bootstrap import build_web
from payment.errors import DatabaseFault, DatabaseUnavailable
from payment.model import PaymentRequest
from payment.outbox.marker import SentMarker
from tests.conftest import Client
from tests.support import CHARGED, DECLINED, new_order, open_store, payment_body
from tests.timing import eventually


@pytest.fixture
def store(database_url, db_route, database):
    with open_store(database_url, db_route, max_size=2, timeout=1) as store:
        yield store


def pending(store, order_id: uuid.UUID | None = None):
    request = PaymentRequest(order_id=order_id or uuid.uuid4(), customer_id=uuid.uuid4(), reservation_id=None,
                             amount=Decimal("150.00"), currency="USD", payment_method="credit_card")
    return store.insert_pending(request, uuid.uuid4(), is_simulated=True)


def outcome_and_event(payment, result=CHARGED):
    settled = service.settled_with(payment, result, datetime.now(timezone.utc))
    return settled, representations.outbox_event(settled, topic_succeeded="payment-succeeded",
                                                 topic_failed="payment-failed")


# --- settling: both rows or neither -------------------------------------------


def test_settle_writes_the_outcome_and_its_event_with_one_instant(store, database):
    payment = pending(store)
    settled, event = outcome_and_event(payment)

    recorded, earlier_unsent = store.settle(settled, event)

    assert recorded == settled and earlier_unsent is False
    [row] = database.rows()
    assert (row["status"], row["transaction_id"]) == ("succeeded", CHARGED.transaction_id)
    assert row["processed_at"] == settled.processed_at
    [outbox] = database.rows("outbox")
    assert outbox["event_id"] == event.event_id and outbox["payment_id"] == payment.id
    assert outbox["sent_at"] is None
    assert json.loads(outbox["payload"])["processedAt"] == representations.utc_timestamp(row["processed_at"])


def test_a_payment_no_longer_pending_gets_no_outbox_row(store, database):
    payment = pending(store)
    first, first_event = outcome_and_event(payment)
    store.settle(first, first_event)

    # A second settle of the same payment (the reconciler after the request).
    again, again_event = outcome_and_event(payment, DECLINED)
    assert store.settle(again, again_event) is None

    [row] = database.rows()
    assert row["status"] == "succeeded" and row["processed_at"] == first.processed_at
    assert [r["event_id"] for r in database.rows("outbox")] == [first_event.event_id]


def test_a_failed_outbox_insert_leaves_the_payment_pending(store, database):
    taken = pending(store)
    taken_outcome, taken_event = outcome_and_event(taken)
    store.settle(taken_outcome, taken_event)
    payment = pending(store)
    settled, event = outcome_and_event(payment)
    clashing = replace(event, event_id=taken_event.event_id)

    with pytest.raises(DatabaseFault) as refused:
        store.settle(settled, clashing)
    assert isinstance(refused.value.__cause__, psycopg.errors.UniqueViolation)

    [row] = database.rows("payments", "id = %s", (payment.id,))
    assert row["status"] == "pending" and row["processed_at"] is None and row["transaction_id"] is None
    assert [r["payment_id"] for r in database.rows("outbox")] == [taken.id]


def test_a_settle_blocked_past_the_lock_timeout_writes_nothing(store, database):
    # The timeouts go in the statement's own simple query: they hold on
    # whichever server connection a pooler picks.
    payment = pending(store)
    settled, event = outcome_and_event(payment)
    with psycopg.connect(database.url) as holder:
        holder.execute("SELECT 1 FROM bc_payment.payments WHERE id = %s FOR UPDATE", (payment.id,))
        started = time.monotonic()
        with pytest.raises(DatabaseUnavailable):
            store.settle(settled, event)
        assert 1 <= time.monotonic() - started < 3
        holder.rollback()
    [row] = database.rows()
    assert row["status"] == "pending" and database.rows("outbox") == []


def test_settle_tells_whether_an_older_event_of_the_order_is_unsent(store, database):
    order_id = uuid.uuid4()
    declined = pending(store, order_id)
    declined_outcome, declined_event = outcome_and_event(declined, DECLINED)
    assert store.settle(declined_outcome, declined_event)[1] is False  # its own row does not count

    retry = pending(store, order_id)
    retry_outcome, retry_event = outcome_and_event(retry)
    assert store.settle(retry_outcome, retry_event)[1] is True
    assert len(database.rows("outbox", "sent_at IS NULL")) == 2


# --- the marker ---------------------------------------------------------------


def settled_events(store, count: int) -> list[uuid.UUID]:
    ids = []
    for _ in range(count):
        outcome, event = outcome_and_event(pending(store))
        store.settle(outcome, event)
        ids.append(event.event_id)
    return ids


def test_the_marker_marks_events_handed_over_together_in_one_statement(store, database):
    ids = settled_events(store, 5)
    marker = SentMarker(store, delay_s=0.3)
    try:
        # From several threads, as several requests hand them over.
        threads = [threading.Thread(target=marker.mark, args=([event_id],)) for event_id in ids]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        eventually(lambda: not database.rows("outbox", "sent_at IS NULL"), "every event marked sent")
    finally:
        marker.close()
    # One statement, one transaction: now() is the same for every row it marked.
    assert len({row["sent_at"] for row in database.rows("outbox")}) == 1


def test_closing_the_marker_writes_the_marks_still_waiting(store, database):
    ids = settled_events(store, 3)
    marker = SentMarker(store, delay_s=60)
    marker.mark(ids[:2])
    marker.mark(ids[2:])
    assert len(database.rows("outbox", "sent_at IS NULL")) == 3  # waiting for company

    started = time.monotonic()
    marker.close()

    assert time.monotonic() - started < 5
    assert database.rows("outbox", "sent_at IS NULL") == []
    assert len({row["sent_at"] for row in database.rows("outbox")}) == 1


# --- a whole payment ----------------------------------------------------------


def test_a_success_is_marked_sent_shortly_after_the_answer(client, sandbox, database, events):
    reply = client.pay(payment_body(new_order(sandbox)))
    answered = time.monotonic()

    assert reply.status == 200
    [event] = events.read("payment-succeeded")
    [outbox] = database.outbox_once_sent(timeout=2)
    assert event["headers"]["eventId"] == str(outbox["event_id"])
    assert time.monotonic() - answered < 2


def test_a_decline_is_marked_sent_before_the_answer(client, sandbox, database, events):
    # The order's next attempt may come at once: its event must not find
    # this one unsent and wait behind it for the relay.
    reply = client.pay(payment_body(new_order(sandbox, total=150.13), amount="150.13"))

    assert reply.status == 402
    [outbox] = database.rows("outbox")
    assert outbox["sent_at"] is not None
    [event] = events.read("payment-failed")
    assert event["headers"]["eventId"] == str(outbox["event_id"])


def test_closing_the_service_writes_the_marks_still_waiting(config, sandbox, database, events):
    web = build_web(config, start_relay=False)
    closed = False
    try:
        # A marker that would wait a minute for company: only closing writes it.
        web.core.delivery.marker = SentMarker(web.core.store, delay_s=60)
        reply = Client(web.app).pay(payment_body(new_order(sandbox)))
        assert reply.status == 200
        [event] = events.read("payment-succeeded")
        [outbox] = database.rows("outbox")
        assert outbox["sent_at"] is None and event["headers"]["eventId"] == str(outbox["event_id"])

        web.close(timeout=2)
        closed = True
        assert database.rows("outbox", "sent_at IS NULL") == []
    finally:
        if not closed:
            web.close(timeout=2)
