"""The request path with and without the read-ahead worker, in one run.

    python -m bench.worker_compare [--duration 8] [--rounds 2]

Starts the bench stack (bench/run.py) once, then the service twice in turns:
with `gunicorn.conf.py` as it is (payment/server/read_ahead_worker.py) and with
`--worker-class gthread` (gunicorn's own, which reads requests in threads).
Each turn runs wrk against `GET /health/live` and against `POST /payments`
(bench/payments.lua); turns alternate so that the shared machine's noise
falls on both. Prints the requests per second of each, and their ratio.
"""

from __future__ import annotations

import argparse
import re
import secrets
import subprocess
import tempfile
from pathlib import Path

import devstack
from bench.run import Service, start_stack, wrk

WORKERS = {"read-ahead": "", "gthread": "--worker-class gthread"}


def health_rate(url: str, connections: int, duration: float) -> float:
    output = subprocess.run(
        ["wrk", "-t2", f"-c{connections}", f"-d{int(duration)}s", "--timeout", "5s", f"{url}/health/live"],
        capture_output=True, text=True, check=True).stdout
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)|Socket errors", output)
    if errors:
        raise RuntimeError(output)
    return float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))


def payments_rate(url: str, connections: int, duration: float) -> float:
    result = wrk(url, connections=connections, duration=duration, run_id=secrets.token_hex(4))
    if result["status_errors"] or result["timeouts"]:
        raise RuntimeError(result)
    return result["requests"] / (result["duration_us"] / 1e6)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=8)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--connections", type=int, default=32)
    args = parser.parse_args()

    stack = start_stack(Path(tempfile.mkdtemp(prefix="payment-compare-")))
    rates = {name: {"health": [], "payments": []} for name in WORKERS}
    try:
        for _ in range(args.rounds):
            for name, cmd_args in WORKERS.items():
                service = Service(stack)
                service.env["GUNICORN_CMD_ARGS"] = cmd_args
                service.start()
                try:
                    url = f"http://127.0.0.1:{service.port}"
                    payments_rate(url, args.connections, 2)  # warm-up: pools, producer
                    rates[name]["health"].append(health_rate(url, args.connections, args.duration))
                    rates[name]["payments"].append(payments_rate(url, args.connections, args.duration))
                finally:
                    service.stop()
    finally:
        devstack.stop(stack.upstream)
        devstack.stop(stack.broker)
    for load in ("health", "payments"):
        new, old = (sum(rates[n][load]) / args.rounds for n in WORKERS)
        print(f"{load}: read-ahead {new:.0f}/s, gthread {old:.0f}/s, ratio {new / old:.3f} "
              f"(rounds: {rates['read-ahead'][load]} vs {rates['gthread'][load]})")


if __name__ == "__main__":
    main()
