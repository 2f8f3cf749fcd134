"""The named-query file parser (payment/db/queries.py): each `-- name:` line
starts a query that runs to the next one, comment lines are left out, and
what it makes of a file's header, an empty block, a name given twice and a
name it does not hold; and the service's own file, which every name the code
asks for must be in, once."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from payment.db.queries import QUERIES, SQL_DIR, QueryFileError, load_queries

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

def test_the_service_file_names_each_query_once_and_none_is_empty():
    names = re.findall(r"^--\s*name:\s*(\w+)\s*$", (SQL_DIR / "queries.sql").read_text(), re.MULTILINE)
    assert len(names) == len(set(names)) == len(QUERIES)
    assert all(QUERIES.values())


def test_every_query_the_code_asks_for_is_in_the_file():
    code = "\n".join(path.read_text() for path in sorted((ROOT / "payment").glob("**/*.py")))
    # By name, or through the store's and the simulator's one-statement helpers.
    asked = set(re.findall(r'(?:QUERIES\[|_one_payment\(|_ledger\()\s*"(\w+)"', code))
    assert len(asked) >= 15 and asked <= set(QUERIES), asked - set(QUERIES)
