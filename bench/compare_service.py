"""The service of several revisions or settings, alternated in one run: what
a change costs or saves on the whole HTTP path.

    python -m bench.compare_service --variant before=HEAD~1 --variant after=HEAD
    python -m bench.compare_service --variant t8=.:GUNICORN_THREADS=8 --variant t4=.:GUNICORN_THREADS=4

A variant is NAME=REV[:VAR=VALUE[,VAR=VALUE...]]: REV is a git revision (run
from a worktree of it in a temporary folder, removed afterwards) or `.`, this
tree as it is; the variables are added to the service's environment. Each
variant gets a database of its own on BENCH_DATABASE_URL's (else
TEST_DATABASE_URL's) server, built by that revision's migrations; the broker
and the upstream are shared. The rounds alternate the variants so that the
machine's noise falls on all of them, each round a warm-up then a measured
wrk window (bench/payments.lua, every payment checked in the database as in
`make bench`). Printed: per round payments/s, p50, p99 and app CPU per payment
(gunicorn's master and workers, from /proc) and PostgreSQL CPU per payment
(the variant's backends and the server's background processes); then the medians and each
variant's ratio to the first.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import psycopg

import devstack
from bench.compare_floors import database_for
from bench.run import ROOT, Service, measure_service, start_stack

MIGRATE = "from payment.db import migrations; migrations.migrate({url!r})"


@dataclass
class Variant:
    name: str
    revision: str
    env: dict
    tree: Path = ROOT
    database_url: str = ""


def parse_variant(text: str) -> Variant:
    name, _, rest = text.partition("=")
    revision, _, settings = rest.partition(":")
    env = dict(item.split("=", 1) for item in settings.split(",") if item)
    if not name or not revision:
        raise argparse.ArgumentTypeError(f"expected NAME=REV[:VAR=VALUE,...], got {text!r}")
    return Variant(name, revision, env)


def drop_database(server_url: str, name: str) -> None:
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def one_round(variant: Variant, stack, args) -> dict:
    stack.database_url = variant.database_url
    service = Service(stack, root=variant.tree)
    service.env.update({"PYTHONPATH": str(variant.tree), "DATABASE_URL": variant.database_url, **variant.env})
    service.start()
    try:
        return measure_service(service, stack, connections=args.connections, duration=args.duration,
                               warmup=args.warmup)
    finally:
        service.stop()


def cpu_ms(result: dict, group: str = "app") -> float:
    """CPU milliseconds per payment of one group: app (gunicorn's master and
    workers) or database (the variant's backends and the server's own)."""
    payments = result["rate"] * result["cpu"]["elapsed"]
    return result["cpu"]["seconds"].get(group, 0.0) / payments * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variant", type=parse_variant, action="append", required=True)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=float, default=10)
    parser.add_argument("--warmup", type=float, default=3)
    parser.add_argument("--connections", type=int, default=32)
    args = parser.parse_args()
    server = os.environ.get("BENCH_DATABASE_URL") or os.environ["TEST_DATABASE_URL"]
    work = Path(tempfile.mkdtemp(prefix="compare-service-"))
    worktrees = []
    stack = start_stack(work)
    try:
        for variant in args.variant:
            if variant.revision != ".":
                variant.tree = work / variant.name
                subprocess.run(["git", "worktree", "add", "--detach", "-q", str(variant.tree), variant.revision],
                               cwd=ROOT, check=True)
                worktrees.append(variant.tree)
            variant.database_url = database_for(server, f"compare_{variant.name}", variant.tree, MIGRATE)
        results: dict[str, list[dict]] = {v.name: [] for v in args.variant}
        for round_ in range(1, args.rounds + 1):
            for variant in args.variant:
                r = one_round(variant, stack, args)
                results[variant.name].append(r)
                print(f"round {round_} {variant.name}: {r['rate']:.0f} payments/s, p50 {r['p50_us'] / 1000:.1f} ms, "
                      f"p99 {r['p99_us'] / 1000:.1f} ms, app CPU {cpu_ms(r):.2f} ms/payment, "
                      f"PostgreSQL CPU {cpu_ms(r, 'database'):.2f} ms/payment, "
                      f"errors {r['errors']}", flush=True)
        first = args.variant[0].name
        base_rate = statistics.median(r["rate"] for r in results[first])
        base_cpu = statistics.median(cpu_ms(r) for r in results[first])
        base_db = statistics.median(cpu_ms(r, "database") for r in results[first])
        for variant in args.variant:
            rs = results[variant.name]
            rate, cpu = statistics.median(r["rate"] for r in rs), statistics.median(cpu_ms(r) for r in rs)
            db = statistics.median(cpu_ms(r, "database") for r in rs)
            print(f"{variant.name} ({variant.revision} {variant.env or ''}): median {rate:.0f} payments/s "
                  f"({rate / base_rate:.2f} of {first}), p99 {statistics.median(r['p99_us'] for r in rs) / 1000:.1f} ms, "
                  f"p50 {statistics.median(r['p50_us'] for r in rs) / 1000:.2f} ms, "
                  f"app CPU {cpu:.2f} ms/payment ({cpu / base_cpu:.2f} of {first}), "
                  f"PostgreSQL CPU {db:.2f} ms/payment ({db / base_db:.2f} of {first}), "
                  f"errors {sum(r['errors'] for r in rs)}")
    finally:
        devstack.stop(stack.upstream)
        devstack.stop(stack.broker)
        for variant in args.variant:
            if variant.database_url:
                drop_database(server, f"compare_{variant.name}")
        for tree in worktrees:
            subprocess.run(["git", "worktree", "remove", "--force", str(tree)], cwd=ROOT, check=False)


if __name__ == "__main__":
    main()
