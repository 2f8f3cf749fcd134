# The two commands of the README: `make run` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: run test install clean

install: $(VENV)/.installed

$(VENV)/.installed: requirements.txt requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $@

# The service on :5004, with a local PostgreSQL, broker and sandbox ordering
# service wherever DATABASE_URL, KAFKA_BOOTSTRAP_SERVERS, ORDERING_SERVICE_URL
# are not set. Ctrl-C stops it all.
run: install
	$(PY) -m payment dev

# The whole suite. Uses TEST_DATABASE_URL when set, else starts its own PostgreSQL.
test: install
	$(PY) -m pytest

clean:
	rm -rf $(VENV) .devstack .pytest_cache
