"""The JSON Schema files of schemas/, loaded and compiled once per process.

The same files are published to the API's consumers; the service validates
requests with them, and the tests validate responses and events with them.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

from jsonschema import Draft202012Validator
from referencing import Registry, Resource

SCHEMA_DIR = Path(__file__).resolve().parent.parent / "schemas"


@lru_cache(maxsize=1)
def registry() -> Registry:
    resources = []
    for path in sorted(SCHEMA_DIR.glob("*.schema.json")):
        contents = json.loads(path.read_text())
        resources.append((contents["$id"], Resource.from_contents(contents)))
    return Registry().with_resources(resources)


def load(filename: str) -> dict:
    return json.loads((SCHEMA_DIR / filename).read_text())


@lru_cache(maxsize=None)
def validator(filename: str) -> Draft202012Validator:
    """A validator with format checking on, built once per schema file."""
    return Draft202012Validator(
        load(filename), registry=registry(), format_checker=Draft202012Validator.FORMAT_CHECKER)
