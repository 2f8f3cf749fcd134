"""The fixed floor's event (bench/fixed_floor.py): written by hand, apart
from the service's code, it must still be a valid payment-succeeded event
keyed by its order, so that the floor does a real payment's broker work."""

import json
from datetime import datetime, timezone
from decimal import Decimal

from bench.fixed_floor import pool_kwargs, succeeded_payload, utc_millis
from payment.schemas import validator

PAYMENT_ID = "0b6c3b4e-5f1a-4d2e-9a7b-3c4d5e6f7a8b"
ORDER_ID = "0a1b2c3d-0001-4000-8000-000000000007"
WHEN = datetime(2026, 3, 4, 15, 30, 2, 123456, tzinfo=timezone.utc)


def test_the_payload_is_a_valid_payment_succeeded_event():
    payload = succeeded_payload(PAYMENT_ID, ORDER_ID, "txn_4ad5cb6232af1b2b", WHEN)

    event = json.loads(payload, parse_float=Decimal)
    assert list(validator("payment-succeeded.schema.json").iter_errors(event)) == []
    assert event["orderId"] == ORDER_ID and event["paymentId"] == PAYMENT_ID
    assert event["processedAt"] == "2026-03-04T15:30:02.123Z"


def test_the_amount_keeps_its_two_decimals():
    payload = succeeded_payload(PAYMENT_ID, ORDER_ID, "txn_1", WHEN)

    assert '"amount":150.00,' in payload
    assert json.loads(payload, parse_float=Decimal)["amount"] == Decimal("150.00")


def test_times_are_utc_milliseconds_with_a_z():
    from datetime import timedelta
    east = timezone(timedelta(hours=2))

    assert utc_millis(datetime(2026, 3, 4, 17, 30, 2, 999999, tzinfo=east)) == "2026-03-04T15:30:02.999Z"


def test_through_pgbouncer_nothing_is_prepared():
    assert pool_kwargs(through_pgbouncer=True)["prepare_threshold"] is None
    assert "prepare_threshold" not in pool_kwargs(through_pgbouncer=False)  # psycopg's default
    assert pool_kwargs(through_pgbouncer=False)["autocommit"] is True
