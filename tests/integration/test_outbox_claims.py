"""The outbox queries against real PostgreSQL: relays claim whole order keys
(two relays never hold events of one order at once), and sent events past
retention go in bounded batches."""

from __future__ import annotations

import uuid

import pytest

from payment.db.pool import open_pool
from payment.db.store import PaymentStore
from tests.support import DB_ROUTE_SETTING

UNSENT = "sent_at IS NULL"


@pytest.fixture
def store(database_url, db_route, database):
    pool = open_pool(database_url, min_size=1, max_size=4, timeout=2, route=DB_ROUTE_SETTING[db_route])
    yield PaymentStore(pool)
    pool.close()


def add_events(database, keys: list[str], *, age: str = "1 hour", sent_age: str | None = None) -> None:
    """One outbox row per key given, in that (commit) order, each tied to a payment of its order."""
    for key in keys:
        payment_id = uuid.uuid4()
        database.execute(
            "INSERT INTO bc_payment.payments (id, order_id, customer_id, amount, currency, payment_method,"
            " status, is_simulated, processed_at) VALUES (%s, %s, %s, 150, 'USD', 'credit_card', 'failed', true,"
            " now())", (payment_id, uuid.UUID(key), uuid.uuid4()))
        database.execute(
            "INSERT INTO bc_payment.outbox (event_id, payment_id, topic, event_key, event_type, payload,"
            " created_at, sent_at) VALUES (%s, %s, 'payment-failed', %s, 'payment-failed', '{}',"
            " now() - %s::interval, now() - %s::interval)",
            (uuid.uuid4(), payment_id, key, age, sent_age))


def keys_of(events) -> list[str]:
    return [event.key for event in events]


K1, K2, K3 = (str(uuid.UUID(int=n)) for n in (1, 2, 3))


def test_a_relay_claims_whole_keys_and_skips_keys_another_relay_holds(store, database):
    add_events(database, [K1, K2, K1, K3, K1])

    with store.claim_unsent(grace_s=1, limit=2) as (first, _):
        # The two oldest keys, cut at the batch size: K1's first event and K2's.
        assert keys_of(first) == [K1, K2]
        with store.claim_unsent(grace_s=1, limit=10) as (second, _):
            # K1's later events wait for the relay holding K1's oldest one.
            assert keys_of(second) == [K3]

    with store.claim_unsent(grace_s=1, limit=10) as (again, sent):
        # Nothing marked sent: everything again, each order's events in commit order.
        assert keys_of(again) == [K1, K2, K1, K3, K1]
        sent.extend(event.event_id for event in again[:1])
    with store.claim_unsent(grace_s=1, limit=10) as (rest, _):
        assert keys_of(rest) == [K2, K1, K3, K1]


def test_the_events_behind_an_old_head_go_with_it_however_young(store, database):
    add_events(database, [K1])
    # Committed a moment ago behind K1's unsent event: its request left it to the relay.
    add_events(database, [K1, K2], age="0 seconds")

    with store.claim_unsent(grace_s=10, limit=10) as (events, _):
        # K2's own event is still within the grace period (its request may be sending it).
        assert keys_of(events) == [K1, K1]


def test_sent_events_past_retention_go_in_bounded_batches(store, database):
    add_events(database, [K1] * 12, age="3 days", sent_age="2 days")
    add_events(database, [K2] * 2, age="3 days", sent_age="1 minute")
    add_events(database, [K3] * 2, age="3 days")

    assert [store.delete_sent(3600, limit=5) for _ in range(4)] == [5, 5, 2, 0]
    left = database.rows("outbox")
    assert sorted(r["event_key"] for r in left) == [K2, K2, K3, K3]
    assert len([r for r in left if r["sent_at"] is None]) == 2
