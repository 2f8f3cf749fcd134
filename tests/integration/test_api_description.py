"""The OpenAPI document and the schema files, as the service serves them:
the document is the repository's file, describes every route, refers to the
schema files instead of copying them, and every reference resolves over HTTP,
by relative path or by the files' own `$id`s."""

from __future__ import annotations

import json
import re
from pathlib import Path

import falcon.inspect
import pytest
from referencing import Registry, Resource
from referencing.exceptions import Unresolvable

from payment import schemas
from tests.contract_examples import CONTRACT_EXAMPLES
from tests.support import json_refs

ROOT = Path(__file__).resolve().parents[2]
SCHEMA_FILES = sorted(p.name for p in (ROOT / "schemas").glob("*.schema.json"))
ID_BASE = "https://schemas.ticketing.example/payments/"
# The document and the files it refers to are served alike whichever way
# the service reaches PostgreSQL.
pytestmark = pytest.mark.route_independent


@pytest.fixture
def http(make_client, config):
    return make_client(config).app




def test_the_served_document_is_the_repository_file(http):
    response = http.get("/openapi.json")
    assert response.content_type == "application/json"
    assert response.body == (ROOT / "openapi.json").read_bytes()
    assert response.json["openapi"].startswith("3.1.")


def test_every_route_and_method_is_described_and_nothing_else(http, make_client, config):
    document = http.get("/openapi.json").json
    # Every optional route on: Stripe's webhook is routed only with its secret.
    app = make_client(config, payment_gateway="stripe", stripe_api_key="sk_test_described",
                      stripe_api_base="http://127.0.0.1:9", stripe_webhook_secrets=("whsec_described",)).app.app
    routes = {(route.path, method.method.lower())
              for route in falcon.inspect.inspect_routes(app) for method in route.methods if not method.internal}
    described = {(path, method) for path, item in document["paths"].items() for method in item}
    assert described == routes


def test_schemas_are_referenced_not_copied(http):
    document = http.get("/openapi.json").json
    used = {ref.split("#")[0] for ref in json_refs(document) if not ref.startswith("#")}
    assert used == {"schemas/payment-request.schema.json", "schemas/payment-response.schema.json",
                    "schemas/payment-lookup.schema.json", "schemas/payment-list.schema.json",
                    "schemas/refund-request.schema.json", "schemas/refund-response.schema.json",
                    "schemas/refund-lookup.schema.json", "schemas/refund-list.schema.json",
                    "schemas/payment-succeeded.schema.json", "schemas/payment-failed.schema.json",
                    "schemas/payment-refunded.schema.json", "schemas/payment-refund-failed.schema.json"}
    # The local components are only the operational bodies, none of the contract's; the
    # events, which no operation answers, are named there by reference to their files.
    components = document["components"]["schemas"]
    assert set(components) == {"Live", "Readiness", "CheckResult", "PaymentSucceededEvent", "PaymentFailedEvent",
                               "PaymentRefundedEvent", "PaymentRefundFailedEvent"}
    assert components["PaymentRefundedEvent"] == {"$ref": "schemas/payment-refunded.schema.json"}
    assert components["PaymentRefundFailedEvent"] == {"$ref": "schemas/payment-refund-failed.schema.json"}


# POST /payments in the contract (shared/contract/payments-api.md), word for
# word: each answer its section "Error responses" describes, with its
# example's errorMessage, and the success of the example answer (section
# "Response fields", `success`). The status each stands under is the one of
# the contract's published page, whose tabs the kept copy dropped with the
# rest of the page furniture (tests/contract_examples.py keeps the examples
# under the same statuses).
CONTRACT_POST_ANSWERS = {
    "200": ("Indicates whether the payment processing was successful.", None),
    "400": ("Returned when the request is malformed or validation fails.",
            "Order validation failed: Order not found or doesn't belong to customer"),
    "403": ("The customer is not authorized to process payment for this order.",
            "Unauthorized: Customer does not own this order"),
    "404": ("The specified order could not be found in the system.", "Order not found"),
    "402": ("The payment was processed but failed at the payment gateway level.", "Payment failed: Card declined"),
    "500": ("An unexpected error occurred during payment processing.",
            "Payment processing error: Database connection timeout"),
}
# docs/api.md, "Errors": "Every 502, 503 and 504 carries `Retry-After: 1`", and a
# 409 says when to ask again.
RETRY_AFTER = {"409", "502", "503", "504"}


def documented_error_statuses() -> set[str]:
    """The statuses of the "Errors" table of docs/api.md: what the service promises beyond the contract."""
    section = (ROOT / "docs" / "api.md").read_text().split("\n## Errors\n", 1)[1].split("\n## ", 1)[0]
    statuses = set(re.findall(r"^\| (\d{3}) \|", section, re.MULTILINE))
    assert statuses, "the Errors table of docs/api.md was not found"
    return statuses


# Answers a method an operation does not have: no operation can list it, and
# the document says it once, in its description.
NOT_AN_OPERATIONS_ANSWER = "405"


