"""How bench/round_trips.py names a round trip: by the verbs and tables of
its statements, the transaction settings left out, so that two revisions'
counts line up kind by kind."""

from bench.round_trips import label, statements_in
from payment.db.libpq_options import settings_statement
from payment.db.queries import QUERIES

SETTINGS = settings_statement({"statement_timeout": "2000", "lock_timeout": "2000"})


def test_the_settings_are_left_out_and_each_statement_named():
    assert label(SETTINGS + QUERIES["find_succeeded_payment"]) == "SELECT payments"
    assert label(SETTINGS + QUERIES["settle_payment"]) == "WITH payments,outbox"
    assert label("BEGIN; " + SETTINGS + "UPDATE bc_payment.payments SET x = 1") == "BEGIN + UPDATE payments"
    assert statements_in("BEGIN + UPDATE payments") == 2


def test_an_empty_query_is_the_pools_check():
    assert label("") == "(empty query: the pool's connection check)"
    assert statements_in(label("")) == 0
