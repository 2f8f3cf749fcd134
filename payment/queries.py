"""The named SQL of sql/queries.sql, loaded once at import."""

from __future__ import annotations

import re
from pathlib import Path

from payment.files import SQL_DIR


def load_queries(path: Path) -> dict[str, str]:
    queries: dict[str, str] = {}
    name = None
    for line in path.read_text().splitlines():
        match = re.match(r"--\s*name:\s*(\w+)\s*$", line)
        if match:
            name = match.group(1)
            queries[name] = ""
        elif name and not line.lstrip().startswith("--"):
            queries[name] += line + "\n"
    return {key: value.strip() for key, value in queries.items()}


QUERIES = load_queries(SQL_DIR / "queries.sql")
