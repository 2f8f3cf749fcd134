"""What JSON costs per call on the request path: jsonio (the standard
library's parser with Decimal hooks, the hand-written encoder) on the
documents one payment reads and writes, in µs per call.

    python -m bench.json_cost [--number 20000] [--rounds 7]

The best round of each is kept (the least disturbed by whatever else the
machine runs). A payment reads three documents (its body, the order, the
reservation) and writes two (the answer, the event): the sum is what a
faster codec could at most save per payment (docs/performance.md, "JSON").
"""

from __future__ import annotations

import argparse
import timeit
import uuid
from datetime import datetime, timezone
from decimal import Decimal

from payment import jsonio
from payment.model import Payment
from payment.representations import payment_document, succeeded_event

ORDER_ID = "7c9e6679-7425-40de-944b-e07fc1f90ae7"
CUSTOMER_ID = "a8098c1a-f86e-11da-bd1a-00112444be1e"
RESERVATION_ID = "f47ac10b-58cc-4372-a567-0e02b2c3d479"

# The contract's POST /payments example, as a client sends it.
REQUEST_BODY = f"""{{
    "orderId": "{ORDER_ID}",
    "customerId": "{CUSTOMER_ID}",
    "reservationId": "{RESERVATION_ID}",
    "amount": 150.00,
    "currency": "USD",
    "paymentMethod": "credit_card"
  }}""".encode()
# The ordering and reservation services' answers, as bench/upstream.py sends them.
ORDER_ANSWER = (f'{{"id":"{ORDER_ID}","customerId":"{CUSTOMER_ID}","totalAmount":150.00,'
                f'"currency":"USD","status":"pending"}}').encode()
RESERVATION_ANSWER = (f'{{"id":"{RESERVATION_ID}","customerId":"{CUSTOMER_ID}","status":"active",'
                      f'"expiresAt":"2099-01-01T00:00:00Z"}}').encode()


def settled_payment() -> Payment:
    created = datetime(2026, 3, 4, 15, 30, 0, 123000, tzinfo=timezone.utc)
    return Payment(
        id=uuid.UUID("550e8400-e29b-41d4-a716-446655440000"), order_id=uuid.UUID(ORDER_ID),
        customer_id=uuid.UUID(CUSTOMER_ID), reservation_id=uuid.UUID(RESERVATION_ID),
        amount=Decimal("150.00"), currency="USD", payment_method="credit_card", status="succeeded",
        error_code=None, error_message=None, failure_reason=None, transaction_id="txn_1234567890",
        created_at=created, processed_at=created, is_simulated=True,
        simulated_response="Success - TransactionId: txn_1234567890")


def cases() -> list[tuple[str, object, object]]:
    """(name, function, argument)."""
    payment = settled_payment()
    response = {"success": True, "errorMessage": None, "payment": payment_document(payment)}
    return [
        ("loads request body (contract example)", jsonio.loads, REQUEST_BODY),
        ("loads ordering answer", jsonio.loads, ORDER_ANSWER),
        ("loads reservation answer", jsonio.loads, RESERVATION_ANSWER),
        ("dumps payment response", jsonio.dumps, response),
        ("dumps payment-succeeded event", jsonio.dumps, succeeded_event(payment)),
    ]


def per_call_us(function, argument, number: int) -> float:
    return timeit.timeit(lambda: function(argument), number=number) / number * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--number", type=int, default=20000, help="calls per round")
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    total = 0.0
    for name, function, argument in cases():
        best = min(per_call_us(function, argument, args.number) for _ in range(args.rounds))
        total += best
        print(f"{name:40} {best:8.2f} µs")
    print(f"{'one payment, all five':40} {total:8.2f} µs")


if __name__ == "__main__":
    main()
