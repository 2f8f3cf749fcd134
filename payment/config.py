"""Service configuration, read once from the environment.

The variable names of the documented deployment (`ConnectionStrings__Default`,
`Kafka__BootstrapServers`, `ASPNETCORE_URLS`) are accepted as they are, so an
existing deployment can swap its image without editing its variables.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import urlsplit

from psycopg.conninfo import conninfo_to_dict, make_conninfo

from payment import secret_files
from payment.db import connection_string
from payment.db.routes import DB_ROUTES
from payment.outbox import kafka_settings
from payment.outbox.kafka_settings import BROKER_DEFAULT

# A default that may be None (a setting with no value unless configured).
D = TypeVar("D", bound=float | None)


class ConfigError(ValueError):
    """A bad configuration value; its message names the variable."""


DEFAULT_PORT = 5004
# The documented deployment names no ordering service URL: the service finds
# it by the host name the platform's compose file gives it.
DEFAULT_ORDERING_SERVICE_URL = "http://ordering:5002"
GATEWAYS = ("simulator", "stripe")
# The longest a confirmed event waits in the marker (payment/outbox/marker.py,
# given it by payment/bootstrap.py) for others to share its statement; the
# relay's grace period must exceed it (`_relay_grace`).
MARK_DELAY_S = 0.05
# The relay leaves an event this long past the producer's own retry window
# (KAFKA_MESSAGE_TIMEOUT_S) unless OUTBOX_RELAY_GRACE_S says otherwise.
RELAY_GRACE_PAST_MESSAGE_TIMEOUT_S = 5.0
# RFC 7518 3.2: an HS256 key at least as long as the hash, 256 bits.
MIN_HS256_SECRET_BYTES = 32


@dataclass(frozen=True)
class Config:
    """Every setting, each default written once: on its field. `from_env`
    reads the field's default back from the class (`cls.port`) for a
    variable that is not set."""

    database_url: str
    kafka_bootstrap_servers: str
    ordering_service_url: str
    reservation_service_url: str
    port: int = DEFAULT_PORT
    # Threads per gunicorn worker (GUNICORN_THREADS): they serve requests,
    # and as many upstream connections per host stay open between their
    # calls (payment/bootstrap.py sizes the upstream connection pool by it).
    worker_threads: int = 8
    upstream_connect_timeout: float = 1.0
    upstream_read_timeout: float = 3.0
    # One upstream call, connect to last byte: the connect and read timeouts
    # together. A call never outlives it, however the answer trickles in.
    upstream_deadline: float = 4.0
    # An order or a reservation is a few hundred bytes; this leaves room for one
    # with many lines and keeps 8 threads x 2 calls far below a worker's memory.
    upstream_max_response_bytes: int = 1024 * 1024
    db_pool_min: int = 1
    db_pool_max: int = 8
    db_timeout: float = 2.0
    # How the service reaches PostgreSQL (DB_ROUTE, payment/db/pool.py):
    # "direct", settings once per connection and prepared statements; or
    # "transaction-pooler" (PgBouncer in transaction mode), settings in every
    # transaction and nothing prepared.
    db_route: str = "direct"
    # The schemas to find unqualified names in (ConnectionStrings__Default's
    # Search Path). Not in the conninfo: a pooler such as PgBouncer refuses
    # startup options, so it is set inside each transaction instead.
    db_search_path: str | None = None
    # ConnectionStrings__Default keys accepted with no meaning here, named in
    # one start-up log line.
    db_ignored_keys: tuple[str, ...] = ()
    # The service's own database role (DB_APP_ROLE), for `migrate` run as the
    # schema's owner: it grants this role what the service needs and no more
    # (payment/db/migrations.py). None: no grants, one role does both.
    db_app_role: str | None = None
    # librdkafka properties from Kafka__* / KAFKA_* (payment/outbox/kafka_settings.py),
    # for the producer and the admin client. They may hold secrets
    # (sasl.password...): out of repr(), see redacted_kafka_settings().
    kafka_settings: dict[str, str] = field(default_factory=dict, repr=False, compare=False)
    kafka_topic_create: bool = True
    kafka_topic_partitions: int = BROKER_DEFAULT
    kafka_topic_replication_factor: int = BROKER_DEFAULT
    kafka_delivery_timeout: float = 2.0
    # How long librdkafka keeps retrying one message; past it the outbox
    # relay owns the event, and the relay's grace period is derived from it.
    kafka_message_timeout: float = 10.0
    topic_succeeded: str = "payment-succeeded"
    topic_failed: str = "payment-failed"
    topic_refunded: str = "payment-refunded"
    topic_refund_failed: str = "payment-refund-failed"
    simulator_latency_ms: int = 0
    simulator_delay_before_charge_ms: int = 0
    simulator_ledger_path: str | None = None
    max_body_bytes: int = 64 * 1024
    http_header_timeout: float = 10.0
    http_body_timeout: float = 10.0
    relay_interval: float = 1.0
    relay_grace: float | None = None  # None: see outbox_relay_grace
    relay_max_backoff: float = 10.0
    relay_batch_size: int = 200
    outbox_retention: float = 7 * 24 * 3600
    pending_timeout: float = 120.0
    reconcile_max_backoff: float = 300.0
    # False where a release step runs `python -m payment migrate` before the
    # service starts (docker-compose.yml); true keeps `make run` self-contained.
    migrate_on_start: bool = True
    payment_gateway: str = "simulator"
    # repr=False: the key never shows when the configuration is printed or logged.
    stripe_api_key: str | None = field(default=None, repr=False)
    stripe_api_base: str = "https://api.stripe.com"
    # Charged when a request brings no paymentToken; test keys only (None:
    # such a request is refused).
    stripe_payment_method: str | None = None
    # The webhook endpoint's signing secrets (several during a rotation);
    # empty: no POST /webhooks/stripe. Out of repr(), as the key is.
    stripe_webhook_secrets: tuple[str, ...] = field(default=(), repr=False)
    gateway_timeout: float = 10.0
    # Authorization, off unless a key is configured (docs/operations.md, "Authorization").
    # The secret stays out of repr(): a logged Config must not carry it.
    auth_hs256_secret: str | None = field(default=None, repr=False)
    auth_jwks_url: str | None = None
    auth_audience: str | None = None
    auth_issuer: str | None = None
    auth_service_scope: str = "payments:read-all"
    # The scope a token needs to refund (POST /payments/{paymentId}/refunds).
    auth_refund_scope: str = "payments:refund"
    auth_leeway: float = 0.0
    auth_jwks_timeout: float = 2.0
    auth_jwks_cache: float = 300.0

    @property
    def outbox_relay_grace(self) -> float:
        """How old an unsent event must be before a relay claims it:
        OUTBOX_RELAY_GRACE_S, else past the producer's own retry window, so
        as not to race it.

        The request that wrote an event produces it, waits for its report
        and hands it to the marker, which marks it sent within MARK_DELAY_S
        (above; payment/outbox/marker.py): the grace period must exceed that delay, or the
        relay would claim and resend events about to be marked. This default
        is seconds above it; a configured OUTBOX_RELAY_GRACE_S is refused at
        or below it."""
        if self.relay_grace is not None:
            return self.relay_grace
        return self.kafka_message_timeout + RELAY_GRACE_PAST_MESSAGE_TIMEOUT_S

    @property
    def topics(self) -> list[str]:
        """Every topic the service produces to."""
        return [self.topic_succeeded, self.topic_failed, self.topic_refunded, self.topic_refund_failed]

    @property
    def auth_enabled(self) -> bool:
        return bool(self.auth_hs256_secret or self.auth_jwks_url)

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> "Config":
        """The configuration from `env` (the process's environment by
        default), each secret's NAME_FILE read first (payment/secret_files.py)."""
        try:
            env = secret_files.resolve(dict(os.environ if env is None else env))
        except secret_files.SecretFileError as exc:
            raise ConfigError(str(exc)) from None
        return cls(
            **_database(env),
            kafka_bootstrap_servers=_kafka_servers(env),
            ordering_service_url=_url(env, "ORDERING_SERVICE_URL", default=DEFAULT_ORDERING_SERVICE_URL),
            reservation_service_url=_url(
                env, "RESERVATION_SERVICE_URL",
                default=env.get("ORDERING_SERVICE_URL") or DEFAULT_ORDERING_SERVICE_URL,
            ),
            port=_port(env),
            upstream_connect_timeout=_seconds(env, "UPSTREAM_CONNECT_TIMEOUT_S", cls.upstream_connect_timeout),
            upstream_read_timeout=_seconds(env, "UPSTREAM_READ_TIMEOUT_S", cls.upstream_read_timeout),
            upstream_deadline=_seconds(env, "UPSTREAM_DEADLINE_S", cls.upstream_deadline, high=60),
            upstream_max_response_bytes=_int(env, "UPSTREAM_MAX_RESPONSE_BYTES", cls.upstream_max_response_bytes,
                                             low=1024, high=64 * 1024 * 1024),
            worker_threads=_int(env, "GUNICORN_THREADS", cls.worker_threads, low=1, high=1024),
            kafka_delivery_timeout=_seconds(env, "KAFKA_DELIVERY_TIMEOUT_S", cls.kafka_delivery_timeout),
            kafka_message_timeout=_seconds(env, "KAFKA_MESSAGE_TIMEOUT_S", cls.kafka_message_timeout),
            topic_succeeded=_topic(env, "KAFKA_TOPIC_PAYMENT_SUCCEEDED", cls.topic_succeeded),
            topic_failed=_topic(env, "KAFKA_TOPIC_PAYMENT_FAILED", cls.topic_failed),
            topic_refunded=_topic(env, "KAFKA_TOPIC_PAYMENT_REFUNDED", cls.topic_refunded),
            topic_refund_failed=_topic(env, "KAFKA_TOPIC_PAYMENT_REFUND_FAILED", cls.topic_refund_failed),
            simulator_latency_ms=_int(env, "SIMULATOR_LATENCY_MS", cls.simulator_latency_ms, low=0),
            simulator_delay_before_charge_ms=_int(env, "SIMULATOR_DELAY_BEFORE_CHARGE_MS",
                                                  cls.simulator_delay_before_charge_ms, low=0),
            simulator_ledger_path=env.get("SIMULATOR_LEDGER_PATH") or cls.simulator_ledger_path,
            http_header_timeout=_seconds(env, "HTTP_HEADER_TIMEOUT_S", cls.http_header_timeout),
            http_body_timeout=_seconds(env, "HTTP_BODY_TIMEOUT_S", cls.http_body_timeout),
            relay_interval=_seconds(env, "OUTBOX_RELAY_INTERVAL_S", cls.relay_interval),
            relay_grace=_relay_grace(env),
            relay_max_backoff=_seconds(env, "OUTBOX_RELAY_MAX_BACKOFF_S", cls.relay_max_backoff),
            relay_batch_size=_int(env, "OUTBOX_RELAY_BATCH_SIZE", cls.relay_batch_size, low=1, high=10_000),
            outbox_retention=_seconds(env, "OUTBOX_RETENTION_S", cls.outbox_retention, high=90 * 24 * 3600),
            pending_timeout=_seconds(env, "PENDING_TIMEOUT_S", cls.pending_timeout, high=24 * 3600),
            reconcile_max_backoff=_seconds(env, "RECONCILE_MAX_BACKOFF_S", cls.reconcile_max_backoff, high=24 * 3600),
            migrate_on_start=_flag(env, "MIGRATE_ON_START", cls.migrate_on_start),
            **_gateway(env),
            **_auth(env),
            **_kafka(env),
        )

    def redacted_database_url(self) -> str:
        return redact_conninfo(self.database_url)

    def redacted_kafka_settings(self) -> dict[str, str]:
        return kafka_settings.redacted(self.kafka_settings)