def test_post_answers_are_the_contracts_and_the_documented_ones(http):
    document = http.get("/openapi.json").json
    responses = document["paths"]["/payments"]["post"]["responses"]
    documented = documented_error_statuses()
    assert NOT_AN_OPERATIONS_ANSWER in documented and "answers 405" in document["info"]["description"]
    assert set(responses) == set(CONTRACT_POST_ANSWERS) | (documented - {NOT_AN_OPERATIONS_ANSWER})
    for status, (_, message) in CONTRACT_POST_ANSWERS.items():
        # The contract's example answer fits the body the document gives that status.
        ref = responses[status]["content"]["application/json"]["schema"]["$ref"]
        [example] = [example for name, (_, example) in CONTRACT_EXAMPLES.items()
                     if name.startswith(f"response_{status}_")]
        assert example["errorMessage"] == message
        schemas.validator(ref.removeprefix("schemas/")).validate(example)
    assert {status for status, response in responses.items() if "Retry-After" in response["headers"]} == RETRY_AFTER
    assert "Idempotent-Replayed" in responses["200"]["headers"]
    assert all("X-Request-ID" in response["headers"] for response in responses.values())


# POST /payments/{paymentId}/refunds as its issue gives it: 200, 402, 400, 404,
# 409, 422 and the 5xx of payments; 401 and 403 with authorization on; the
# HTTP layer's 413 and 415, and the server's 408, 414, 417 and 431, as on POST /payments.
SERVER_ANSWERS = {"408", "414", "417", "431"}
REFUND_POST_STATUSES = {"200", "400", "401", "402", "403", "404", "409", "413", "415", "422", "500", "502", "503",
                        *SERVER_ANSWERS}


def test_refund_answers_are_described_with_their_headers_and_examples(http):
    paths = http.get("/openapi.json").json["paths"]
    post = paths["/payments/{paymentId}/refunds"]["post"]
    responses = post["responses"]
    assert set(responses) == REFUND_POST_STATUSES
    [key] = [p for p in post["parameters"] if p.get("name") == "Idempotency-Key"]
    assert key["in"] == "header" and key["required"] is True
    assert (key["schema"]["minLength"], key["schema"]["maxLength"]) == (1, 255)
    assert post["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "schemas/refund-request.schema.json"}
    assert {s for s, r in responses.items() if "Retry-After" in r["headers"]} == {"409", "502", "503"}
    assert {s for s, r in responses.items() if "Idempotent-Replayed" in r["headers"]} == {"200", "402"}
    operations = [post, paths["/payments/{paymentId}/refunds"]["get"],
                  paths["/payments/{paymentId}/refunds/{refundId}"]["get"]]
    for operation in operations:
        for status, response in operation["responses"].items():
            assert "X-Request-ID" in response["headers"]
            content = response["content"]["application/json"]
            schemas.validator(content["schema"]["$ref"].removeprefix("schemas/")).validate(content["example"])
            # Every answer of the refund routes is in their envelope, but the server's own (before routing).
            expected = "payment" if status in SERVER_ANSWERS else "refund"
            assert expected in content["example"] or "refunds" in content["example"], (status, content)


@pytest.mark.parametrize("name", SCHEMA_FILES)
def test_each_schema_file_is_served_under_the_name_its_id_ends_with(http, name):
    response = http.get(f"/schemas/{name}")
    assert response.headers["Content-Type"] == "application/schema+json"
    assert response.body == (ROOT / "schemas" / name).read_bytes()
    assert json.loads(response.body)["$id"] == ID_BASE + name


@pytest.mark.parametrize("name", ["nope.schema.json", "payment.schema", "..", "openapi.json", "schemas.py"])
def test_any_other_file_name_is_a_404_envelope(http, name):
    response = http.get(f"/schemas/{name}", expect_errors=True)
    assert response.status_int == 404
    assert response.json == {"success": False, "errorMessage": "Schema file not found", "payment": None}


@pytest.mark.parametrize("path", ["/schemas/..%2Fopenapi.json", "/schemas/%2Fetc%2Fpasswd", "/schemas/a/b.json"])
def test_no_path_reaches_past_the_schema_files(http, path):
    response = http.get(path, expect_errors=True)
    assert response.status_int == 404
    assert response.json["success"] is False and response.json["payment"] is None


def served_registry(http, base: str) -> Registry:
    """Documents fetched from the service only: `base` + file name -> GET /schemas/<file>."""

    def retrieve(uri: str) -> Resource:
        if not uri.startswith(base):
            raise Unresolvable(uri)
        response = http.get("/schemas/" + uri[len(base):], expect_errors=True)
        if response.status_int != 200:
            raise Unresolvable(uri)
        return Resource.from_contents(json.loads(response.body))

    return Registry(retrieve=retrieve)


def test_every_reference_resolves_from_the_service(http):
    # The document's relative references, from where it is served...
    document = http.get("/openapi.json").json
    served = served_registry(http, "http://payments.test/schemas/")
    resolver = served.resolver(base_uri="http://payments.test/openapi.json")
    for ref in json_refs(document):
        if not ref.startswith("#"):
            resolved = resolver.lookup(ref)
            # ...and from each file found, its own references, by its `$id`.
            for inner in json_refs(resolved.contents):
                resolved.resolver.lookup(inner)
    # Every file's references, followed by `$id` against the files the service serves.
    by_id = served_registry(http, ID_BASE)
    for name in SCHEMA_FILES:
        schema = json.loads(http.get(f"/schemas/{name}").body)
        file_resolver = by_id.resolver(base_uri=schema["$id"])
        for ref in json_refs(schema):
            file_resolver.lookup(ref)
