"""The rooms' import rules, as the interpreter sees them: what importing
them loads, in a fresh process.

- The domain (the model, money, errors, the ports, the payment and refund
  flows, the publishing of their events and the reconciler) loads no adapter room, no driver and no web framework: it
  knows the other parts by their ports (payment/ports.py) only.
- The adapters load no configuration: the composition root
  (payment/bootstrap.py) reads it and hands them their settings.
The configuration's own rule is tests/unit/test_config_defaults.py's.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

DOMAIN = ["payment.model", "payment.money", "payment.errors", "payment.ports", "payment.service",
          "payment.refunds", "payment.publishing", "payment.reconciler"]
NOT_IN_THE_DOMAIN = ("payment.db", "payment.gateways", "payment.outbox", "payment.upstream", "payment.api",
                     "payment.server", "payment.bootstrap", "payment.config", "psycopg", "psycopg_pool",
                     "confluent_kafka", "falcon", "stripe", "jsonschema", "prometheus_client")

ADAPTERS = ["payment.db.pool", "payment.db.store", "payment.db.refund_store", "payment.gateways.simulator",
            "payment.gateways.stripe_gateway",
            "payment.outbox.producer", "payment.outbox.delivery", "payment.outbox.marker", "payment.outbox.relay",
            "payment.upstream.clients", "payment.upstream.httpclient", "payment.api.app"]


def loaded_by(modules: list[str]) -> set[str]:
    """What importing these modules loads, in a fresh process."""
    return set(subprocess.run(
        [sys.executable, "-c", f"import sys, {', '.join(modules)}; print(' '.join(sys.modules))"],
        cwd=ROOT, capture_output=True, text=True, check=True).stdout.split())


def within(names: set[str], rooms: tuple[str, ...]) -> list[str]:
    return sorted(name for name in names if any(name == room or name.startswith(room + ".") for room in rooms))


def test_the_domain_loads_no_adapter():
    assert within(loaded_by(DOMAIN), NOT_IN_THE_DOMAIN) == []


def test_the_adapters_load_no_configuration():
    assert within(loaded_by(ADAPTERS), ("payment.config", "payment.bootstrap")) == []
