"""Upstream faults, for the ordering and the reservation service alike: no
connection, no answer, or a bad answer. Each gets the right 5xx within the
timeout budget; nothing is written, nothing published."""

from __future__ import annotations

import socket
import threading
import time
import uuid

import pytest

from tests.support import new_order, payment_body
from tests.timing import ceiling

# The upstreams' faults: the same whichever way the service reaches PostgreSQL.
pytestmark = pytest.mark.route_independent

READ_TIMEOUT_S = 1.0  # UPSTREAM_READ_TIMEOUT_S in the tests' environment
BUDGET_S = ceiling(READ_TIMEOUT_S)


class FaultyServer:
    """A TCP listener that misbehaves at the HTTP level in one chosen way."""

    def __init__(self, mode: str):
        self.mode = mode
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.open = []
        if mode != "blackhole":  # a blackhole never even accepts
            threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.open.append(conn)
            if self.mode == "reset":
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
                conn.close()
                continue
            conn.recv(65536)
            if self.mode == "garbage":
                conn.sendall(b"SSH-2.0-OpenSSH_9.6\r\n\r\n")
                conn.close()
            elif self.mode == "truncated":
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 200\r\n\r\n"
                             b'{"id": "7c9e6679-74')
                conn.close()
            # "silent": keeps the connection open and says nothing

    def close(self):
        self.sock.close()
        for conn in self.open:
            conn.close()


NONE = "is unavailable"
LATE = "did not answer in time"
BAD = "returned an invalid response"
FAULTS = [
    # (how, status, message)
    ("refused", 503, NONE),
    ("reset", 503, NONE),
    ("blackhole", 504, LATE),
    ("silent", 504, LATE),
    ("slow", 504, LATE),
    ("status 500", 502, BAD),
    ("status 503 with HTML", 502, BAD),
    ("HTML with 200", 502, BAD),
    ("truncated JSON", 502, BAD),
    ("truncated body", 502, BAD),
    ("not HTTP", 502, BAD),
    ("JSON of another shape", 502, BAD),
]
SCRIPTS = {
    # Well past the budget: a read timeout that did not hold shows in the time too.
    "slow": {"delay_ms": 5000},
    "status 500": {"status": 500, "body": '{"error": "boom"}'},
    "status 503 with HTML": {"status": 503, "body": "<html><body>Service Unavailable</body></html>",
                             "content_type": "text/html"},
    "HTML with 200": {"body": "<!doctype html><title>Login</title>", "content_type": "text/html"},
    "truncated JSON": {"body": '{"id": "7c9e6679-7425-40de-944b-e07f'},
    "JSON of another shape": {"body": '{"data": {"order": null}}'},
}
SERVERS = {"refused": None, "reset": "reset", "blackhole": "blackhole", "silent": "silent",
           "truncated body": "truncated", "not HTTP": "garbage"}




@pytest.mark.parametrize("part", ["ordering service", "reservation service"])
@pytest.mark.parametrize("how, status, message", FAULTS, ids=[f[0] for f in FAULTS])
def test_upstream_fault(make_client, config, sandbox, nothing_happened, part, how, status, message):
    order_id = new_order(sandbox)
    reservation_id = str(uuid.uuid4())
    sandbox.put_reservation(reservation_id)
    setting = "ordering_service_url" if part == "ordering service" else "reservation_service_url"
    path = f"/orders/{order_id}" if part == "ordering service" else f"/reservations/{reservation_id}"
    server = None
    if how in SCRIPTS:
        sandbox.script(path, **SCRIPTS[how])
        client = make_client(config)
    elif SERVERS[how] is None:
        unused = socket.socket()
        unused.bind(("127.0.0.1", 0))
        client = make_client(config, **{setting: f"http://127.0.0.1:{unused.getsockname()[1]}"})
        unused.close()
    else:
        server = FaultyServer(SERVERS[how])
        client = make_client(config, **{setting: server.url})
    try:
        started = time.monotonic()
        reply = client.pay(payment_body(order_id, reservationId=reservation_id))
        elapsed = time.monotonic() - started
    finally:
        if server:
            server.close()

    assert (reply.status, reply.body) == (status, {
        "success": False, "payment": None, "errorMessage": f"Payment processing error: {part} {message}"})
    assert elapsed < BUDGET_S, elapsed
