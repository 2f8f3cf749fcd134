"""Database faults: PostgreSQL stopped mid-load. Requests fail fast with a 503
envelope, readiness says so, and payments succeed again within 5 seconds of
the database's return, with no restart of the service. Then, from the rows:
the reconciler settles what the outage left pending, no payment or order is
charged twice, the gateway's ledger and the payments agree, every 200 is a
succeeded payment of its order, and every settled payment's event is on its
topic."""

from __future__ import annotations

import threading
import time
import uuid
from collections import Counter

import requests
from prometheus_client.parser import text_string_to_metric_families

from tests.expected_events import assert_as_committed
from tests.reliability.gateway_faults import FAST_RECONCILER, wait_for
from tests.support import Database, new_order, payment_body
from tests.timing import eventually, wait_until

DB_TIMEOUT_S = 1.0
UNAVAILABLE = {"success": False, "payment": None,
               "errorMessage": "Payment processing error: payment database is unavailable"}
# The simulated processor keeps its ledger in the same PostgreSQL: a request
# that reached it while the server went away finds the gateway unavailable.
GATEWAY_UNAVAILABLE = {"success": False, "payment": None,
                       "errorMessage": "Payment processing error: payment gateway is unavailable"}
# How long the load may take to show each state the test waits for (paying,
# refused with 503s, paying again): a few of its round trips on a busy machine.
OUTAGE_BOUND_S = 15


class Load:
    """Payments from 4 client threads, each through its share of the orders,
    until stopped. Records every answer; a request that got none (a timeout,
    a dropped connection) or whose body is not JSON is recorded as an error,
    and ends its client."""

    CLIENTS = 4

    def __init__(self, service, order_ids):
        self.service, self.order_ids = service, order_ids
        self.stopping = threading.Event()
        # (orderId asked for, status, seconds, body) of each answer
        self.answers: list[tuple[str, int, float, dict]] = []
        self.errors: list[str] = []
        self._asked = [0] * self.CLIENTS  # requests sent, per client
        self._threads = [threading.Thread(target=self._client, args=(n,), daemon=True) for n in range(self.CLIENTS)]

    def start(self) -> "Load":
        for thread in self._threads:
            thread.start()
        return self

    def _client(self, n: int) -> None:
        for order_id in self.order_ids[n::self.CLIENTS]:
            if self.stopping.is_set():
                return
            self._asked[n] += 1
            started = time.monotonic()
            try:
                reply = self.service.post(payment_body(order_id), timeout=15)
                self.answers.append((order_id, reply.status_code, time.monotonic() - started, reply.json()))
            except Exception as exc:  # the test's to see, not the thread's to swallow
                self.errors.append(f"{order_id}: {type(exc).__name__}: {exc}")
                return

    def since(self, count: int) -> list[tuple[str, int, float, dict]]:
        return self.answers[count:]

    def wait_for(self, condition, what: str) -> None:
        """Until `condition()` holds, within OUTAGE_BOUND_S; a client's error
        fails the wait at once, naming the error."""
        def holds() -> bool:
            assert self.errors == [], self.errors
            return condition()
        eventually(holds, what, timeout_s=OUTAGE_BOUND_S)

    def stop(self, timeout_s: float = 30) -> None:
        """Stops the clients; fails unless every one finished within
        `timeout_s`, none met an error, and every request sent was answered."""
        self.stopping.set()
        ends = time.monotonic() + timeout_s
        for thread in self._threads:
            thread.join(max(0.0, ends - time.monotonic()))
        assert not any(thread.is_alive() for thread in self._threads), f"a load client still runs after {timeout_s}s"
        assert self.errors == [], self.errors
        assert len(self.answers) == sum(self._asked), f"{sum(self._asked)} requests sent, {len(self.answers)} answered"


