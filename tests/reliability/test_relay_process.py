"""The relay as its own process (`python -m payment relay`): two of them
drain one outbox without sending any row twice, and clean up sent rows
past their retention."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid

from payment.devstack import free_port
from tests.support import ROOT, EventLog, new_order, payment_body

UNSENT = "sent_at IS NULL"


def start_relay(env: dict, log_path) -> subprocess.Popen:
    """A relay process, returned once it says it runs."""
    with open(log_path, "wb") as log:
        process = subprocess.Popen([sys.executable, "-m", "payment", "relay"], cwd=ROOT,
                                   env={**os.environ, **env}, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 30
    while b"outbox relay running" not in log_path.read_bytes():
        assert process.poll() is None and time.monotonic() < deadline, log_path.read_text()
        time.sleep(0.05)
    return process


def test_two_relay_processes_drain_the_outbox_once(make_client, config, service_env, database, sandbox, broker,
                                                  tmp_path):
    # Payments taken while the broker was away: 40 events wait in the outbox.
    away = make_client(config, kafka_bootstrap_servers=f"127.0.0.1:{free_port()}", kafka_delivery_timeout=0.05)
    for _ in range(40):
        assert away.pay(payment_body(new_order(sandbox))).status == 200
    assert len(database.rows("outbox", UNSENT)) == 40
    # An old sent row, past a one-hour retention.
    database.execute(
        "INSERT INTO bc_payment.outbox (event_id, payment_id, topic, event_key, event_type, payload, created_at,"
        " sent_at) SELECT %s, id, 'payment-succeeded', order_id::text, 'payment-succeeded', '{}',"
        " now() - interval '2 days', now() - interval '2 days' FROM bc_payment.payments LIMIT 1", (uuid.uuid4(),))
    log = EventLog(broker)
    log.mark()

    env = {**service_env, "OUTBOX_RELAY_GRACE_S": "0.1", "OUTBOX_RELAY_INTERVAL_S": "0.1", "OUTBOX_RETENTION_S": "3600"}
    relays = [start_relay(env, tmp_path / f"relay-{n}.log") for n in range(2)]
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
