"""The JSON Schema files in schemas/: well-formed, linked, and true to the contract's examples."""

import copy
import json
import pathlib
from decimal import Decimal

import pytest
from jsonschema import Draft202012Validator
from referencing import Registry, Resource

from payment.currencies import MINOR_UNITS
from tests.contract_examples import CONTRACT_EXAMPLES
from tests.support import json_refs

ROOT = pathlib.Path(__file__).resolve().parents[2]
SCHEMA_DIR = ROOT / "schemas"
ID_BASE = "https://schemas.ticketing.example/payments/"
DRAFT_2020_12 = "https://json-schema.org/draft/2020-12/schema"

SCHEMAS: dict[str, dict] = {
    path.name: json.loads(path.read_text(encoding="utf-8"))
    for path in sorted(SCHEMA_DIR.glob("*.json"))
}
REGISTRY: Registry = Registry().with_resources(
    (schema["$id"], Resource.from_contents(schema)) for schema in SCHEMAS.values()
)

REQUEST = "payment-request.schema.json"
PAYMENT = "payment.schema.json"
RESPONSE = "payment-response.schema.json"
SUCCEEDED = "payment-succeeded.schema.json"
FAILED = "payment-failed.schema.json"
LOOKUP = "payment-lookup.schema.json"
LIST = "payment-list.schema.json"
REFUND_REQUEST = "refund-request.schema.json"
REFUND = "refund.schema.json"
REFUND_RESPONSE = "refund-response.schema.json"
REFUND_LOOKUP = "refund-lookup.schema.json"
REFUND_LIST = "refund-list.schema.json"
REFUNDED = "payment-refunded.schema.json"
REFUND_FAILED = "payment-refund-failed.schema.json"

BAD_GUIDS = [
    "not-a-guid",
    "7c9e6679742540de944be07fc1f90ae7",
    "{7c9e6679-7425-40de-944b-e07fc1f90ae7}",
    "7c9e6679-7425-40de-944b-e07fc1f90aeg",
    "7c9e6679-7425-40de-944b-e07fc1f90ae",
    "",
]


def validator(schema_name: str, format_check: bool = True) -> Draft202012Validator:
    return Draft202012Validator(
        SCHEMAS[schema_name],
        registry=REGISTRY,
        format_checker=Draft202012Validator.FORMAT_CHECKER if format_check else None,
    )


def errors(schema_name: str, instance, format_check: bool = True) -> list:
    return list(validator(schema_name, format_check).iter_errors(instance))


def keywords(errs) -> set[str]:
    """Every keyword that failed, including those nested in anyOf/oneOf contexts."""
    found = set()
    for error in errs:
        found.add(error.validator)
        found |= keywords(error.context)
    return found


def example(name: str):
    return copy.deepcopy(CONTRACT_EXAMPLES[name][1])




# --- the files themselves ---------------------------------------------------


def test_schema_directory_holds_the_expected_files():
    assert set(SCHEMAS) == {REQUEST, PAYMENT, RESPONSE, SUCCEEDED, FAILED, LOOKUP, LIST, REFUND_REQUEST, REFUND,
                            REFUND_RESPONSE, REFUND_LOOKUP, REFUND_LIST, REFUNDED, REFUND_FAILED}


@pytest.mark.parametrize("name", sorted(SCHEMAS))
def test_schema_is_valid_draft_2020_12(name):
    schema = SCHEMAS[name]
    assert schema["$schema"] == DRAFT_2020_12
    Draft202012Validator.check_schema(schema)
    assert schema["title"]
    assert schema["description"]


def test_ids_are_unique_and_match_file_names():
    ids = [schema["$id"] for schema in SCHEMAS.values()]
    assert len(ids) == len(set(ids))
    for name, schema in SCHEMAS.items():
        assert schema["$id"] == ID_BASE + name


@pytest.mark.parametrize("name", sorted(SCHEMAS))
def test_every_ref_resolves_in_the_registry(name):
    schema = SCHEMAS[name]
    resolver = REGISTRY.resolver(base_uri=schema["$id"])
    found = list(json_refs(schema))
    for ref in found:
        resolver.lookup(ref)  # raises if unresolvable


