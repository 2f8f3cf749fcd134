"""CPU per request body of the schema check: jsonschema alone (every body's
errors collected and sorted, as the service once did) against the compiled
validator's verdict (jsonschema-rs), with jsonschema asked only for a refused
body's message. Both in the same run, rounds alternated, best round kept.

    python -m bench.validation [--bodies 5000] [--rounds 5]

The bodies are the contract's example request, as jsonio reads it, and the
same with a negative amount (a refusal: the message is built on both paths).
"""

from __future__ import annotations

import argparse
import time

from payment import jsonio, schemas
from payment.api.request_body import REQUEST_SCHEMA, _check_schema, _error_order, describe
from payment.errors import InvalidRequest
from tests.contract_examples import CONTRACT_EXAMPLES


def reference_path(data: dict) -> None:
    errors = sorted(schemas.validator(REQUEST_SCHEMA).iter_errors(data), key=_error_order)
    if errors:
        raise InvalidRequest(f"Invalid request: {describe(errors[0])}")


def compiled_path(data: dict) -> None:
    _check_schema(data)


def per_body_us(check, data: dict, bodies: int) -> float:
    start = time.perf_counter()
    for _ in range(bodies):
        try:
            check(data)
        except InvalidRequest:
            pass
    return (time.perf_counter() - start) / bodies * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bodies", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()

    example = jsonio.loads(jsonio.dumps(CONTRACT_EXAMPLES["request"][1]))
    cases = {"valid (contract example)": example, "refused (amount -1)": {**example, "amount": -1}}
    for data in cases.values():  # build both validators before timing
        per_body_us(reference_path, data, 1)
        per_body_us(compiled_path, data, 1)

    print(f"{args.bodies} bodies x {args.rounds} rounds, best round, µs per body")
    print(f"{'body':<26} {'jsonschema':>11} {'compiled':>9} {'new/old':>8}")
    for name, data in cases.items():
        old, new = [], []
        for _ in range(args.rounds):
            old.append(per_body_us(reference_path, data, args.bodies))
            new.append(per_body_us(compiled_path, data, args.bodies))
        print(f"{name:<26} {min(old):>11.1f} {min(new):>9.1f} {min(new) / min(old):>8.3f}")


if __name__ == "__main__":
    main()
