"""What a process of the service says when it starts, and how it says that
it cannot: each one JSON line like every other (payment/logs.py).

The start-up line names what an operator checks first: the gateway, whether
bearer tokens are checked and how, the pool sizes and the topics. Never a
secret: the database URL has its password replaced, the HS256 secret and
the Stripe key are named by their variables only when at all.
"""

from __future__ import annotations

import logging
import sys
from typing import Any, NoReturn

from payment.config import Config
from payment.logs import JsonFormatter

log = logging.getLogger("payment.startup")


def authorization(config: Config) -> str:
    """`off`, or the algorithms tokens are checked with and where the keys come from."""
    ways = []
    if config.auth_hs256_secret:
        ways.append("HS256 (shared secret)")
    if config.auth_jwks_url:
        ways.append("RS256 (JWKS)")
    return ", ".join(ways) or "off"


def algorithms(config: Config) -> list[str]:
    return (["HS256"] if config.auth_hs256_secret else []) + (["RS256"] if config.auth_jwks_url else [])


def summary(config: Config) -> dict[str, Any]:
    """The start-up line's fields."""
    fields: dict[str, Any] = {
        "gateway": config.payment_gateway,
        "authorization": authorization(config),
        "authorizationEnabled": config.auth_enabled,
        "authorizationAlgorithms": algorithms(config),
        "dbPoolMin": config.db_pool_min,
        "dbPoolMax": config.db_pool_max,
        "topics": [config.topic_succeeded, config.topic_failed],
        "database": config.redacted_database_url(),
        "kafkaBootstrapServers": config.kafka_bootstrap_servers,
        "port": config.port,
    }
    if config.auth_jwks_url:
        fields["authJwksUrl"] = config.auth_jwks_url
    if config.payment_gateway == "stripe":
        fields["stripeApiBase"] = config.stripe_api_base
    return fields


def log_start(config: Config, process: str, **more: Any) -> None:
    """One INFO line: `<process> starting: gateway ..., authorization ...`."""
    fields = {**summary(config), **more}
    log.info("%s starting: gateway %s, authorization %s, database pool %d to %d, topics %s", process,
             fields["gateway"], fields["authorization"], fields["dbPoolMin"], fields["dbPoolMax"],
             ", ".join(fields["topics"]), extra={"component": process, **fields})


def fail(message: str, code: int = 1) -> NoReturn:
    """Stop start-up with one JSON line on stdout, where every other line
    goes, whether or not logging is set up yet."""
    record = logging.LogRecord(log.name, logging.ERROR, __file__, 0, message, None, None)
    sys.stdout.write(JsonFormatter().format(record) + "\n")
    sys.stdout.flush()
    sys.exit(code)
