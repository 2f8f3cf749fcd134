from __future__ import annotations

import os

import pytest

from tests.support import Served


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
