"""Where a loaded worker spends its time: the stack and gunicorn as in
bench.run, wrk for DURATION seconds, and `py-spy record` on one worker.

    python -m bench.profile --duration 20 --out /tmp/profile.txt

Needs py-spy (`pip install -r bench/requirements.txt`); it reads another
process's memory, so it runs as root or where ptrace is allowed.
Summarise the collapsed stacks with `python -m bench.profile --summary FILE`.
"""

from __future__ import annotations

import argparse
import collections
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import devstack
from bench.run import Service, empty_tables, start_stack, wrk


def summary(path: str, top: int = 40) -> str:
    """Inclusive and self shares of each function in py-spy's raw output."""
    inclusive: collections.Counter = collections.Counter()
    own: collections.Counter = collections.Counter()
    total = 0
    for line in open(path):
        stack, _, count = line.rstrip().rpartition(" ")
        frames = [re.sub(r":\d+\)", ")", f) for f in stack.split(";") if not f.startswith("thread (")]
        total += int(count)
        for frame in set(frames):
            inclusive[frame] += int(count)
        if frames:
            own[frames[-1]] += int(count)
    lines = [f"{total} samples", "inclusive:"]
    lines += [f"{n * 100 / total:5.1f}%  {f}" for f, n in inclusive.most_common(top)]
    lines += ["self:"] + [f"{n * 100 / total:5.1f}%  {f}" for f, n in own.most_common(top // 2)]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=20)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--out", default="profile.txt")
    parser.add_argument("--format", default="raw", help="py-spy output format: raw (collapsed stacks) or flamegraph")
    parser.add_argument("--gil", action="store_true", help="only samples that hold the GIL (CPU, not waits)")
    parser.add_argument("--summary", metavar="FILE", help="only summarise an earlier raw profile")
    args = parser.parse_args()
    if args.summary:
        print(summary(args.summary))
        return
    py_spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    workdir = Path(tempfile.mkdtemp(prefix="payment-profile-"))
    stack = start_stack(workdir)
    service = Service(stack)
    try:
        empty_tables(stack.database_url)
        service.start()
        url = f"http://127.0.0.1:{service.port}"
        wrk(url, connections=args.connections, duration=3, run_id=secrets.token_hex(4))
        load = threading.Thread(target=wrk, args=(url,), kwargs=dict(
            connections=args.connections, duration=args.duration + 2, run_id=secrets.token_hex(4)))
        load.start()
        time.sleep(1)
        worker = service.workers()[0]
        subprocess.run([py_spy, "record", "--pid", str(worker), "--duration", str(int(args.duration)),
                        "--format", args.format, "--output", args.out, "--threads", "--nonblocking", *(["--gil"] if args.gil else [])],
                       check=True)
        load.join()
        if args.format == "raw":
            print(summary(args.out))
    finally:
        service.stop()
        devstack.stop(stack.upstream)
        devstack.stop(stack.broker)
        empty_tables(stack.database_url)


if __name__ == "__main__":
    main()
