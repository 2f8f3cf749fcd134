"""The JSON examples of the payments API contract, copied literally as Python data.

Source: shared/contract/payments-api.md. Amounts are kept as Decimal, as
``json.loads(..., parse_float=decimal.Decimal)`` would read them, so ``150.00``
keeps its written precision. Each entry maps a name to (schema file in
schemas/, example).
"""

from decimal import Decimal

CONTRACT_EXAMPLES: dict[str, tuple[str, dict]] = {
    # Body of the curl request to POST /payments.
    "request": (
        "payment-request.schema.json",
        {
            "orderId": "7c9e6679-7425-40de-944b-e07fc1f90ae7",
            "customerId": "a8098c1a-f86e-11da-bd1a-00112444be1e",
            "reservationId": "f47ac10b-58cc-4372-a567-0e02b2c3d479",
            "amount": Decimal("150.00"),
            "currency": "USD",
            "paymentMethod": "credit_card",
        },
    ),
    # 200: the payment succeeded.
    "response_200_success": (
        "payment-response.schema.json",
        {
            "success": True,
            "errorMessage": None,
            "payment": {
                "id": "550e8400-e29b-41d4-a716-446655440000",
                "orderId": "7c9e6679-7425-40de-944b-e07fc1f90ae7",
                "customerId": "a8098c1a-f86e-11da-bd1a-00112444be1e",
                "reservationId": "f47ac10b-58cc-4372-a567-0e02b2c3d479",
                "amount": Decimal("150.00"),
                "currency": "USD",
                "paymentMethod": "credit_card",
                "status": "succeeded",
                "errorCode": None,
                "errorMessage": None,
                "failureReason": None,
                "createdAt": "2026-03-04T15:30:00Z",
                "processedAt": "2026-03-04T15:30:02Z",
                "isSimulated": True,
                "simulatedResponse": "Success - TransactionId: txn_1234567890",
            },
        },
    ),
    # Kafka payment-succeeded event.
    "event_payment_succeeded": (
        "payment-succeeded.schema.json",
        {
            "paymentId": "550e8400-e29b-41d4-a716-446655440000",
            "orderId": "7c9e6679-7425-40de-944b-e07fc1f90ae7",
            "customerId": "a8098c1a-f86e-11da-bd1a-00112444be1e",
            "reservationId": "f47ac10b-58cc-4372-a567-0e02b2c3d479",
            "amount": Decimal("150.00"),
            "currency": "USD",
            "paymentMethod": "credit_card",
            "transactionId": "txn_1234567890",
            "processedAt": "2026-03-04T15:30:00Z",
            "status": "succeeded",
        },
    ),
    # Kafka payment-failed event.
    "event_payment_failed": (
        "payment-failed.schema.json",
        {
            "paymentId": "550e8400-e29b-41d4-a716-446655440000",
            "orderId": "7c9e6679-7425-40de-944b-e07fc1f90ae7",
            "customerId": "a8098c1a-f86e-11da-bd1a-00112444be1e",
            "reservationId": "f47ac10b-58cc-4372-a567-0e02b2c3d479",
            "amount": Decimal("150.00"),
            "currency": "USD",
            "paymentMethod": "credit_card",
            "errorCode": "INSUFFICIENT_FUNDS",
            "errorMessage": "Card declined due to insufficient funds",
            "failureReason": "The payment gateway returned error code 51",
            "attemptedAt": "2026-03-04T15:30:00Z",
            "status": "failed",
        },
    ),
    # 400: the request is malformed or validation failed.
    "response_400_bad_request": (
        "payment-response.schema.json",
        {
            "success": False,
            "errorMessage": "Order validation failed: Order not found or doesn't belong to customer",
            "payment": None,
        },
    ),
    # 403: the customer may not pay for this order.
    "response_403_forbidden": (
        "payment-response.schema.json",
        {
            "success": False,
            "errorMessage": "Unauthorized: Customer does not own this order",
            "payment": None,
        },
    ),
    # 404: the order could not be found.
    "response_404_not_found": (
        "payment-response.schema.json",
        {
            "success": False,
            "errorMessage": "Order not found",
            "payment": None,
        },
    ),
    # 402: the payment was processed but failed at the gateway. The contract
    # shows a partial payment object here.
    "response_402_payment_failed": (
        "payment-response.schema.json",
        {
            "success": False,
            "errorMessage": "Payment failed: Card declined",
            "payment": {
                "id": "550e8400-e29b-41d4-a716-446655440000",
                "status": "failed",
                "errorCode": "CARD_DECLINED",
                "errorMessage": "Card declined",
                "failureReason": "Issuing bank rejected the transaction",
            },
        },
    ),
    # 500: an unexpected error occurred during processing.
    "response_500_server_error": (
        "payment-response.schema.json",
        {
            "success": False,
            "errorMessage": "Payment processing error: Database connection timeout",
            "payment": None,
        },
    ),
}