def test_database_stopped_mid_load(own_postgres, serve, service_env, sandbox, events):
    # Each charge taken 100 ms before its answer: the outage strikes payments
    # charged and not yet settled, which only the reconciler can settle.
    service = serve({**service_env, "DATABASE_URL": own_postgres.url},
                    **{**FAST_RECONCILER, "DB_TIMEOUT_S": DB_TIMEOUT_S, "SIMULATOR_LATENCY_MS": 100})
    order_ids = [new_order(sandbox) for _ in range(400)]
    load = Load(service, order_ids).start()
    try:
        load.wait_for(lambda: succeeded(load.answers) >= 2 * Load.CLIENTS, "the load paying before the outage")

        own_postgres.stop()
        stopped_at = len(load.answers)
        load.wait_for(lambda: any(status == 503 for _, status, _, _ in load.since(stopped_at)),
                      "the load answered 503 during the outage")
        ready = requests.get(f"{service.url}/health/ready", timeout=5)
        assert ready.status_code == 503
        assert ready.json()["checks"]["database"] == "unavailable"
        direct = service.post(payment_body(new_order(sandbox)))
        assert direct.status_code == 503 and direct.json() == UNAVAILABLE

        own_postgres.start()
        back_at = time.monotonic()
        recovery = []

        def one_paid() -> bool:
            recovery_order = new_order(sandbox)
            recovery[:] = [recovery_order, service.post(payment_body(recovery_order))]
            return recovery[1].status_code == 200

        assert wait_until(one_paid, timeout_s=5, interval_s=0.1), "payments did not recover within 5 s"
        recovered_in = time.monotonic() - back_at
        recovery_order, reply = recovery
        # The load's own clients are paid again too.
        back_answers = len(load.answers)
        load.wait_for(lambda: succeeded(load.since(back_answers)) >= Load.CLIENTS, "the load paying after the outage")
    except BaseException:
        load.stopping.set()  # the failure above is the one to report; the clients just end
        raise
    load.stop()

    during = load.since(stopped_at)
    statuses = {status for _, status, _, _ in load.answers}
    assert statuses <= {200, 502, 503}, statuses
    assert any(status == 503 for _, status, _, _ in during)
    for _, status, elapsed, body in load.answers:
        if status == 502:
            assert body == GATEWAY_UNAVAILABLE
        if status == 503:
            assert body == UNAVAILABLE
            # Fail fast: the pool wait plus the work, never a hang.
            assert elapsed < DB_TIMEOUT_S * 2 + 1, elapsed
    print(f"\nDATABASE-OUTAGE answers={len(load.answers)} status_503={sum(s == 503 for _, s, _, _ in load.answers)} "
          f"max_503_s={max((e for _, s, e, _ in load.answers if s == 503), default=0):.2f} recovered_in={recovered_in:.2f}s")
    assert recovered_in < 5
    assert requests.get(f"{service.url}/health/ready", timeout=5).status_code == 200
    recovered = (recovery_order, reply.status_code, recovered_in, reply.json())
    assert_every_charge_recorded(Database(own_postgres.direct_url), events, [*load.answers, recovered])
    # The outage left payments pending (charged or not), and the reconciler settled them.
    assert reconciliations(service) > 0, "the outage left nothing for the reconciler to settle"


def succeeded(answers) -> int:
    return sum(status == 200 for _, status, _, _ in answers)


def reconciliations(service) -> float:
    """payment_reconciliations_total over every worker and answer, from the service's /metrics."""
    scrape = requests.get(f"{service.url}/metrics", timeout=5).text
    return sum(sample.value for family in text_string_to_metric_families(scrape) for sample in family.samples
               if sample.name == "payment_reconciliations_total")


def assert_every_charge_recorded(database, events, answers):
    """Once the reconciler has had its time with what the outage left pending:
    nothing pending; in the gateway's ledger at most one charge per payment
    and per order, each for a payment the service recorded as succeeded with
    the charge's transaction id, and every succeeded payment charged; every
    other payment failed as interrupted (never charged); each 200 a succeeded
    row of the order it was asked for; each settled payment's event on its
    topic."""
    wait_for(lambda: not database.rows(where="status = 'pending'"), "no payment left pending")
    payments = {row["id"]: row for row in database.rows()}
    assert {row["status"] for row in payments.values()} <= {"succeeded", "failed"}
    charges = database.rows("simulator_charges")

    charged = Counter(charge["payment_id"] for charge in charges)
    assert max(charged.values(), default=1) == 1, "a payment was charged twice"
    assert max(Counter(charge["order_id"] for charge in charges).values(), default=1) == 1, \
        "an order was charged twice"
    assert charged.keys() <= payments.keys(), "the gateway charged a payment the service never recorded"
    for charge in charges:
        payment = payments[charge["payment_id"]]
        # Every amount here is one the gateway accepts: a charge is money taken.
        assert charge["succeeded"], charge
        assert payment["status"] == "succeeded", (payment, charge)
        assert (payment["order_id"], payment["amount"], payment["transaction_id"]) == (
            charge["order_id"], charge["amount"], charge["transaction_id"])
    succeeded = {pid for pid, row in payments.items() if row["status"] == "succeeded"}
    assert succeeded == charged.keys(), "a succeeded payment the gateway never charged"
    orders = Counter(payments[pid]["order_id"] for pid in succeeded)
    assert max(orders.values(), default=1) == 1, "an order has two succeeded payments"
    for pid in payments.keys() - succeeded:
        assert payments[pid]["error_code"] == "PROCESSING_INTERRUPTED", payments[pid]

    answered = [(order_id, body["payment"]) for order_id, status, _, body in answers if status == 200]
    for order_id, answer in answered:
        row = payments[uuid.UUID(answer["id"])]
        assert (str(row["order_id"]), row["status"]) == (order_id, "succeeded"), (answer, row)
        assert (answer["orderId"], answer["status"]) == (order_id, "succeeded")

    wait_for(lambda: not database.rows("outbox", "sent_at IS NULL"), "every event sent")
    outbox = database.rows("outbox")
    assert sorted(row["payment_id"] for row in outbox) == sorted(payments), "not one event per settled payment"
    # Every row is marked sent, so the broker has acknowledged every event:
    # all of them lie before a mark made now, with no silence to wait out.
    on_topics = {m["headers"]["eventId"]: (topic, m)
                 for topic, messages in events.all().items() for m in messages}
    for row in outbox:
        assert str(row["event_id"]) in on_topics, row
        topic, message = on_topics[str(row["event_id"])]
        assert topic == ("payment-succeeded" if row["payment_id"] in succeeded else "payment-failed"), row
        assert_as_committed(message, row)
    print(f"DATABASE-OUTAGE charges={len(charges)} succeeded={len(succeeded)} "
          f"failed={len(payments) - len(succeeded)} settled_by_reconciler={len(succeeded) - len(answered)}")
