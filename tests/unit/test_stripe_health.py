"""What Stripe's failed calls tell the operators (payment/gateways/stripe_health.py):
each counted by kind, a refused key logged loudly but at most once a minute,
and readiness from what the calls saw, with one probe when they are quiet."""

from __future__ import annotations

import logging
import threading

import pytest
import stripe

from payment.gateways.stripe_health import ALARM_INTERVAL_S, PROBE_INTERVAL_S, GatewayHealth, kind_of

KEY = "sk_live_" + "K3yTh4tMustN0tLeak"


class Counts:
    def __init__(self):
        self.kinds: list[str] = []

    def gateway_error(self, kind: str) -> None:
        self.kinds.append(kind)


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def revoked() -> stripe.AuthenticationError:
    # Stripe's own text quotes part of the key; the alarm must not.
    return stripe.AuthenticationError(f"Invalid API Key provided: {KEY}", http_status=401)


@pytest.mark.parametrize("error, kind", [
    (revoked(), "auth"),
    (stripe.PermissionError("The provided key does not have access", http_status=403), "permission"),
    (stripe.RateLimitError("Too many requests", http_status=429), "rate_limit"),
    (stripe.APIConnectionError("Connection refused"), "network"),
    (stripe.APIError("Internal error", http_status=500), "server"),
    (stripe.IdempotencyError("Keys for idempotent requests can only be used with the same parameters"),
     "idempotency"),
    (stripe.InvalidRequestError("No such parameter", "x", code="parameter_unknown", http_status=400),
     "invalid_request"),
    (stripe.StripeError("something else"), "other"),
])
def test_each_failure_is_counted_by_its_kind(error, kind):
    counts = Counts()
    assert kind_of(error) == kind
    assert GatewayHealth(metrics=counts).failed(error) == kind
    assert counts.kinds == [kind]


def test_a_refused_key_is_an_error_line_once_a_minute_with_its_kind_and_never_the_key(caplog):
    caplog.set_level(logging.INFO, logger="payment.gateways.stripe_health")
    clock, counts = Clock(), Counts()
    health = GatewayHealth(metrics=counts, clock=clock)
    for _ in range(5):
        health.failed(revoked())
        clock.now += 10
    health.failed(stripe.PermissionError("no access", http_status=403))
    clock.now += ALARM_INTERVAL_S
    health.failed(revoked())

    alarms = [(r.levelno, r.gatewayErrorKind) for r in caplog.records]
    assert alarms == [(logging.ERROR, "auth"), (logging.ERROR, "permission"), (logging.ERROR, "auth")]
    assert counts.kinds == ["auth"] * 5 + ["permission", "auth"]
    for record in caplog.records:
        assert "K3yTh4t" not in record.getMessage() + repr(vars(record))
    assert "STRIPE_API_KEY" in caplog.records[0].getMessage()


@pytest.mark.parametrize("error", [stripe.RateLimitError("slow down", http_status=429),
                                   stripe.APIConnectionError("timed out"),
                                   stripe.APIError("oops", http_status=503)])
def test_passing_failures_are_counted_not_alarmed_and_leave_readiness(error, caplog):
    caplog.set_level(logging.INFO, logger="payment.gateways.stripe_health")
    health = GatewayHealth(metrics=Counts())
    health.failed(error)
    assert caplog.records == [] and health.ready()


def test_readiness_fails_from_a_refused_key_until_a_call_succeeds():
    health = GatewayHealth(metrics=Counts())
    assert health.ready()
    health.failed(revoked())
    assert not health.ready()
    health.failed(stripe.APIConnectionError("timed out"))
    assert not health.ready()   # nothing said the key works again
    health.succeeded()
    assert health.ready()


class Probe:
    """Stands for the adapter's one cheap call, which records what it saw."""

    def __init__(self, health_of, answer):
        self.health_of = health_of
        self.answer = answer
        self.calls = 0
        self.done = threading.Event()

    def __call__(self):
        self.calls += 1
        health = self.health_of()
        if self.answer == "refused":
            health.failed(revoked())
        else:
            health.succeeded()
        self.done.set()


def test_a_quiet_gateway_is_probed_at_start_and_then_at_most_once_per_interval():
    clock = Clock()
    holder = {}
    probe = Probe(lambda: holder["health"], "refused")
    health = holder["health"] = GatewayHealth(metrics=Counts(), probe=probe, clock=clock)
    health.start()
    # The first answer waits for the start-up probe: a revoked key shows at once.
    assert not health.ready() and probe.calls == 1
    for _ in range(50):
        assert not health.ready()
    clock.now += PROBE_INTERVAL_S / 2
    assert not health.ready() and probe.calls == 1

    probe.answer, probe.done = "accepted", threading.Event()
    clock.now += PROBE_INTERVAL_S / 2
    health.ready()   # quiet for an interval: one probe, in the background
    assert probe.done.wait(5) and probe.calls == 2
    assert health.ready()


def test_calls_that_speak_leave_no_need_to_probe():
    clock = Clock()
    holder = {}
    probe = Probe(lambda: holder["health"], "accepted")
    health = holder["health"] = GatewayHealth(metrics=Counts(), probe=probe, clock=clock)
    health.start()
    assert health.ready() and probe.calls == 1
    for _ in range(10):
        clock.now += PROBE_INTERVAL_S / 2
        health.succeeded()   # a payment's call
        assert health.ready()
    assert probe.calls == 1
