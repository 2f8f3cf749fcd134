"""Chooses the payment gateway adapter from the configuration (`PAYMENT_GATEWAY`).

A third processor adds its adapter module (the three methods of
`gateway.PaymentGateway`), its name to `config.GATEWAYS`, its settings to
`Config`, and one branch here.
"""

from __future__ import annotations

from typing import Callable

from payment.config import Config
from payment.gateways.port import PaymentGateway


def build_gateway(config: Config, *, simulator: Callable[[], PaymentGateway]) -> PaymentGateway:
    """The configured adapter. `simulator` builds the default one (it needs
    the composition root's own collaborators, which this module does not know)."""
    if config.payment_gateway == "stripe":
        from payment.gateways.stripe_gateway import StripeGateway

        return StripeGateway.from_config(config)
    return simulator()
