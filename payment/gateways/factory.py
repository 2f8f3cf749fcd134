"""Chooses the payment gateway adapter from the configuration (`PAYMENT_GATEWAY`)
and gives it its settings: the adapters themselves never read the configuration.

A third processor adds its adapter module (the methods of
`ports.PaymentGateway`), its name to `config.GATEWAYS`, its settings to
`Config`, and one branch here.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from payment.config import Config
from payment.gateways.port import PaymentGateway

if TYPE_CHECKING:
    from payment.gateways.stripe_health import ErrorCounter


def build_gateway(config: Config, *, simulator: Callable[[], PaymentGateway],
                  metrics: ErrorCounter | None = None) -> PaymentGateway:
    """The configured adapter. `simulator` builds the default one (it needs
    the composition root's own collaborators, which this module does not know);
    `metrics` counts a processor's failed calls by kind."""
    if config.payment_gateway == "stripe":
        from payment.gateways.stripe_gateway import StripeGateway

        # The configuration refuses PAYMENT_GATEWAY=stripe without a key; the
        # adapter refuses an empty one too.
        return StripeGateway(config.stripe_api_key or "", api_base=config.stripe_api_base,
                             payment_method=config.stripe_payment_method, timeout=config.gateway_timeout,
                             metrics=metrics)
    return simulator()


def readiness_check(gateway: PaymentGateway) -> Callable[[], bool] | None:
    """The adapter's own check for /health/ready, started, when it has one
    (Stripe: a key Stripe refuses); None for the simulator, whose ledger is
    the database, checked already."""
    health = getattr(gateway, "health", None)
    if health is None:
        return None
    health.start()
    ready: Callable[[], bool] = health.ready
    return ready
