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
    event_type = "payment-succeeded" if row["status"] == "succeeded" else "payment-failed"
    # The payment's own event: its refunds' events are outbox rows of the payment too.
    [outbox] = database.rows("outbox", "payment_id = %s AND event_type = %s", (str(payment_id), event_type))
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


REFUNDED_FIELDS = ("refundId", "paymentId", "orderId", "customerId", "amount", "currency", "reason",
                   "transactionId", "amountRefunded", "refundedAt", "status")
REFUND_FAILED_FIELDS = ("refundId", "paymentId", "orderId", "customerId", "amount", "currency", "reason",
                        "errorCode", "errorMessage", "attemptedAt", "status")
# The failure the reconciler records for a refund the gateway never received.
REFUND_INTERRUPTED = ("REFUND_INTERRUPTED",
                      "Refund processing was interrupted before the payment processor received it")
REFUND_DECLINED = ("REFUND_DECLINED", "Refund declined by the payment processor")


def assert_refund_event_of(message: dict, database, refund_id, payment: dict, *, amount: str,
                           reason: str = "requested_by_customer", amount_refunded: str | None = None,
                           failure: tuple[str, str] | None = None) -> None:
    """`message` is the event of the refund `refund_id` of `payment` (the
    payment object the service answered), whole: key, headers, every field
    in order. `amount` and `amount_refunded` (the payment's total refunded
    with this refund) as the event must write them; `failure` the
    (errorCode, errorMessage) of a failed refund."""
    [row] = database.rows("refunds", "id = %s", (str(refund_id),))
    [outbox] = [o for o in database.rows("outbox", "payment_id = %s", (payment["id"],))
                if f'"refundId":"{refund_id}"' in o["payload"]]
    succeeded = row["status"] == "succeeded"
    event_type = "payment-refunded" if succeeded else "payment-refund-failed"
    assert message["key"] == payment["orderId"]
    assert message["headers"] == {"eventType": event_type, "eventId": str(outbox["event_id"]),
                                  "paymentId": payment["id"], "contentType": "application/json"}
    common = {"refundId": str(refund_id), "paymentId": payment["id"], "orderId": payment["orderId"],
              "customerId": payment["customerId"], "amount": amount, "currency": payment["currency"],
              "reason": reason}
    if succeeded:
        assert failure is None and amount_refunded is not None
        expected = {**common, "transactionId": row["transaction_id"], "amountRefunded": amount_refunded,
                    "refundedAt": utc_ms(row["processed_at"]), "status": "refunded"}
    else:
        assert row["status"] == "failed" and failure is not None
        expected = {**common, "errorCode": failure[0], "errorMessage": failure[1],
                    "attemptedAt": utc_ms(row["processed_at"]), "status": "failed"}
    value = message["value"]
    written = {**value, "amount": str(value["amount"])}
    if succeeded:
        written["amountRefunded"] = str(value["amountRefunded"])
    assert written == expected
    assert list(written) == list(REFUNDED_FIELDS if succeeded else REFUND_FAILED_FIELDS)
    assert message["raw"] == outbox["payload"]
