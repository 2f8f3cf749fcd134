"""What Stripe's failures say about the gateway, for the operators.

Each failed call is counted by kind in `payment_gateway_errors_total{kind}`:

  auth             AuthenticationError: the API key is wrong, expired or revoked
  permission       PermissionError: a restricted key lacks a permission it needs
  rate_limit       RateLimitError: too many requests (HTTP 429)
  network          APIConnectionError: no connection, or no answer in time
  server           APIError: Stripe failed (HTTP 5xx)
  idempotency      IdempotencyError: a key reused with other parameters
  invalid_request  InvalidRequestError the adapter did not expect: a request
                   of the service's own that Stripe refuses
  other            anything else the SDK raises

A decline is no error (it is the payment's outcome), nor is an intent that
is not found when the adapter asks whether one exists.

`auth` and `permission` need a person: each is logged at error level, at
most once a minute per process, with its kind and never the key; and the
last of them marks the gateway failing in `/health/ready` until a call
succeeds again. Readiness never calls Stripe itself: it reads what the
calls saw, and when they have been quiet for PROBE_INTERVAL_S it has one
cheap read (a list of one PaymentIntent) made in the background, at most
once per interval per process.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Callable, Protocol

import stripe

log = logging.getLogger(__name__)

# Errors that need a person, logged at most once per ALARM_INTERVAL_S each.
NEEDS_A_PERSON = ("auth", "permission")
ALARM_INTERVAL_S = 60.0
# Readiness asks Stripe itself only when no call has said anything for this long.
PROBE_INTERVAL_S = 60.0
# The first readiness answer waits this long, at most, for the start-up probe.
FIRST_PROBE_WAIT_S = 2.0

_KINDS: tuple[tuple[type[stripe.StripeError], str], ...] = (
    (stripe.AuthenticationError, "auth"),
    (stripe.PermissionError, "permission"),
    (stripe.RateLimitError, "rate_limit"),
    (stripe.APIConnectionError, "network"),
    (stripe.IdempotencyError, "idempotency"),
    (stripe.InvalidRequestError, "invalid_request"),
    (stripe.APIError, "server"),
)

_ALARMS = {
    "auth": "Stripe refused the API key (authentication failed): no payment can be charged until "
            "STRIPE_API_KEY holds a valid key",
    "permission": "Stripe refused an operation to the API key (permission denied): the restricted key "
                  "lacks a permission the service needs",
}


class ErrorCounter(Protocol):
    def gateway_error(self, kind: str) -> None: ...


def kind_of(error: stripe.StripeError) -> str:
    for cls, kind in _KINDS:
        if isinstance(error, cls):
            return kind
    return "other"


class GatewayHealth:
    """The gateway's health as its calls see it: `failed(error)` and
    `succeeded()` after each call, `ready()` for /health/ready."""

    def __init__(self, *, metrics: ErrorCounter | None = None, probe: Callable[[], None] | None = None,
                 clock: Callable[[], float] = time.monotonic,
                 probe_interval_s: float = PROBE_INTERVAL_S, alarm_interval_s: float = ALARM_INTERVAL_S):
        self.metrics = metrics
        self.probe = probe
        self.clock = clock
        self.probe_interval_s = probe_interval_s
        self.alarm_interval_s = alarm_interval_s
        self._lock = threading.Lock()
        self._failing: str | None = None   # the kind that needs a person, until a call succeeds
        self._heard_at: float | None = None  # when a call last said anything
        self._alarmed_at: dict[str, float] = {}
        self._probing: threading.Thread | None = None
        self._first_probe = threading.Event()

    def failed(self, error: stripe.StripeError) -> str:
        """Count a failed call, raise the alarm if it needs a person; its kind."""
        kind = kind_of(error)
        if self.metrics is not None:
            self.metrics.gateway_error(kind)
        now = self.clock()
        with self._lock:
            self._heard_at = now
            if kind in NEEDS_A_PERSON:
                self._failing = kind
                due = now - self._alarmed_at.get(kind, float("-inf")) >= self.alarm_interval_s
                if due:
                    self._alarmed_at[kind] = now
            else:
                due = False
        if due:
            # The kind and the HTTP status; never Stripe's text, which may quote the key.
            log.error(_ALARMS[kind], extra={"gatewayErrorKind": kind, "httpStatus": error.http_status})
        return kind

    def succeeded(self) -> None:
        with self._lock:
            self._heard_at = self.clock()
            self._failing = None

    def ready(self) -> bool:
        """False while the last word from Stripe was an error that needs a
        person. Never waits on Stripe, but for the start-up probe's first answer."""
        if self.probe is not None:
            self._probe_if_quiet()
            self._first_probe.wait(FIRST_PROBE_WAIT_S)
        with self._lock:
            return self._failing is None

    def start(self) -> "GatewayHealth":
        """The start-up probe, in the background."""
        if self.probe is not None:
            self._probe_if_quiet()
        else:
            self._first_probe.set()
        return self

    def _probe_if_quiet(self) -> None:
        with self._lock:
            quiet = self._heard_at is None or self.clock() - self._heard_at >= self.probe_interval_s
            if not quiet or (self._probing is not None and self._probing.is_alive()):
                return
            # Counted as heard from now: the next probe is an interval away
            # however long this one takes.
            self._heard_at = self.clock()
            self._probing = threading.Thread(target=self._run_probe, name="stripe-probe", daemon=True)
            self._probing.start()

    def _run_probe(self) -> None:
        try:
            if self.probe is not None:
                self.probe()  # its own call records what it saw (succeeded, failed)
        except Exception:  # noqa: BLE001 - a probe's failure is recorded by the call; nothing to add
            pass
        finally:
            self._first_probe.set()
