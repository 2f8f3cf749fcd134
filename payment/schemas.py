"""The JSON Schema files of schemas/, loaded and compiled once per process.

The same files are published to the API's consumers; the service validates
requests with them, and the tests validate responses and events with them.

Each file gets two validators, built from the same parsed documents:
`validator` (jsonschema), the reference, whose errors say which keyword failed
where; and `compiled` (jsonschema-rs), which only answers valid or not, in a
fraction of the CPU. `conforms` asks the compiled one.
"""

from __future__ import annotations

import json
from functools import lru_cache
from typing import Any

import jsonschema_rs
from jsonschema import Draft202012Validator
from referencing import Registry, Resource

from payment.files import SCHEMA_DIR


@lru_cache(maxsize=1)
def _documents() -> dict[str, dict[str, Any]]:
    """Every file of schemas/ by file name, parsed once for both validators."""
    return {path.name: json.loads(path.read_text())
            for path in sorted(SCHEMA_DIR.glob("*.schema.json"))}


@lru_cache(maxsize=1)
def registry() -> Registry:
    return Registry().with_resources(
        (contents["$id"], Resource.from_contents(contents)) for contents in _documents().values())


@lru_cache(maxsize=1)
def _compiled_registry() -> jsonschema_rs.Registry:
    return jsonschema_rs.Registry(
        [(contents["$id"], contents) for contents in _documents().values()])


def load(filename: str) -> dict[str, Any]:
    document: dict[str, Any] = json.loads((SCHEMA_DIR / filename).read_text())
    return document


@lru_cache(maxsize=None)
def validator(filename: str) -> Draft202012Validator:
    """A validator with format checking on, built once per schema file."""
    return Draft202012Validator(
        _documents()[filename], registry=registry(),
        format_checker=Draft202012Validator.FORMAT_CHECKER)


@lru_cache(maxsize=None)
def compiled(filename: str) -> jsonschema_rs.Validator:
    """The same schema compiled by jsonschema-rs, configured as `validator` is.

    Formats are checked as jsonschema's FORMAT_CHECKER does (2020-12 leaves them
    off by default), and $refs resolve only through the files of schemas/:
    offline, a reference to anything else fails here rather than fetching it.
    """
    return jsonschema_rs.Draft202012Validator(
        _documents()[filename], registry=_compiled_registry(),
        validate_formats=True, ignore_unknown_formats=False, offline=True)


def conforms(filename: str, instance: object) -> bool:
    """True when the compiled validator accepts the instance.

    False means "not known to be valid": ask `validator` for the errors.
    """
    try:
        return compiled(filename).is_valid(instance)
    except ValueError:
        # jsonschema-rs hands strings to Rust as UTF-8, and a lone surrogate
        # (which "\\ud800" in a JSON body decodes to) has none: it raises
        # UnicodeEncodeError, a ValueError. Such a body is left to jsonschema.
        return False
