"""Chooses the payment gateway adapter from the configuration (`PAYMENT_GATEWAY`)
and gives it its settings: the adapters themselves never read the configuration.

A third processor adds its adapter module (the three methods of
`ports.PaymentGateway`), its name to `config.GATEWAYS`, its settings to
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

        # The configuration refuses PAYMENT_GATEWAY=stripe without a key; the
        # adapter refuses an empty one too.
        return StripeGateway(config.stripe_api_key or "", api_base=config.stripe_api_base,
                             payment_method=config.stripe_payment_method, timeout=config.gateway_timeout)
    return simulator()