def test_request_currency_enum_is_the_minor_units_table():
    request = SCHEMAS[REQUEST]
    currency = REGISTRY.resolver(base_uri=request["$id"]).lookup(
        request["properties"]["currency"]["$ref"]
    ).contents
    assert currency["enum"] == sorted(MINOR_UNITS)
    assert request["properties"]["currency"]["default"] in MINOR_UNITS


def test_request_defaults_are_allowed_values():
    request = SCHEMAS[REQUEST]
    instance = example("request")
    instance["currency"] = request["properties"]["currency"]["default"]
    instance["paymentMethod"] = request["properties"]["paymentMethod"]["default"]
    assert errors(REQUEST, instance) == []


# --- the contract's examples ------------------------------------------------


@pytest.mark.parametrize("name", sorted(CONTRACT_EXAMPLES))
def test_contract_example_validates(name):
    schema_name, instance = CONTRACT_EXAMPLES[name]
    assert [e.message for e in errors(schema_name, instance)] == []


@pytest.mark.parametrize("name", sorted(CONTRACT_EXAMPLES))
def test_contract_example_validates_with_float_amounts(name):
    schema_name, instance = CONTRACT_EXAMPLES[name]
    as_floats = json.loads(json.dumps(instance, default=float))
    assert [e.message for e in errors(schema_name, as_floats)] == []


def test_success_example_payment_is_a_full_payment():
    payment = example("response_200_success")["payment"]
    assert errors(PAYMENT, payment) == []


def test_request_without_optional_fields_validates():
    instance = example("request")
    for field in ("reservationId", "currency", "paymentMethod"):
        del instance[field]
    assert errors(REQUEST, instance) == []


def test_request_with_null_reservation_validates():
    instance = example("request")
    instance["reservationId"] = None
    assert errors(REQUEST, instance) == []


# --- requests that must be refused ------------------------------------------


def test_request_with_unknown_field_fails():
    instance = example("request")
    instance["ammount"] = instance["amount"]
    assert keywords(errors(REQUEST, instance)) == {"additionalProperties"}


def test_request_with_misspelt_amount_fails():
    instance = example("request")
    instance["ammount"] = instance.pop("amount")
    assert keywords(errors(REQUEST, instance)) == {"additionalProperties", "required"}


@pytest.mark.parametrize("field", ["orderId", "customerId", "amount"])
def test_request_missing_required_field_fails(field):
    instance = example("request")
    del instance[field]
    assert keywords(errors(REQUEST, instance)) == {"required"}


@pytest.mark.parametrize("amount", [0, -1, Decimal("0.00"), Decimal("-0.01"), -1.5])
def test_request_with_non_positive_amount_fails(amount):
    instance = example("request")
    instance["amount"] = amount
    assert keywords(errors(REQUEST, instance)) == {"exclusiveMinimum"}


@pytest.mark.parametrize("amount", ["150.00", None, True])
def test_request_with_non_number_amount_fails(amount):
    instance = example("request")
    instance["amount"] = amount
    assert keywords(errors(REQUEST, instance)) == {"type"}


@pytest.mark.parametrize("format_check", [True, False], ids=["format", "no-format"])
@pytest.mark.parametrize("guid", BAD_GUIDS)
@pytest.mark.parametrize("field", ["orderId", "customerId", "reservationId"])
def test_request_with_bad_guid_fails(field, guid, format_check):
    instance = example("request")
    instance[field] = guid
    errs = errors(REQUEST, instance, format_check=format_check)
    assert errs
    assert all(list(e.absolute_path) == [field] for e in errs)
    assert "pattern" in keywords(errs)


@pytest.mark.parametrize("currency", ["XYZ", "usd", "US", "XAU", "XTS", "HRK"])
def test_request_with_unknown_currency_fails(currency):
    instance = example("request")
    instance["currency"] = currency
    assert keywords(errors(REQUEST, instance)) == {"enum"}


