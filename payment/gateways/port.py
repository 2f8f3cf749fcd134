"""The payment gateway port: what the service asks of a payment processor.

Adapters: `payment/gateways/simulator.py` (the default, `isSimulated: true`) and
`payment/gateways/stripe_gateway.py` (Stripe PaymentIntents). A third processor
implements the three methods below; nothing else in the service changes.

The rules every adapter keeps, because the service relies on them to never
take money without recording it, and never take it twice:

- `prepare` registers the charge with the processor without moving money and
  returns a reference the service stores on the payment *before* `charge`
  runs (None when the payment id is all the processor needs).
- `charge` sends an idempotency key derived from the payment id: charging the
  same payment again never creates a second charge, it returns the first
  result. A decline is a result; `GatewayUnreachable` means the outcome is
  unknown (the processor could not be asked, or its answer was lost).
- `lookup` says what the processor knows of a payment. It never raises for an
  unreachable processor: it answers UNKNOWN. A NEVER_CHARGED answer is final:
  the adapter first makes sure that a charge still on its way for that
  payment can no longer succeed (the simulator voids the payment id, Stripe
  cancels the intent).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Protocol

from payment.model import ChargeResult, Payment


class GatewayUnreachable(Exception):
    """The processor could not be asked or did not answer: the outcome is unknown."""


class Found(enum.Enum):
    CHARGED = "charged"
    DECLINED = "declined"
    NEVER_CHARGED = "never_charged"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class Lookup:
    found: Found
    result: ChargeResult | None = None  # set for CHARGED and DECLINED

    @classmethod
    def of(cls, result: ChargeResult) -> "Lookup":
        return cls(Found.CHARGED if result.succeeded else Found.DECLINED, result)


NEVER_CHARGED = Lookup(Found.NEVER_CHARGED)
UNKNOWN = Lookup(Found.UNKNOWN)


class PaymentGateway(Protocol):
    is_simulated: bool

    def prepare(self, payment: Payment) -> str | None: ...

    def charge(self, payment: Payment) -> ChargeResult: ...

    def lookup(self, payment: Payment) -> Lookup: ...


def idempotency_key(payment: Payment, step: str = "charge") -> str:
    """The key sent with every call that may move money: one per payment and step."""
    return f"payment-{payment.id}-{step}"
