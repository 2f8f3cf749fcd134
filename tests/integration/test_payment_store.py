"""PaymentStore against real PostgreSQL (directly and through PgBouncer):
the uniqueness guard of insert_pending, the processor's reference, reads by
id and by order, relays claiming the outbox at the same moment, and the
pending payments a fault stranded, found by claim_overdue under leases; the
gateway's webhook event ids, each acted on once and deleted past retention.

The settle statement (both rows or neither) and the batched sent marks are
tested in test_settle_and_marks.py; the claim's order-key rules and the
retention clean-up in test_outbox_claims.py."""

from __future__ import annotations

import threading
import uuid
from datetime import datetime, timezone
from decimal import Decimal

import pytest

from payment import representations, service
from payment.model import PaymentRequest
from tests.support import CHARGED, DECLINED, open_store


@pytest.fixture
def store(database_url, db_route, database):
    with open_store(database_url, db_route, max_size=4, timeout=2) as store:
        yield store


def request_for(order_id: uuid.UUID | None = None, amount: str = "150.00") -> PaymentRequest:
    return PaymentRequest(order_id=order_id or uuid.uuid4(), customer_id=uuid.uuid4(), reservation_id=None,
                          amount=Decimal(amount), currency="USD", payment_method="credit_card")


def pending(store, order_id: uuid.UUID | None = None):
    return store.insert_pending(request_for(order_id), uuid.uuid4(), is_simulated=True)


def settle(store, payment, result=CHARGED):
    settled = service.settled_with(payment, result, datetime.now(timezone.utc))
    event = representations.outbox_event(settled, topic_succeeded="payment-succeeded", topic_failed="payment-failed")
    store.settle(settled, event)
    return settled, event


def age(database, payment_id, interval: str) -> None:
    """Make a payment look created `interval` ago."""
    database.execute("UPDATE bc_payment.payments SET created_at = now() - %s::interval WHERE id = %s",
                     (interval, payment_id))


# --- insert_pending: one live payment per order ------------------------------------

def test_insert_pending_records_the_request_as_a_pending_payment(store, database):
    request = PaymentRequest(order_id=uuid.uuid4(), customer_id=uuid.uuid4(), reservation_id=uuid.uuid4(),
                             amount=Decimal("42.10"), currency="EUR", payment_method="paypal")
    payment_id = uuid.uuid4()

    payment = store.insert_pending(request, payment_id, is_simulated=False)

    assert (payment.id, payment.order_id, payment.customer_id, payment.reservation_id) == (
        payment_id, request.order_id, request.customer_id, request.reservation_id)
    assert (payment.amount, payment.currency, payment.payment_method) == (Decimal("42.10"), "EUR", "paypal")
    assert payment.status == "pending" and payment.is_simulated is False
    assert payment.processed_at is None and payment.created_at.utcoffset() is not None
    assert store.find(payment_id) == payment
    [row] = database.rows()
    assert row["id"] == payment_id and row["status"] == "pending"


def test_a_second_pending_payment_for_the_order_is_refused(store, database):
    first = pending(store)
    assert pending(store, first.order_id) is None
    assert [row["id"] for row in database.rows()] == [first.id]


def test_a_succeeded_payment_blocks_the_order_too(store, database):
    paid, _ = settle(store, pending(store))
    assert pending(store, paid.order_id) is None
    assert [row["status"] for row in database.rows()] == ["succeeded"]


def test_a_failed_payment_does_not_block_a_new_attempt(store, database):
    failed, _ = settle(store, pending(store), DECLINED)
    retry = pending(store, failed.order_id)
    assert retry is not None and retry.status == "pending"
    assert [row["status"] for row in database.rows()] == ["failed", "pending"]


