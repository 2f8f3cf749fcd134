"""The named-query file parser (payment/db/queries.py): each `-- name:` line
starts a query that runs to the next one, comment lines are left out, and
what it makes of a file's header, an empty block, a name given twice and a
name it does not hold; and the service's own file and the simulator's, which
every name their code asks for must be in, once."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from payment.db.queries import QUERIES, SQL_DIR, QueryFileError, is_statement_group, load_queries
from payment.gateways.simulator import LEDGER_QUERIES

ROOT = Path(__file__).resolve().parents[2]


def parsed(tmp_path, text: str) -> dict[str, str]:
    path = tmp_path / "queries.sql"
    path.write_text(text)
    return load_queries(path)


def test_each_name_starts_a_query_that_runs_to_the_next_name(tmp_path):
    assert parsed(tmp_path, (
        "-- name: first\n"
        "SELECT 1;\n"
        "\n"
        "-- name: second\n"
        "SELECT 2\n"
        "  FROM t\n"
        " WHERE x = %(x)s;\n"
    )) == {"first": "SELECT 1;", "second": "SELECT 2\n  FROM t\n WHERE x = %(x)s;"}


def test_comment_lines_are_left_out_and_comments_after_sql_kept(tmp_path):
    assert parsed(tmp_path, (
        "-- name: commented\n"
        "-- Why the query is as it is.\n"
        "SELECT a,\n"
        "    -- an indented comment line\n"
        "       b -- a comment after SQL stays with its line\n"
        "  FROM t;\n"
    )) == {"commented": "SELECT a,\n       b -- a comment after SQL stays with its line\n  FROM t;"}


@pytest.mark.parametrize("line", ["-- name: spelled", "--name:spelled", "--  name:   spelled   "])
def test_a_name_line_may_be_spaced_either_way(tmp_path, line):
    assert parsed(tmp_path, f"{line}\nSELECT 1;\n") == {"spelled": "SELECT 1;"}


def test_lines_before_the_first_name_belong_to_no_query(tmp_path):
    assert parsed(tmp_path, (
        "-- The file's header.\n"
        "SET search_path = nowhere;\n"
        "-- name: only\n"
        "SELECT 1;\n"
    )) == {"only": "SELECT 1;"}


def test_a_name_with_nothing_under_it_is_an_empty_query(tmp_path):
    assert parsed(tmp_path, "-- name: empty\n-- only a comment\n\n-- name: full\nSELECT 1;\n") == {
        "empty": "", "full": "SELECT 1;"}


def test_a_name_given_twice_is_refused_naming_it(tmp_path):
    with pytest.raises(QueryFileError, match="'twice' is named twice"):
        parsed(tmp_path, "-- name: twice\nSELECT 1;\n-- name: twice\nSELECT 2;\n")


def test_a_name_the_file_does_not_hold_is_a_key_error(tmp_path):
    queries = parsed(tmp_path, "-- name: held\nSELECT 1;\n")
    with pytest.raises(KeyError):
        queries["not_held"]


# --- the service's own file ------------------------------------------------------------

@pytest.mark.parametrize(("file", "loaded"), [("queries.sql", QUERIES), ("simulator.sql", LEDGER_QUERIES)])
def test_each_file_names_each_query_once_and_none_is_empty(file, loaded):
    names = re.findall(r"^--\s*name:\s*(\w+)\s*$", (SQL_DIR / file).read_text(), re.MULTILINE)
    assert len(names) == len(set(names)) == len(loaded)
    assert all(loaded.values())


def asked(path: Path, pattern: str) -> set[str]:
    return set(re.findall(pattern + r'\s*"(\w+)"', path.read_text()))


def test_every_query_the_code_asks_for_is_in_its_own_file():
    # By name, or through the stores' and the simulator's one-statement helpers.
    store = asked(ROOT / "payment" / "db" / "store.py", r"(?:QUERIES\[|_one_payment\()")
    assert len(store) >= 15 and store <= set(QUERIES), store - set(QUERIES)
    refunds = asked(ROOT / "payment" / "db" / "refund_store.py", r"(?:QUERIES\[|_one_refund\(|_refunds\()")
    assert len(refunds) >= 10 and refunds <= set(QUERIES), refunds - set(QUERIES)
    ledger = asked(ROOT / "payment" / "gateways" / "simulator.py", r"(?:LEDGER_QUERIES\[|_ledger\()")
    assert ledger == set(LEDGER_QUERIES)
    # Neither borrows the other's: the simulator's statements are not the service's.
    assert not set(QUERIES) & set(LEDGER_QUERIES)
    rest = [path for path in (ROOT / "payment").glob("**/*.py")
            if path.name not in ("store.py", "refund_store.py", "simulator.py")]
    assert all(not asked(path, r"(?:QUERIES\[|_one_payment\(|_ledger\()") for path in rest)


def test_a_statement_group_is_told_from_a_single_statement():
    assert not is_statement_group("SELECT 1")
    assert not is_statement_group("INSERT INTO t VALUES (1)\nRETURNING *;")
    assert is_statement_group("SELECT 1 FROM t FOR UPDATE;\nSELECT 2;")


def test_only_the_simulators_refunds_go_as_one_simple_query():
    # A group cannot be prepared (nor sent with server-bound parameters):
    # the simulator sends these through the one-transaction cursor, every
    # other query through the cursor that prepares on a direct route.
    from payment.gateways.simulator import _STATEMENT_GROUPS
    assert _STATEMENT_GROUPS == {"simulator_refund", "simulator_refund_lookup"}


def test_the_stores_statement_groups_are_the_ones_it_sends_as_groups():
    # PaymentStore._statements / the refund store's own client cursor.
    groups = {name for name, query in QUERIES.items() if is_statement_group(query)}
    assert groups == {"insert_pending_refund", "lock_payment_for_refund_outcome"}
    store_code = (ROOT / "payment/db/refund_store.py").read_text()
    assert re.search(r"self\._statements\(dict_row\) as cur:\s+row = cur\.execute\(QUERIES\[\"insert_pending_refund\"\]",
                     store_code)