def _gateway(env: dict[str, str]) -> dict[str, Any]:
    """PAYMENT_GATEWAY and the Stripe settings; the key is checked for its
    shape only, and no message ever quotes it."""
    gateway = _one_of(env, "PAYMENT_GATEWAY", GATEWAYS, Config.payment_gateway)
    key = env.get("STRIPE_API_KEY") or None
    if gateway == "stripe" and not key:
        raise ConfigError("STRIPE_API_KEY must be set when PAYMENT_GATEWAY is stripe")
    if key is not None and not re.fullmatch(r"(sk|rk)_(test|live)_[A-Za-z0-9]+", key):
        raise ConfigError("STRIPE_API_KEY must be a Stripe secret or restricted key (sk_... or rk_...)")
    method = env.get("STRIPE_PAYMENT_METHOD") or Config.stripe_payment_method
    if method is not None and not re.fullmatch(r"pm_[A-Za-z0-9_]{1,100}", method):
        raise ConfigError("STRIPE_PAYMENT_METHOD must be a PaymentMethod id (pm_...)")
    if method is not None and key is not None and "_live_" in key:
        # One PaymentMethod for every customer is a test fixture; in live
        # mode it would charge one real card for everyone's orders.
        raise ConfigError("STRIPE_PAYMENT_METHOD may be set only with a test key (sk_test_... or rk_test_...): "
                          "with a live key every payment must bring the customer's own paymentToken")
    secrets = _webhook_secrets(env)
    if secrets and gateway != "stripe":
        raise ConfigError("STRIPE_WEBHOOK_SECRET needs PAYMENT_GATEWAY=stripe")
    return {
        "payment_gateway": gateway,
        "stripe_api_key": key,
        "stripe_api_base": _url(env, "STRIPE_API_BASE", default=Config.stripe_api_base),
        "stripe_payment_method": method,
        "stripe_webhook_secrets": secrets,
        "gateway_timeout": _seconds(env, "GATEWAY_TIMEOUT_S", Config.gateway_timeout, high=120),
    }


