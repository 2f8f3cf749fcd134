# The two commands of the README: `make run` and `make test`; `make unit`, the fast tier alone;
# `make typecheck`, mypy alone.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: run test unit typecheck install lock clean bench bench-pgbouncer soak wrk reliability-soak

install: $(VENV)/.installed

# Exactly the locked files, checked against their hashes: the runtime lock as
# the image installs it, then the development packages on top.
$(VENV)/.installed: requirements.lock requirements-dev.lock
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check --require-hashes --no-deps -r requirements.lock
	$(PY) -m pip install --quiet --disable-pip-version-check --require-hashes --no-deps -r requirements-dev.lock
	touch $@

# requirements.lock and requirements-dev.lock from requirements.txt and
# requirements-dev.txt: every transitive dependency pinned, with the hashes of
# all its files on the package index (pip-tools' pip-compile, in a venv of its
# own; this machine's pip configuration and wheel cache left out, so that only
# the index's files are hashed). Run with the image's Python (3.11): markers
# are resolved for the interpreter that compiles.
PIP_TOOLS ?= pip-tools==7.6.2
PIP_COMPILE = env -u PIP_FIND_LINKS -u PIP_EXTRA_INDEX_URL PIP_CONFIG_FILE=/dev/null CUSTOM_COMPILE_COMMAND="make lock" \
	.venv-lock/bin/pip-compile --quiet --generate-hashes --allow-unsafe --strip-extras --no-emit-index-url
lock:
	$(PYTHON) -m venv .venv-lock
	.venv-lock/bin/pip install --quiet --disable-pip-version-check $(PIP_TOOLS)
	$(PIP_COMPILE) --output-file requirements.lock requirements.txt
	$(PIP_COMPILE) --output-file requirements-dev.lock requirements-dev.txt

# The service on :5004, with a local PostgreSQL, broker and sandbox ordering
# service wherever DATABASE_URL, KAFKA_BOOTSTRAP_SERVERS, ORDERING_SERVICE_URL
# are not set. Ctrl-C drains the service, then stops the rest (docs/operations.md, Signals).
run: install
	$(PY) -m devstack

# The type check first (a few seconds once its cache is warm), then the whole
# suite, in a database of its own created on TEST_DATABASE_URL's server when
# set, else on a PostgreSQL it starts; dropped at the end. Property-based
# unit tests draw their full count of examples here.
test: install typecheck
	HYPOTHESIS_PROFILE=full $(PY) -m pytest

# mypy, strict, over payment/, devstack/ and tests/fakes.py (pyproject.toml
# [tool.mypy]): an unannotated function, or a fake that drifts from its port
# (payment/ports.py), fails it. Its cache is .mypy_cache/.
typecheck: install
	$(PY) -m mypy

# tests/unit alone: no PostgreSQL, broker or sandbox; under 30 seconds.
unit: install
	$(PY) -m pytest tests/unit

# The POST /payments benchmark (bench/run.py): floor, service, service with
# 1,000,000 existing payments; writes docs/performance.md. Load comes from wrk,
# installed from the system packages when missing. A few minutes.
bench: install wrk
	$(PY) -m bench.run

# The same through a transaction-pooling PgBouncer (8 server connections),
# installed from the system packages when missing: the floor and the service
# both reach the database through it. Writes its own section of docs/performance.md.
bench-pgbouncer: install wrk
	$(PY) -m bench.run --pgbouncer

# Ten minutes of load, each worker's memory sampled (docs/performance.md).
soak: install wrk
	$(PY) -m bench.run --soak 600 --command-line "make soak"

# The reliability tests at ten times their size: ten broker outages in a row,
# ten times as many generated bodies (docs/reliability.md).
reliability-soak: install
	RELIABILITY_CYCLES=10 RELIABILITY_SCALE=10 $(PY) -m pytest tests/reliability

wrk:
	@command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk; } \
	  || { echo "make: wrk is needed: apt-get install -y wrk" >&2; exit 1; }

clean:
	rm -rf $(VENV) .venv-lock .devstack .pytest_cache .mypy_cache
