"""The simulated processor's ledger on real PostgreSQL: one row per payment
id, the charge or the void, whichever came first. In order (a charge, then
a lookup; a lookup, then a late charge; a charge twice), and racing on
fresh ids from many threads: a charge and the reconciler's lookup of one
payment never both win (a charge taken and its payment id voided), and two
charges of one payment take it once."""

from __future__ import annotations

import dataclasses
import json
import threading
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import psycopg
import pytest

from payment.gateways.port import Found
from payment.gateways.simulator import SimulatedGateway
from payment.model import Payment
from tests.integration.test_stripe_gateway import a_payment
from tests.support import open_store

# Payment ids raced at once, and how many times over.
AT_ONCE = 4
ROUNDS = 25


@pytest.fixture
def ledger_file(tmp_path) -> Path:
    return tmp_path / "charges.jsonl"


@pytest.fixture
def simulator(database_url, db_route, database, ledger_file):
    with open_store(database_url, db_route, max_size=2 * AT_ONCE, timeout=10) as store:
        yield SimulatedGateway(store.pool, latency_ms=0, delay_before_charge_ms=0, ledger_path=str(ledger_file))


def a_simulated_payment(amount: str = "150.00") -> Payment:
    return dataclasses.replace(a_payment(amount), is_simulated=True)


def lines(ledger_file: Path) -> list[dict]:
    if not ledger_file.exists():
        return []
    return [json.loads(line) for line in ledger_file.read_text().splitlines()]


def ledger_row(database, payment: Payment) -> dict:
    [row] = database.rows("simulator_ledger", "payment_id = %s", (payment.id,))
    return row


# --- in order ----------------------------------------------------------------------


def test_a_charge_then_a_lookup_finds_the_charge(simulator, database, ledger_file):
    payment = a_simulated_payment()
    charged = simulator.charge(payment)

    found = simulator.lookup(payment)

    assert charged.succeeded and found.found is Found.CHARGED and found.result == charged
    assert database.rows("simulator_voids") == []
    assert [line["paymentId"] for line in lines(ledger_file)] == [str(payment.id)]


def test_a_lookup_voids_the_payment_id_and_a_late_charge_is_refused(simulator, database, ledger_file):
    payment = a_simulated_payment()
    assert simulator.lookup(payment).found is Found.NEVER_CHARGED

    late = simulator.charge(payment)

    assert (late.succeeded, late.error_code) == (False, "PAYMENT_VOIDED")
    assert simulator.lookup(payment).found is Found.NEVER_CHARGED
    assert database.rows("simulator_charges") == [] and lines(ledger_file) == []
    row = ledger_row(database, payment)
    assert row["voided"] and row["voided_at"] is not None and row["charged_at"] is None


def test_a_charge_again_gets_the_first_result_and_is_taken_once(simulator, database, ledger_file):
    payment = a_simulated_payment("10.13")
    first = simulator.charge(payment)

    again = simulator.charge(payment)

    assert again == first and first.error_code == "CARD_DECLINED"
    assert simulator.lookup(payment).found is Found.DECLINED
    assert [line["succeeded"] for line in lines(ledger_file)] == [False]
    assert not ledger_row(database, payment)["voided"]


def test_the_ledger_refuses_a_row_that_is_neither_a_charge_nor_a_void(database):
    payment_id = uuid.uuid4()
    refused = [
        # Through the voids' view `voided` cannot be set: not a void, and no charge.
        "INSERT INTO bc_payment.simulator_voids (payment_id) VALUES (%(id)s)",
        "INSERT INTO bc_payment.simulator_ledger (payment_id, order_id) VALUES (%(id)s, %(id)s)",
        "INSERT INTO bc_payment.simulator_ledger (payment_id, voided, voided_at, response)"
        " VALUES (%(id)s, true, now(), 'Success')",
        "INSERT INTO bc_payment.simulator_ledger (payment_id, voided) VALUES (%(id)s, true)",
    ]
    for statement in refused:
        with pytest.raises(psycopg.errors.CheckViolation):
            database.execute(statement, {"id": payment_id})
    assert database.rows("simulator_ledger") == []


# --- racing -------------------------------------------------------------------------


def race(pairs: list[tuple[Callable[[], Any], Callable[[], Any]]]) -> list[tuple[Any, Any]]:
    """Both calls of every pair, all started together, each on a thread of
    its own; their results, pair by pair."""
    calls = [call for pair in pairs for call in pair]
    start = threading.Barrier(len(calls))

    def run(call: Callable[[], Any]) -> Any:
        start.wait(timeout=10)
        return call()

    with ThreadPoolExecutor(len(calls)) as pool:
        results = list(pool.map(run, calls))
    return list(zip(results[::2], results[1::2]))


def test_a_charge_racing_a_lookup_of_its_payment_has_exactly_one_winner(simulator, database, ledger_file):
    outcomes = {"charged": 0, "voided": 0}
    payments = []
    for _ in range(ROUNDS):
        batch = [a_simulated_payment() for _ in range(AT_ONCE)]
        payments += batch
        results = race([(lambda p=p: simulator.charge(p), lambda p=p: simulator.lookup(p)) for p in batch])
        for payment, (charged, found) in zip(batch, results):
            if found.found is Found.NEVER_CHARGED:
                assert (charged.succeeded, charged.error_code) == (False, "PAYMENT_VOIDED"), payment.id
                assert ledger_row(database, payment)["voided"]
                outcomes["voided"] += 1
            else:
                assert found.found is Found.CHARGED and found.result == charged and charged.succeeded, payment.id
                assert not ledger_row(database, payment)["voided"]
                outcomes["charged"] += 1

    # One row per payment id; each charge taken is in the charges and the
    # file, each void in the voids, and no id in both.
    assert len(database.rows("simulator_ledger")) == len(payments) == sum(outcomes.values())
    charges = {row["payment_id"] for row in database.rows("simulator_charges")}
    voids = {row["payment_id"] for row in database.rows("simulator_voids")}
    assert not charges & voids and len(charges) == outcomes["charged"] and len(voids) == outcomes["voided"]
    assert sorted(line["paymentId"] for line in lines(ledger_file)) == sorted(str(p) for p in charges)


def test_two_charges_of_one_payment_racing_take_it_once(simulator, database, ledger_file):
    payments = []
    for _ in range(ROUNDS):
        batch = [a_simulated_payment() for _ in range(AT_ONCE)]
        payments += batch
        results = race([(lambda p=p: simulator.charge(p), lambda p=p: simulator.charge(p)) for p in batch])
        for payment, (first, second) in zip(batch, results):
            assert first == second and first.succeeded, payment.id
            [row] = database.rows("simulator_charges", "payment_id = %s", (payment.id,))
            assert row["transaction_id"] == first.transaction_id

    assert len(database.rows("simulator_ledger")) == len(payments)
    assert sorted(line["paymentId"] for line in lines(ledger_file)) == sorted(str(p.id) for p in payments)