def _webhook_secrets(env: dict[str, str]) -> tuple[str, ...]:
    """STRIPE_WEBHOOK_SECRET: the endpoint's signing secret, or several
    separated by commas while one is rotated out. The message names the
    rule, never a value."""
    raw = env.get("STRIPE_WEBHOOK_SECRET") or ""
    if not raw.strip():
        return ()
    secrets = tuple(part.strip() for part in raw.split(","))
    if not all(secrets) or not all(re.fullmatch(r"[\x21-\x7e]{1,255}", secret) for secret in secrets):
        raise ConfigError("STRIPE_WEBHOOK_SECRET must be one or more signing secrets (whsec_...) separated by "
                          "commas, each of printable characters without spaces")
    return secrets


def _database(env: dict[str, str]) -> dict[str, Any]:
    """The conninfo and the database settings: from DATABASE_URL, else from
    ConnectionStrings__Default. The service's own DB_* variables, when set,
    win over the connection string's pool sizes and Command Timeout: they
    are the more specific setting (one service, one shared string)."""
    npgsql = connection_string.NpgsqlSettings(conninfo="")
    if env.get("DATABASE_URL"):
        url = env["DATABASE_URL"]
        try:
            conninfo_to_dict(url)
        except Exception:
            raise ConfigError("DATABASE_URL is not a valid PostgreSQL connection URL") from None
    elif env.get("ConnectionStrings__Default"):
        try:
            npgsql = connection_string.parse(env["ConnectionStrings__Default"])
        except connection_string.ConnectionStringError as exc:
            raise ConfigError(str(exc)) from None
        url = npgsql.conninfo
    else:
        raise ConfigError("DATABASE_URL or ConnectionStrings__Default must be set")
    pool_min = _int(env, "DB_POOL_MIN", npgsql.pool_min if npgsql.pool_min is not None else Config.db_pool_min,
                    low=0)
    pool_max = _int(env, "DB_POOL_MAX", npgsql.pool_max or Config.db_pool_max, low=1)
    if pool_min > pool_max:
        # A pool that can never reach its minimum is a contradiction, not a choice.
        raise ConfigError("DB_POOL_MIN (or Minimum Pool Size) is above DB_POOL_MAX (or Maximum Pool Size)")
    return {
        "database_url": url,
        "db_pool_min": pool_min,
        "db_pool_max": pool_max,
        "db_timeout": _seconds(env, "DB_TIMEOUT_S", npgsql.command_timeout or Config.db_timeout),
        "db_route": _one_of(env, "DB_ROUTE", DB_ROUTES, Config.db_route,
                            hint="transaction-pooler behind PgBouncer in transaction mode"),
        "db_search_path": npgsql.search_path,
        "db_ignored_keys": npgsql.ignored,
        "db_app_role": _role(env, "DB_APP_ROLE"),
    }


