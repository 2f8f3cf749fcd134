"""Where the files the service reads at run time are: the named SQL and the
migrations (`sql/`), the JSON Schema files (`schemas/`) and the OpenAPI
document (`openapi.json`).

They belong at the repository's top level, where the API's consumers read
the schemas. A built package carries them in this one, laid out the same
(pyproject.toml maps them in as payment/files/sql/, schemas/, openapi.json);
a checkout, and the image, which copies the top level as it is, have them
two folders up from here instead.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path


def _root() -> Path:
    # An installed package is a folder on disk, never a zip: its files are
    # paths, which the schema and migration loaders glob.
    packaged = Path(str(files(__name__)))
    if (packaged / "sql").is_dir():
        return packaged
    return Path(__file__).resolve().parents[2]


ROOT = _root()
SQL_DIR = ROOT / "sql"
MIGRATIONS_DIR = SQL_DIR / "migrations"
SCHEMA_DIR = ROOT / "schemas"
OPENAPI_PATH = ROOT / "openapi.json"
