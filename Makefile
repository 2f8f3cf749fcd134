# The two commands of the README: `make run` and `make test`; `make unit`, the fast tier alone;
# `make typecheck`, mypy alone.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: run test unit typecheck install clean bench bench-pgbouncer soak wrk reliability-soak

install: $(VENV)/.installed

$(VENV)/.installed: requirements.txt requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $@

# The service on :5004, with a local PostgreSQL, broker and sandbox ordering
# service wherever DATABASE_URL, KAFKA_BOOTSTRAP_SERVERS, ORDERING_SERVICE_URL
# are not set. Ctrl-C stops it all.
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
	rm -rf $(VENV) .devstack .pytest_cache .mypy_cache
