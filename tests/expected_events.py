"""The event a settled payment must have put on its topic, built from what a
test knows (the request it sent, the row the service wrote, the outbox row's
event id) and not from the service's own documents module, and compared
whole: key, the four headers, every payload field in the contract's order,
the amount as written (`150.00`, JPY `15000`) and the times' format.

docs/api.md ("Events") and the contract's examples say what each holds."""

from __future__ import annotations

import re
from datetime import datetime, timezone
from decimal import Decimal

SUCCEEDED_FIELDS = ("paymentId", "orderId", "customerId", "reservationId", "amount", "currency",
                    "paymentMethod", "transactionId", "processedAt", "status")
FAILED_FIELDS = ("paymentId", "orderId", "customerId", "reservationId", "amount", "currency",
                 "paymentMethod", "errorCode", "errorMessage", "failureReason", "attemptedAt", "status")
UTC_MS = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z")
# The failure the reconciler records for a payment the gateway never charged.
INTERRUPTED = ("PROCESSING_INTERRUPTED", "Payment processing was interrupted",
               "The payment gateway has no charge for this payment: processing stopped before it was charged")


def utc_ms(moment: datetime) -> str:
    """`2026-03-04T15:30:02.123Z`: the documented time format (docs/api.md)."""
    moment = moment.astimezone(timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def expected_payload(row: dict, request: dict, *, amount: str | None = None,
                     failure: tuple[str, str, str | None] | None = None) -> dict:
    """The payload for the payment in `row`, asked for with `request` (the
    body sent; the contract's defaults for what it left out). `amount` is the
    amount as the event must write it, when the request wrote it otherwise
    (`150` for a USD order is `150.00`); `failure` the (errorCode,
    errorMessage, failureReason) a failed payment must carry."""
    common = {
        "paymentId": str(row["id"]),
        "orderId": request["orderId"],
        "customerId": request["customerId"],
        "reservationId": request.get("reservationId"),
        "amount": amount if amount is not None else str(request["amount"]),
        "currency": request.get("currency", "USD"),
        "paymentMethod": request.get("paymentMethod", "credit_card"),
    }
    if row["status"] == "succeeded":
        assert failure is None, "a succeeded payment has no failure"
        return {**common, "transactionId": row["transaction_id"], "processedAt": utc_ms(row["processed_at"]),
                "status": "succeeded"}
    assert row["status"] == "failed", row
    assert failure is not None, "say which failure the payment must carry"
    code, message, reason = failure
    return {**common, "errorCode": code, "errorMessage": message, "failureReason": reason,
            "attemptedAt": utc_ms(row["processed_at"]), "status": "failed"}


def assert_event_of(message: dict, database, payment_id, request: dict, **expect) -> None:
    """`message` (read back by tests.support.EventLog) is the event of the
    payment `payment_id`, asked for with `request`, whole; `expect` as for
    expected_payload."""
    [row] = database.rows(where="id = %s", params=(str(payment_id),))
    [outbox] = database.rows("outbox", "payment_id = %s", (str(payment_id),))
    event_type = "payment-succeeded" if row["status"] == "succeeded" else "payment-failed"
    assert message["key"] == request["orderId"]
    assert message["headers"] == {"eventType": event_type, "eventId": str(outbox["event_id"]),
                                  "paymentId": str(payment_id), "contentType": "application/json"}
    value = message["value"]
    # Read with Decimal, the amount keeps the digits it was written with.
    assert isinstance(value["amount"], (Decimal, int)), value["amount"]
    written = {**value, "amount": str(value["amount"])}
    expected = expected_payload(row, request, **expect)
    assert written == expected
    assert list(written) == list(SUCCEEDED_FIELDS if event_type == "payment-succeeded" else FAILED_FIELDS)
    assert UTC_MS.fullmatch(written["processedAt" if event_type == "payment-succeeded" else "attemptedAt"])


def assert_as_committed(message: dict, outbox: dict) -> None:
    """`message` is the outbox row's event as committed: its topic's key, the
    four headers, the payload's bytes (for events whose payload other tests
    compare whole, sent again after an outage)."""
    assert message["key"] == outbox["event_key"]
    assert message["headers"] == {"eventType": outbox["event_type"], "eventId": str(outbox["event_id"]),
                                  "paymentId": str(outbox["payment_id"]), "contentType": "application/json"}
    assert message["raw"] == outbox["payload"]