def _one_of(env: dict[str, str], name: str, choices: tuple[str, ...], default: str, hint: str = "") -> str:
    """A setting that names one of a few choices; unset or empty: `default`."""
    value = env.get(name) or default
    if value not in choices:
        raise ConfigError(f"{name} must be one of: " + ", ".join(choices) + (f" ({hint})" if hint else ""))
    return value


def _role(env: dict[str, str], name: str) -> str | None:
    value = env.get(name) or None
    # An unquoted PostgreSQL identifier: what CREATE ROLE name takes as written.
    if value is not None and not re.fullmatch(r"[a-z_][a-z0-9_$]{0,62}", value):
        raise ConfigError(f"{name} must be a role name: lower-case letters, digits, _ and $, at most 63")
    return value


def _kafka(env: dict[str, str]) -> dict[str, Any]:
    try:
        settings, sources = kafka_settings.from_env(env)
        kafka_settings.validate(settings, sources)
    except kafka_settings.KafkaSettingsError as exc:
        raise ConfigError(str(exc)) from None
    replication = _int(env, "KAFKA_TOPIC_REPLICATION_FACTOR", Config.kafka_topic_replication_factor,
                       low=-1, high=32767)
    partitions = _int(env, "KAFKA_TOPIC_PARTITIONS", Config.kafka_topic_partitions, low=-1, high=100000)
    if 0 in (replication, partitions):
        raise ConfigError("KAFKA_TOPIC_PARTITIONS and KAFKA_TOPIC_REPLICATION_FACTOR must be -1 (the broker's "
                          "default) or at least 1")
    return {
        "kafka_settings": settings,
        "kafka_topic_create": _flag(env, "KAFKA_TOPIC_CREATE", Config.kafka_topic_create),
        "kafka_topic_partitions": partitions,
        "kafka_topic_replication_factor": replication,
    }


