"""The floor of two revisions of the service, alternated in one run: what a
change to the payment path costs the database and broker work of a payment.

    python -m bench.compare_floors --old 4e79aab [--rounds 2] [--duration 8]

Each revision's own `bench/floor.py` runs in a git worktree of it (made in a
temporary folder, removed afterwards), against a database of its own on
BENCH_DATABASE_URL's (else TEST_DATABASE_URL's) server, created with that
revision's schema, and one Tansu broker shared by both. The rounds alternate
old and new so that noise falls on both. Prints payments/s and p50 per round
and the new/old ratio of the medians.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo

import devstack
from payment.outbox.producer import ensure_topics

ROOT = Path(__file__).resolve().parent.parent
# The schema as each revision applies it: the migrations where they exist.
SCHEMA = ("from payment.db import migrations; migrations.migrate({url!r})")


def database_for(server_url: str, name: str, tree: Path, schema: str = SCHEMA) -> str:
    """A new database `name` on the server, built by `tree`'s own code
    (`schema`: a Python statement taking the database's {url})."""
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    url = make_conninfo(**{**conninfo_to_dict(server_url), "dbname": name})
    subprocess.run([sys.executable, "-c", schema.format(url=url)], cwd=tree, check=True,
                   env={**os.environ, "PYTHONPATH": str(tree)})
    return url


def floor(tree: Path, url: str, bootstrap: str, duration: float) -> dict:
    out = subprocess.run(
        [sys.executable, "-m", "bench.floor", "--database-url", url, "--bootstrap", bootstrap,
         "--threads", "8", "--duration", str(duration), "--warmup", "2", "--run-id", secrets.token_hex(4)],
        cwd=tree, env={**os.environ, "PYTHONPATH": str(tree)}, capture_output=True, text=True, check=True).stdout
    [line] = [line for line in out.splitlines() if line.startswith("BENCH_JSON ")]
    return json.loads(line.split(" ", 1)[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--old", required=True, help="the revision to compare with (e.g. a commit)")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--duration", type=float, default=8)
    args = parser.parse_args()
    server = os.environ.get("BENCH_DATABASE_URL") or os.environ["TEST_DATABASE_URL"]
    work = Path(tempfile.mkdtemp(prefix="floors-"))
    old_tree = work / "old"
    subprocess.run(["git", "worktree", "add", "--detach", "-q", str(old_tree), args.old], cwd=ROOT, check=True)
    port = devstack.free_port()
    broker = devstack.start_broker(port, work / "tansu.log")
    try:
        bootstrap = f"127.0.0.1:{port}"
        ensure_topics(bootstrap, ["payment-succeeded", "payment-failed"], partitions=1)
        trees = {"old": old_tree, "new": ROOT}
        urls = {which: database_for(server, f"floors_{which}", tree) for which, tree in trees.items()}
        rates: dict[str, list[float]] = {"old": [], "new": []}
        for round_ in range(1, args.rounds + 1):
            for which, tree in trees.items():
                result = floor(tree, urls[which], bootstrap, args.duration)
                rates[which].append(result["rate"])
                print(f"round {round_} {which}: {result['rate']:.0f} payments/s, p50 {result['p50_us'] / 1000:.1f} ms, "
                      f"errors {result['errors']}", flush=True)
        ratio = statistics.median(rates["new"]) / statistics.median(rates["old"])
        print(f"new/old (medians): {ratio:.2f}")
    finally:
        devstack.stop(broker)
        subprocess.run(["git", "worktree", "remove", "--force", str(old_tree)], cwd=ROOT, check=False)


if __name__ == "__main__":
    main()
