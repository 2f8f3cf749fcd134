"""Secrets and leaks: the database password never reaches a log line or a
response, whatever fails; the container does not run as root."""

from __future__ import annotations

import re
from pathlib import Path

import requests
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from devstack import free_port
from tests.support import new_order, payment_body

PASSWORD = "s3cret-Pa55word"
ROOT = Path(__file__).resolve().parents[2]


def with_password(url: str) -> str:
    # Trust authentication ignores the password: the service runs normally
    # while holding one it must never print.
    return make_conninfo(**{**conninfo_to_dict(url), "password": PASSWORD})


def test_password_stays_out_of_logs_and_responses(serve, service_env, own_postgres, sandbox):
    env = {**service_env, "DATABASE_URL": with_password(own_postgres.url)}
    healthy = serve(env, DB_TIMEOUT_S=0.5)
    no_upstream = serve({**env, "ORDERING_SERVICE_URL": f"http://user:{PASSWORD}@127.0.0.1:{free_port()}"})

    replies = [healthy.post(payment_body(new_order(sandbox))) for _ in range(3)]
    replies.append(no_upstream.post(payment_body(new_order(sandbox))))
    own_postgres.stop()
    replies += [healthy.post(payment_body(new_order(sandbox))) for _ in range(3)]
    replies.append(requests.get(f"{healthy.url}/health/ready", timeout=5))
    replies.append(requests.get(f"{healthy.url}/nowhere", timeout=5))

    assert [r.status_code for r in replies] == [200, 200, 200, 503, 503, 503, 503, 503, 404]
    for reply in replies:
        assert PASSWORD not in reply.text
        assert not re.search(r"Traceback|psycopg|File \"|127\.0\.0\.1|user:", reply.text), reply.text
    logs = healthy.log() + no_upstream.log()
    assert "payment database" in logs or "database unavailable" in logs, "the database fault was not logged"
    assert PASSWORD not in logs


def test_container_runs_as_an_unprivileged_user():
    dockerfile = (ROOT / "Dockerfile").read_text()
    users = re.findall(r"^USER\s+(\S+)", dockerfile, re.MULTILINE)
    assert users, "the image never leaves root"
    assert users[-1] not in ("root", "0", "0:0")