def redact_conninfo(conninfo: str) -> str:
    """The connection string with any password replaced, safe for logs."""
    try:
        params = conninfo_to_dict(conninfo)
    except Exception:
        return "<unparseable connection string>"
    for secret in ("password", "sslpassword"):
        if secret in params:
            params[secret] = "***"
    return make_conninfo("", **params)


def _kafka_servers(env: dict[str, str]) -> str:
    value = env.get("KAFKA_BOOTSTRAP_SERVERS") or env.get("Kafka__BootstrapServers")
    name = "KAFKA_BOOTSTRAP_SERVERS" if env.get("KAFKA_BOOTSTRAP_SERVERS") else "Kafka__BootstrapServers"
    if not value:
        raise ConfigError("KAFKA_BOOTSTRAP_SERVERS or Kafka__BootstrapServers must be set")
    for server in value.split(","):
        if not re.fullmatch(r"[A-Za-z0-9_.\-\[\]:]+:\d{1,5}", server.strip()):
            raise ConfigError(f"{name} must be a comma-separated list of host:port")
    return value


def _port(env: dict[str, str]) -> int:
    if env.get("PORT"):
        return _int(env, "PORT", DEFAULT_PORT, low=1, high=65535)
    urls = env.get("ASPNETCORE_URLS")
    if not urls:
        return DEFAULT_PORT
    # `http://+:5004`: only the port matters, the service always binds every interface.
    match = re.fullmatch(r"https?://[^/;]+:(\d{1,5})/?", urls.split(";")[0].strip())
    if not match or not 1 <= int(match.group(1)) <= 65535:
        raise ConfigError("ASPNETCORE_URLS must look like http://+:5004")
    return int(match.group(1))


def _url(env: dict[str, str], name: str, default: str | None = None) -> str:
    value = env.get(name) or default
    if not value:
        raise ConfigError(f"{name} must be set")
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigError(f"{name} must be an http(s) URL")
    return value.rstrip("/")


def _int(env: dict[str, str], name: str, default: int, low: int | None = None, high: int | None = None) -> int:
    raw = env.get(name)
    if raw in (None, ""):
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be an integer") from None
    if (low is not None and value < low) or (high is not None and value > high):
        raise ConfigError(f"{name} is out of range")
    return value