@pytest.mark.parametrize("method", ["cash", "CREDIT_CARD", "credit-card", ""])
def test_request_with_unknown_payment_method_fails(method):
    instance = example("request")
    instance["paymentMethod"] = method
    assert keywords(errors(REQUEST, instance)) == {"enum"}


# --- responses that must be refused -----------------------------------------


def test_success_true_with_failed_payment_fails():
    instance = example("response_200_success")
    instance["payment"].update(
        status="failed",
        errorCode="CARD_DECLINED",
        errorMessage="Card declined",
        failureReason="Issuing bank rejected the transaction",
    )
    assert errors(RESPONSE, instance)


def test_success_true_with_pending_payment_fails():
    instance = example("response_200_success")
    instance["payment"]["status"] = "pending"
    instance["payment"]["processedAt"] = None
    assert errors(RESPONSE, instance)


def test_success_true_with_payment_summary_fails():
    instance = example("response_402_payment_failed")
    instance["success"] = True
    instance["errorMessage"] = None
    instance["payment"]["status"] = "succeeded"
    assert errors(RESPONSE, instance)


def test_success_true_without_payment_fails():
    instance = example("response_200_success")
    instance["payment"] = None
    assert errors(RESPONSE, instance)


def test_success_true_with_error_message_fails():
    instance = example("response_200_success")
    instance["errorMessage"] = "Payment failed: Card declined"
    assert errors(RESPONSE, instance)


def test_success_false_without_error_message_fails():
    instance = example("response_404_not_found")
    instance["errorMessage"] = None
    assert errors(RESPONSE, instance)


@pytest.mark.parametrize("field", ["success", "errorMessage", "payment"])
def test_response_missing_envelope_field_fails(field):
    instance = example("response_404_not_found")
    del instance[field]
    assert "required" in keywords(errors(RESPONSE, instance))


def test_response_with_extra_field_fails():
    instance = example("response_404_not_found")
    instance["statusCode"] = 404
    assert keywords(errors(RESPONSE, instance)) == {"additionalProperties"}


def test_payment_summary_with_extra_field_fails():
    instance = example("response_402_payment_failed")
    instance["payment"]["amount"] = Decimal("150.00")
    assert errors(RESPONSE, instance)


def test_payment_with_extra_field_fails():
    payment = example("response_200_success")["payment"]
    payment["transactionId"] = "txn_1234567890"
    assert keywords(errors(PAYMENT, payment)) == {"additionalProperties"}


@pytest.mark.parametrize("format_check", [True, False], ids=["format", "no-format"])
@pytest.mark.parametrize("field", ["createdAt", "processedAt"])
def test_payment_time_with_offset_fails(field, format_check):
    instance = example("response_200_success")
    instance["payment"][field] = "2026-03-04T17:30:00+02:00"
    assert errors(RESPONSE, instance, format_check=format_check)
    assert "pattern" in keywords(errors(PAYMENT, instance["payment"], format_check=format_check))


def test_payment_time_that_is_no_date_fails_with_format_checking():
    # The pattern lets this through; only the date-time format checker
    # (which needs rfc3339-validator) catches it.
    payment = example("response_200_success")["payment"]
    payment["createdAt"] = "2026-02-30T15:30:00Z"
    assert errors(PAYMENT, payment, format_check=False) == []
    assert keywords(errors(PAYMENT, payment)) == {"format"}


def test_payment_time_with_fraction_validates():
    payment = example("response_200_success")["payment"]
    payment["createdAt"] = "2026-03-04T15:30:00.123456Z"
    assert errors(PAYMENT, payment) == []


# --- events that must be refused --------------------------------------------


@pytest.mark.parametrize("name", ["event_payment_succeeded", "event_payment_failed"])
def test_event_with_extra_field_fails(name):
    schema_name, _ = CONTRACT_EXAMPLES[name]
    instance = example(name)
    instance["ticketCount"] = 2
    assert keywords(errors(schema_name, instance)) == {"additionalProperties"}


