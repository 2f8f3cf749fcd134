"""The relay as its own process (`python -m payment relay`): two of them
drain one outbox without sending any row twice, and clean up sent rows
past their retention. The reconciler as its own process (`python -m payment
reconcile`) settles overdue pending payments from the gateway's ledger."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid

from devstack import free_port
from tests.expected_events import INTERRUPTED, assert_event_of
from tests.support import ROOT, EventLog, new_order, payment_body

UNSENT = "sent_at IS NULL"


def start_relay(processes, env: dict, log_path, command: str = "relay", says: bytes = b"outbox relay running"):
    """A relay (or reconciler) process, returned once it says it runs;
    registered in `processes` before that wait."""
    with open(log_path, "wb") as log:
        process = processes.add(subprocess.Popen([sys.executable, "-m", "payment", command], cwd=ROOT,
                                                 env={**os.environ, **env}, stdout=log, stderr=subprocess.STDOUT))
    deadline = time.monotonic() + 30
    while says not in log_path.read_bytes():
        assert process.poll() is None and time.monotonic() < deadline, log_path.read_text()
        time.sleep(0.05)
    return process


def test_two_relay_processes_drain_the_outbox_once(make_client, config, service_env, database, sandbox, broker,
                                                  tmp_path, processes):
    # Payments taken while the broker was away: 40 events wait in the outbox.
    away = make_client(config, kafka_bootstrap_servers=f"127.0.0.1:{free_port()}", kafka_delivery_timeout=0.05)
    paid = {}  # orderId -> paymentId
    for _ in range(40):
        order_id = new_order(sandbox)
        reply = away.pay(payment_body(order_id))
        assert reply.status == 200
        paid[order_id] = reply.body["payment"]["id"]
    assert len(database.rows("outbox", UNSENT)) == 40
    # An old sent row, past a one-hour retention.
    database.execute(
        "INSERT INTO bc_payment.outbox (event_id, payment_id, topic, event_key, event_type, payload, created_at,"
        " sent_at) SELECT %s, id, 'payment-succeeded', order_id::text, 'payment-succeeded', '{}',"
        " now() - interval '2 days', now() - interval '2 days' FROM bc_payment.payments LIMIT 1", (uuid.uuid4(),))
    log = EventLog(broker)
    log.mark()

    env = {**service_env, "OUTBOX_RELAY_GRACE_S": "0.1", "OUTBOX_RELAY_INTERVAL_S": "0.1", "OUTBOX_RETENTION_S": "3600"}
    relays = [start_relay(processes, env, tmp_path / f"relay-{n}.log") for n in range(2)]
    try:
        deadline = time.monotonic() + 30
        while database.rows("outbox", UNSENT) and time.monotonic() < deadline:
            time.sleep(0.2)
    finally:
        for relay in relays:
            relay.terminate()
        codes = [relay.wait(15) for relay in relays]

    assert database.rows("outbox", UNSENT) == []
    assert codes == [0, 0]
    # The row past retention is gone; the 40 just sent stay.
    assert len(database.rows("outbox")) == 40
    sent = log.read("payment-succeeded")
    log.close()
    event_ids = [m["headers"]["eventId"] for m in sent]
    assert len(event_ids) == 40 and len(set(event_ids)) == 40
    assert set(event_ids) == {str(r["event_id"]) for r in database.rows("outbox")}
    assert sorted(m["key"] for m in sent) == sorted(paid)
    for message in sent:
        assert_event_of(message, database, paid[message["key"]], payment_body(message["key"]))


def insert_pending(database, amount="150.00") -> tuple[uuid.UUID, uuid.UUID]:
    """A payment left pending an hour ago; returns (payment id, order id)."""
    payment_id, order_id = uuid.uuid4(), uuid.uuid4()
    database.execute(
        "INSERT INTO bc_payment.payments (id, order_id, customer_id, amount, currency, payment_method,"
        " status, is_simulated, created_at) VALUES (%s, %s, %s, %s, 'USD', 'credit_card', 'pending', true,"
        " now() - interval '1 hour')", (payment_id, order_id, uuid.uuid4(), amount))
    return payment_id, order_id


def inserted(row) -> dict:
    """What insert_pending asked for, as a request would have said it."""
    return {"orderId": str(row["order_id"]), "customerId": str(row["customer_id"]), "amount": "150.00"}


def test_reconciler_process_settles_pending_payments_from_the_gateways_ledger(
        service_env, database, broker, tmp_path, processes):
    charged, charged_order = insert_pending(database)
    # The simulated processor took this charge; its outcome was never recorded.
    database.execute(
        "INSERT INTO bc_payment.simulator_charges (payment_id, order_id, amount, currency, succeeded,"
        " transaction_id, response) VALUES (%s, %s, 150, 'USD', true, 'txn_00000000000000aa',"
        " 'Success - TransactionId: txn_00000000000000aa')", (charged, charged_order))
    never, never_order = insert_pending(database)
    log = EventLog(broker)
    log.mark()

    env = {**service_env, "OUTBOX_RELAY_INTERVAL_S": "0.1"}
    reconciler = start_relay(processes, env, tmp_path / "reconciler.log", "reconcile", b"reconciler running")
    try:
        deadline = time.monotonic() + 30
        while database.rows(where="status = 'pending'") and time.monotonic() < deadline:
            time.sleep(0.2)
    finally:
        reconciler.terminate()
        code = reconciler.wait(15)
    assert code == 0
    [started] = [json.loads(line) for line in (tmp_path / "reconciler.log").read_text().splitlines()
                 if '"payment.startup"' in line]
    assert started["message"] == ("reconciler starting: gateway simulator, authorization off, database pool 1 to 3, "
                                  "topics payment-succeeded, payment-failed")
    rows = {row["id"]: row for row in database.rows()}
    assert (rows[charged]["status"], rows[charged]["transaction_id"]) == ("succeeded", "txn_00000000000000aa")
    assert (rows[never]["status"], rows[never]["error_code"]) == ("failed", "PROCESSING_INTERRUPTED")
    # Only this test's payments: the broker may still report an earlier
    # test's last message as new.
    [succeeded] = [m for m in log.read("payment-succeeded") if m["key"] == str(charged_order)]
    [failed] = [m for m in log.read("payment-failed") if m["key"] == str(never_order)]
    log.close()
    assert_event_of(succeeded, database, charged, inserted(rows[charged]))
    assert succeeded["value"]["transactionId"] == "txn_00000000000000aa"
    assert_event_of(failed, database, never, inserted(rows[never]), failure=INTERRUPTED)
    assert [row["payment_id"] for row in database.rows("simulator_voids")] == [never]