def _seconds(env: dict[str, str], name: str, default: D, high: float = 600) -> float | D:
    raw = env.get(name)
    if raw in (None, ""):
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a number of seconds") from None
    if not 0 < value <= high:
        raise ConfigError(f"{name} must be between 0 and {high:g} seconds")
    return value


def _relay_grace(env: dict[str, str]) -> float | None:
    """OUTBOX_RELAY_GRACE_S, above the marker's delay: a confirmed event
    waits up to MARK_DELAY_S to be marked sent, and a relay that claimed it
    in that time would send it again (the default, Config.outbox_relay_grace,
    is far above)."""
    grace = _seconds(env, "OUTBOX_RELAY_GRACE_S", None)
    if grace is not None and grace <= MARK_DELAY_S:
        raise ConfigError(f"OUTBOX_RELAY_GRACE_S must be above {MARK_DELAY_S:g} seconds, the longest a "
                          "confirmed event waits to be marked sent")
    return grace


def _flag(env: dict[str, str], name: str, default: bool) -> bool:
    raw = (env.get(name) or "").strip().lower()
    if not raw:
        return default
    if raw in ("true", "1", "yes"):
        return True
    if raw in ("false", "0", "no"):
        return False
    raise ConfigError(f"{name} must be true or false")


def _topic(env: dict[str, str], name: str, default: str) -> str:
    value = env.get(name) or default
    if not re.fullmatch(r"[A-Za-z0-9._\-]{1,249}", value):
        raise ConfigError(f"{name} is not a valid Kafka topic name")
    return value


def _auth(env: dict[str, str]) -> dict[str, Any]:
    secret = env.get("AUTH_JWT_HS256_SECRET") or None
    if secret is not None and len(secret.encode()) < MIN_HS256_SECRET_BYTES:
        # The message gives the rule, never the value.
        raise ConfigError(f"AUTH_JWT_HS256_SECRET must be at least {MIN_HS256_SECRET_BYTES} bytes")
    jwks_url = _url(env, "AUTH_JWKS_URL") if env.get("AUTH_JWKS_URL") else None
    settings = {
        "auth_hs256_secret": secret,
        "auth_jwks_url": jwks_url,
        "auth_audience": _claim_value(env, "AUTH_AUDIENCE"),
        "auth_issuer": _claim_value(env, "AUTH_ISSUER"),
        "auth_service_scope": _scope(env, "AUTH_SERVICE_SCOPE", Config.auth_service_scope),
        "auth_refund_scope": _scope(env, "AUTH_REFUND_SCOPE", Config.auth_refund_scope),
        "auth_leeway": _leeway(env, "AUTH_LEEWAY_S"),
        "auth_jwks_timeout": _seconds(env, "AUTH_JWKS_TIMEOUT_S", Config.auth_jwks_timeout, high=30),
        "auth_jwks_cache": _seconds(env, "AUTH_JWKS_CACHE_S", Config.auth_jwks_cache, high=24 * 3600),
    }
    if not (secret or jwks_url):
        # Checks that would silently do nothing without a key are a mistake, not a choice.
        for name in ("AUTH_AUDIENCE", "AUTH_ISSUER"):
            if env.get(name):
                raise ConfigError(f"{name} needs AUTH_JWT_HS256_SECRET or AUTH_JWKS_URL")
    return settings


def _claim_value(env: dict[str, str], name: str) -> str | None:
    value = env.get(name)
    if not value:
        return None
    if value != value.strip() or not value.isprintable():
        raise ConfigError(f"{name} must be printable, without surrounding spaces")
    return value


def _scope(env: dict[str, str], name: str, default: str) -> str:
    value = env.get(name) or default
    # RFC 6749 3.3 scope-token: printable ASCII except space, quote and backslash.
    if not re.fullmatch(r"[\x21\x23-\x5B\x5D-\x7E]+", value):
        raise ConfigError(f"{name} must be one OAuth scope (no spaces, quotes or backslashes)")
    return value


def _leeway(env: dict[str, str], name: str) -> float:
    raw = env.get(name)
    if raw in (None, ""):
        return Config.auth_leeway
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name} must be a number of seconds") from None
    # A clock-skew allowance, not a way to keep expired tokens alive.
    if not 0 <= value <= 300:
        raise ConfigError(f"{name} must be between 0 and 300 seconds")
    return value