def test_of_attempts_at_the_same_moment_one_gets_the_order(store, database):
    order_id = uuid.uuid4()
    start = threading.Barrier(4)
    results = []

    def attempt():
        start.wait()
        results.append(pending(store, order_id))

    threads = [threading.Thread(target=attempt) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    [winner] = [r for r in results if r is not None]
    assert len(results) == 4
    assert [row["id"] for row in database.rows()] == [winner.id]


# --- the processor's reference ----------------------------------------------------

def test_a_reference_is_kept_on_a_pending_payment_only(store):
    payment = pending(store)
    assert store.attach_reference(payment, "pi_123").gateway_reference == "pi_123"
    assert store.find(payment.id).gateway_reference == "pi_123"

    settled, _ = settle(store, store.find(payment.id))
    assert store.attach_reference(settled, "pi_456") is None
    assert store.find(payment.id).gateway_reference == "pi_123"


# --- reads --------------------------------------------------------------------------

def test_find_by_id_and_the_orders_succeeded_and_live_payment(store):
    order_id = uuid.uuid4()
    failed, _ = settle(store, pending(store, order_id), DECLINED)
    live = pending(store, order_id)

    assert store.find(failed.id).status == "failed"
    assert store.find(uuid.uuid4()) is None
    assert store.find_succeeded(order_id) is None
    assert store.find_live(order_id).id == live.id

    paid, _ = settle(store, live)
    assert store.find_succeeded(order_id).id == paid.id == store.find_live(order_id).id
    assert store.find_live(uuid.uuid4()) is None


def test_an_orders_payments_are_listed_newest_first(store, database):
    order_id = uuid.uuid4()
    first, _ = settle(store, pending(store, order_id), DECLINED)
    second, _ = settle(store, pending(store, order_id), DECLINED)
    third = pending(store, order_id)
    pending(store)  # another order's
    # Two attempts at the same instant: the id decides, the same way every time.
    database.execute("UPDATE bc_payment.payments SET created_at = %s WHERE id IN (%s, %s)",
                     (datetime(2026, 3, 4, tzinfo=timezone.utc), first.id, second.id))

    listed = store.list_for_order(order_id)

    tied = sorted([first.id, second.id], reverse=True)
    assert [p.id for p in listed] == [third.id, *tied]
    assert [p.status for p in listed] == ["pending", "failed", "failed"]
    assert store.list_for_order(uuid.uuid4()) == []


# --- relays claiming the outbox at once --------------------------------------------

def test_relays_claiming_at_the_same_moment_get_disjoint_events(store, database):
    events = [settle(store, pending(store))[1] for _ in range(12)]
    database.execute("UPDATE bc_payment.outbox SET created_at = now() - interval '1 hour'")
    claimed: dict[str, list] = {}
    both_hold = threading.Barrier(2, timeout=10)

    def relay(name: str):
        with store.claim_unsent(grace_s=1, limit=8) as (batch, sent):
            claimed[name] = batch
            # Each holds its claim until the other has claimed too.
            both_hold.wait()
            sent.extend(event.event_id for event in batch)

    threads = [threading.Thread(target=relay, args=(name,)) for name in ("a", "b")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    a, b = ({e.event_id for e in claimed[name]} for name in ("a", "b"))
    assert a and b and not a & b
    assert a | b == {e.event_id for e in events}
    rows = database.rows("outbox")
    assert all(row["sent_at"] is not None and row["attempts"] == 1 for row in rows)


def test_a_claim_not_sent_counts_an_attempt_and_leaves_the_events_unsent(store, database):
    event = settle(store, pending(store))[1]
    database.execute("UPDATE bc_payment.outbox SET created_at = now() - interval '1 hour'")

    for _ in range(2):
        with store.claim_unsent(grace_s=1, limit=10) as (batch, _sent):
            assert [e.event_id for e in batch] == [event.event_id]

    [row] = database.rows("outbox")
    assert row["sent_at"] is None and row["attempts"] == 2
    assert store.outbox_backlog()[0] == 1


def test_a_mark_keeps_the_first_sent_at(store, database):
    event = settle(store, pending(store))[1]
    store.mark_sent([event.event_id])
    [first] = database.rows("outbox")
    store.mark_sent([event.event_id, uuid.uuid4()])
    assert database.rows("outbox") == [first]
    assert store.outbox_backlog() == (0, None)


# --- stranded pending payments ------------------------------------------------------

def test_only_pending_payments_past_the_timeout_are_overdue(store, database):
    stranded = pending(store)
    age(database, stranded.id, "10 minutes")
    young = pending(store)
    settled, _ = settle(store, pending(store))
    age(database, settled.id, "10 minutes")

    assert store.count_overdue(120) == 1
    [(payment, attempt)] = store.claim_overdue(older_than_s=120, lease_s=60, limit=10)
    assert (payment.id, payment.status, attempt) == (stranded.id, "pending", 1)
    assert young.id != payment.id


def test_a_leased_payment_is_not_claimed_again_until_the_lease_ends(store, database):
    stranded = pending(store)
    age(database, stranded.id, "10 minutes")

    assert [a for _, a in store.claim_overdue(older_than_s=120, lease_s=60, limit=10)] == [1]
    # Another reconciler, or the same one a moment later: the lease holds.
    assert store.claim_overdue(older_than_s=120, lease_s=60, limit=10) == []

    database.execute("UPDATE bc_payment.payment_checks SET next_check_at = now() - interval '1 second'")
    [(payment, attempt)] = store.claim_overdue(older_than_s=120, lease_s=60, limit=10)
    assert (payment.id, attempt) == (stranded.id, 2)


def test_postponed_and_forgotten_checks(store, database):
    stranded = pending(store)
    age(database, stranded.id, "10 minutes")
    [(payment, _)] = store.claim_overdue(older_than_s=120, lease_s=0, limit=10)

    store.postpone_check(payment, 3600)
    assert store.claim_overdue(older_than_s=120, lease_s=0, limit=10) == []
    [check] = database.rows("payment_checks")
    assert check["attempts"] == 1

    store.forget_check(payment)
    assert database.rows("payment_checks") == []
    [(again, attempt)] = store.claim_overdue(older_than_s=120, lease_s=0, limit=10)
    assert (again.id, attempt) == (stranded.id, 1)


def test_reconcilers_claiming_at_the_same_moment_get_disjoint_payments(store, database):
    stranded = [pending(store) for _ in range(10)]
    database.execute("UPDATE bc_payment.payments SET created_at = now() - interval '10 minutes'")
    start = threading.Barrier(2, timeout=10)
    claimed: dict[str, list] = {}

    def reconciler(name: str):
        start.wait()
        claimed[name] = [payment.id for payment, _ in store.claim_overdue(older_than_s=120, lease_s=60, limit=10)]

    threads = [threading.Thread(target=reconciler, args=(name,)) for name in ("a", "b")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert not set(claimed["a"]) & set(claimed["b"])
    assert set(claimed["a"]) | set(claimed["b"]) == {p.id for p in stranded}
    assert [row["attempts"] for row in database.rows("payment_checks")] == [1] * 10


def test_a_claim_past_the_limit_takes_the_oldest_first(store, database):
    old, older = pending(store), pending(store)
    age(database, old.id, "10 minutes")
    age(database, older.id, "20 minutes")
    [(payment, _)] = store.claim_overdue(older_than_s=120, lease_s=60, limit=1)
    assert payment.id == older.id


# --- the gateway's webhook events: each acted on once, kept for a while -------------

def test_a_webhook_event_is_remembered_once_and_can_be_forgotten(store, database):
    assert store.remember_webhook_event("evt_1") is True
    assert store.remember_webhook_event("evt_1") is False
    assert store.remember_webhook_event("evt_2") is True
    store.forget_webhook_event("evt_1")
    assert [r["event_id"] for r in database.rows("webhook_events")] == ["evt_2"]
    assert store.remember_webhook_event("evt_1") is True


def test_of_deliveries_at_the_same_moment_one_acts_on_the_event(store, database):
    barrier = threading.Barrier(4)
    results = []

    def deliver():
        barrier.wait()
        results.append(store.remember_webhook_event("evt_race"))

    threads = [threading.Thread(target=deliver) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == [False, False, False, True]


def test_webhook_events_past_their_retention_are_deleted_oldest_first_in_batches(store, database):
    for name, interval in (("evt_old1", "10 days"), ("evt_old2", "9 days"), ("evt_old3", "8 days"),
                           ("evt_new", "1 day")):
        store.remember_webhook_event(name)
        database.execute("UPDATE bc_payment.webhook_events SET received_at = now() - %s::interval"
                         " WHERE event_id = %s", (interval, name))
    week = 7 * 24 * 3600
    assert store.delete_old_webhook_events(week, limit=2) == 2
    assert {r["event_id"] for r in database.rows("webhook_events")} == {"evt_old3", "evt_new"}
    assert store.delete_old_webhook_events(week, limit=2) == 1
    assert store.delete_old_webhook_events(week, limit=2) == 0
    assert [r["event_id"] for r in database.rows("webhook_events")] == ["evt_new"]
