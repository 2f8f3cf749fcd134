"""The package as pyproject.toml builds it: a wheel built from a copy of the
checkout, installed alone into a folder of its own, then used from a
directory outside the checkout. It must find the files the service reads at
run time (named SQL, migrations, schema files, OpenAPI document) inside
itself, the same as the checkout's top-level ones."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from payment.db.queries import load_queries
from tests.support import ROOT

# Local state and what the package does not ship (.dockerignore's list, with build output).
NOT_SOURCE = (".git", ".venv", ".devstack", ".pytest_cache", ".hypothesis", "__pycache__", "*.pyc",
              "build", "dist", "*.egg-info", "tests", "bench", "docs")

# Run by the installed package's interpreter; prints what it found, as JSON.
PROBE = """
import json, sys
from pathlib import Path

import payment
from payment import files, schemas
from payment.db import migrations
from payment.db import queries
from payment.api.openapi import OpenApiResource, SchemaFileResource
from payment.api.request_body import parse_payment_request
from payment.errors import InvalidRequest

body = (b'{"orderId": "7c9e6679-7425-40de-944b-e07fc1f90ae7", "customerId": "a8098c1a-f86e-11da-bd1a-00112444be1e",'
        b' "amount": 150.00, "currency": "USD", "paymentMethod": "credit_card"}')
try:
    parse_payment_request(b'{"orderId": "7c9e6679-7425-40de-944b-e07fc1f90ae7", "amount": 150.00}')
    refused = None
except InvalidRequest as error:
    refused = error.message
print(json.dumps({
    "package": payment.__file__,
    "files": str(files.ROOT),
    "queries": sorted(queries.QUERIES),
    "migrations": [(m.name, m.checksum) for m in migrations.load()],
    "schemas": sorted(SchemaFileResource().files),
    "amount": str(parse_payment_request(body).amount),
    "refused": refused,
    "openapi": json.loads(OpenApiResource().document),
    "event_schema": schemas.load("payment-succeeded.schema.json")["$id"],
}))
"""


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """The folder the wheel was installed into (nothing else in it)."""
    work = tmp_path_factory.mktemp("package")
    source = work / "source"
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(*NOT_SOURCE))
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--quiet"]
    # The build backend in this environment (requirements-dev.txt): no index needed.
    subprocess.run([*pip, "wheel", str(source), "--no-deps", "--no-build-isolation", "-w", str(work / "dist")],
                   check=True, cwd=work)
    [wheel] = (work / "dist").glob("payment_service-*.whl")
    target = work / "site"
    subprocess.run([*pip, "install", "--no-deps", "--target", str(target), str(wheel)], check=True, cwd=work)
    return target


@pytest.fixture(scope="module")
def found(installed, tmp_path_factory) -> dict:
    """What the installed package finds, run from a directory outside the
    checkout with the runtime dependencies of this environment."""
    elsewhere = tmp_path_factory.mktemp("elsewhere")
    env = {**os.environ, "PYTHONPATH": str(installed)}
    result = subprocess.run([sys.executable, "-c", PROBE], cwd=elsewhere, env=env, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_the_package_is_the_installed_one_and_reads_its_own_files(installed, found):
    assert Path(found["package"]).parent == installed / "payment"
    assert Path(found["files"]) == installed / "payment" / "files"


def test_the_named_queries_are_those_of_the_checkout(found):
    assert found["queries"] == sorted(load_queries(ROOT / "sql" / "queries.sql"))


def test_every_migration_is_there_unchanged(found):
    from payment.db import migrations

    assert found["migrations"] == [[m.name, m.checksum] for m in migrations.load(ROOT / "sql" / "migrations")]
    assert len(found["migrations"]) == len(list((ROOT / "sql" / "migrations").glob("*.sql")))


def test_the_schema_files_load_and_judge_a_body(found):
    assert found["schemas"] == sorted(path.name for path in (ROOT / "schemas").glob("*.schema.json"))
    assert found["amount"] == "150.00"
    assert found["refused"] and found["refused"].startswith("Invalid request:")
    assert found["event_schema"] == json.loads((ROOT / "schemas" / "payment-succeeded.schema.json").read_text())["$id"]


def test_the_openapi_document_is_the_checkouts(found):
    assert found["openapi"] == json.loads((ROOT / "openapi.json").read_text())
