from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import requests

from payment.devstack import free_port, wait_for_port

ROOT = Path(__file__).resolve().parents[2]


class Served:
    """`python -m payment serve` on a free port, its output read line by line."""

    def __init__(self, env: dict, cwd: Path = ROOT, command=(sys.executable, "-m", "payment", "serve")):
        self.port = free_port()
        self.env = {**env, "PORT": str(self.port)}
        self.url = f"http://127.0.0.1:{self.port}"
        self.process = subprocess.Popen(
            list(command), cwd=cwd, env=self.env,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self._lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        wait_for_port(self.port, timeout=60, process=self.process)
        self.wait_for(lambda: len(self.worker_pids()) >= int(env.get("WEB_CONCURRENCY", 1)), "workers booted")
        self.wait_for(self._answers, "a worker answering")

    def _read(self):
        for line in self.process.stdout:
            self._lines.append(line.rstrip("\n"))

    def _answers(self) -> bool:
        try:
            return requests.get(f"{self.url}/health/live", timeout=2).status_code == 200
        except requests.RequestException:
            return False

    def wait_for(self, condition, what: str, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"{what}: not within {timeout}s\n" + "\n".join(self._lines[-30:]))
            time.sleep(0.05)

    def lines(self) -> list[str]:
        return list(self._lines)

    def records(self) -> list[dict]:
        """Every output line, each of which must be one JSON object."""
        return [json.loads(line) for line in self.lines()]

    def worker_pids(self) -> list[int]:
        """Workers booted so far, oldest first (gunicorn's own JSON lines)."""
        pids = []
        for line in self.lines():
            if "Booting worker with pid" in line:
                pids.append(int(json.loads(line)["message"].rsplit(" ", 1)[1]))
        return pids

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.terminate()
        code = self.process.wait(30)
        self._reader.join(5)
        return code


@pytest.fixture
def serve(service_env, database, sandbox, events):
    """serve(**env) -> Served; every one started is stopped at the end."""
    started: list[Served] = []

    def start(**extra) -> Served:
        env = {**os.environ, **service_env, "WEB_CONCURRENCY": "2", **extra}
        env.pop("PROMETHEUS_MULTIPROC_DIR", None)
        started.append(Served(env))
        return started[-1]

    yield start
    for served in started:
        served.stop()
