from __future__ import annotations

import dataclasses
import json
from decimal import Decimal

import pytest
import webtest

from payment import jsonio, schemas
from payment.runtime import build

RESPONSE_SCHEMA = "payment-response.schema.json"


class Client:
    """The service's WSGI app through webtest: real HTTP semantics, no socket."""

    def __init__(self, app):
        self.app = webtest.TestApp(app)

    def pay(self, body, *, content_type="application/json", headers=None):
        data = body if isinstance(body, (bytes, str)) else jsonio.dumps(body)
        if isinstance(data, str):
            data = data.encode()
        response = self.app.post("/payments", params=data, content_type=content_type,
                                 headers=headers or {}, expect_errors=True)
        return Reply(response)

    def get(self, path, *, params=None, headers=None, schema=None):
        """A read endpoint's answer; a 2xx body is checked against `schema`,
        any other against the error envelope."""
        response = self.app.get(path, params=params or {}, headers=headers or {}, expect_errors=True)
        return Reply(response, schema if response.status_int < 300 else RESPONSE_SCHEMA)


class Reply:
    def __init__(self, response, schema=RESPONSE_SCHEMA):
        self.status = response.status_int
        self.headers = response.headers
        self.text = response.text
        self.body = json.loads(response.text, parse_float=Decimal)
        assert response.content_type == "application/json"
        schemas.validator(schema).validate(self.body)


@pytest.fixture
def make_client():
    """make_client(config, **overrides): a client on a freshly built runtime."""
    runtimes = []

    def make(config, **overrides):
        runtime = build(dataclasses.replace(config, **overrides), start_relay=False)
        runtimes.append(runtime)
        return Client(runtime.app)

    yield make
    for runtime in runtimes:
        runtime.close(timeout=2)


@pytest.fixture
def client(make_client, config, database, sandbox, events):
    return make_client(config)