@pytest.mark.parametrize("name", ["event_payment_succeeded", "event_payment_failed"])
def test_event_missing_field_fails(name):
    schema_name, _ = CONTRACT_EXAMPLES[name]
    for field in list(example(name)):
        instance = example(name)
        del instance[field]
        assert keywords(errors(schema_name, instance)) == {"required"}, field


@pytest.mark.parametrize(
    ("name", "status"),
    [("event_payment_succeeded", "failed"), ("event_payment_failed", "succeeded")],
)
def test_event_with_wrong_status_fails(name, status):
    schema_name, _ = CONTRACT_EXAMPLES[name]
    instance = example(name)
    instance["status"] = status
    assert keywords(errors(schema_name, instance)) == {"const"}


@pytest.mark.parametrize(
    ("name", "field"),
    [("event_payment_succeeded", "processedAt"), ("event_payment_failed", "attemptedAt")],
)
def test_event_time_with_offset_fails(name, field):
    schema_name, _ = CONTRACT_EXAMPLES[name]
    instance = example(name)
    instance[field] = "2026-03-04T17:30:00+02:00"
    assert "pattern" in keywords(errors(schema_name, instance, format_check=False))


@pytest.mark.parametrize("transaction_id", ["1234567890", "txn_", "txn_12-34", "TXN_123"])
def test_succeeded_event_with_bad_transaction_id_fails(transaction_id):
    instance = example("event_payment_succeeded")
    instance["transactionId"] = transaction_id
    assert keywords(errors(SUCCEEDED, instance)) == {"pattern"}


def test_failed_event_without_failure_reason_validates():
    instance = example("event_payment_failed")
    instance["failureReason"] = None
    assert errors(FAILED, instance) == []


@pytest.mark.parametrize("name", ["event_payment_succeeded", "event_payment_failed"])
def test_event_with_null_reservation_validates(name):
    schema_name, _ = CONTRACT_EXAMPLES[name]
    instance = example(name)
    instance["reservationId"] = None
    assert errors(schema_name, instance) == []


# --- the read endpoints' envelopes ------------------------------------------


def test_lookup_takes_a_payment_of_any_status():
    succeeded = example("response_200_success")
    assert errors(LOOKUP, succeeded) == []
    failed = example("response_200_success")
    failed["payment"].update(status="failed", errorCode="CARD_DECLINED", errorMessage="Card declined",
                             failureReason="Issuing bank rejected the transaction")
    assert errors(LOOKUP, failed) == []
    pending = example("response_200_success")
    pending["payment"].update(status="pending", processedAt=None)
    assert errors(LOOKUP, pending) == []


@pytest.mark.parametrize("change", [
    {"success": False}, {"errorMessage": "Payment not found"}, {"payment": None}, {"payments": []},
])
def test_lookup_refuses_anything_but_a_found_payment(change):
    instance = example("response_200_success")
    instance.update(change)
    assert errors(LOOKUP, instance)


def test_lookup_refuses_the_payment_summary():
    instance = example("response_402_payment_failed")
    instance.update(success=True, errorMessage=None)
    assert errors(LOOKUP, instance)


def test_list_takes_no_payment_or_several():
    payment = example("response_200_success")["payment"]
    assert errors(LIST, {"success": True, "errorMessage": None, "payments": []}) == []
    assert errors(LIST, {"success": True, "errorMessage": None, "payments": [payment, payment]}) == []


@pytest.mark.parametrize("instance", [
    {"success": True, "errorMessage": None},
    {"success": True, "errorMessage": None, "payments": None},
    {"success": False, "errorMessage": "x", "payments": []},
    {"success": True, "errorMessage": None, "payments": [], "payment": None},
])
def test_list_refuses_other_shapes(instance):
    assert errors(LIST, instance)


def test_list_refuses_a_payment_that_is_not_whole():
    summary = example("response_402_payment_failed")["payment"]
    assert keywords(errors(LIST, {"success": True, "errorMessage": None, "payments": [summary]})) >= {"required"}
