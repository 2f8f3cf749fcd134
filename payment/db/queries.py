"""The named SQL of sql/queries.sql, loaded once at import."""

from __future__ import annotations

import re
from pathlib import Path

from payment.files import SQL_DIR


class QueryFileError(ValueError):
    """The query file names a query twice: which one is meant is a guess."""


def load_queries(path: Path) -> dict[str, str]:
    queries: dict[str, str] = {}
    name = None
    for line in path.read_text().splitlines():
        match = re.match(r"--\s*name:\s*(\w+)\s*$", line)
        if match:
            name = match.group(1)
            if name in queries:
                raise QueryFileError(f"{path.name}: the query {name!r} is named twice")
            queries[name] = ""
        elif name and not line.lstrip().startswith("--"):
            queries[name] += line + "\n"
    return {key: value.strip() for key, value in queries.items()}


def is_statement_group(query: str) -> bool:
    """Whether a named query is several statements, sent as one simple query
    (one implicit transaction) and never prepared. The loader has left its
    comment lines out; no query's text holds a `;` but between statements."""
    return len([part for part in query.split(";") if part.strip()]) > 1


QUERIES = load_queries(SQL_DIR / "queries.sql")
