"""Slow and stalled clients: eight connections per gunicorn thread, each
stalled or dripping, must not starve the service; each is answered 408 in
the envelope and closed within the configured bound."""

from __future__ import annotations

import json
import selectors
import socket
import time
from dataclasses import dataclass, field

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from payment import jsonio
from tests.support import new_order, payment_body
from tests.timing import ceiling

# HTTP connections: the same whichever way the service reaches PostgreSQL.
pytestmark = pytest.mark.route_independent

WORKERS, THREADS = 2, 8
# Different, to show each deadline applies where it should.
HEADER_TIMEOUT_S, BODY_TIMEOUT_S = 2.0, 3.5
# The worker checks its deadlines once a second.
CHECK_EVERY_S = 1.0
# An answer within this waited for none of the timeouts above: not for a
# stalled connection's thread to be freed (the hostile connections, opened a
# second before the probes, hold theirs HEADER_TIMEOUT_S at least), nor for a
# body the service should not wait for. It must stay below the timeouts to
# tell, so it is not a ceiling with slack over them.
PROMPT_S = HEADER_TIMEOUT_S / 2
BODY_BYTES = 64 * 1024
HEAD = ("POST /payments HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"Content-Length: {BODY_BYTES}\r\nX-Request-ID: slow-{{n}}\r\n\r\n")


@dataclass
class Client:
    """One hostile connection: what it sent at once, what it drips after."""
    kind: str
    n: int
    sock: socket.socket
    opened: float
    drip: bytes = b""
    received: bytes = b""
    closed: float | None = None
    stats: dict = field(default_factory=dict)

    @property
    def bound(self) -> float:
        # The body's deadline runs from the end of the headers, sent at once here.
        return BODY_TIMEOUT_S if self.kind.startswith("body") else HEADER_TIMEOUT_S


def open_client(port: int, kind: str, n: int) -> Client:
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    sock.setblocking(False)
    head = HEAD.format(n=n).encode()
    client = Client(kind, n, sock, time.monotonic())
    if kind == "headers stalled":
        sock.send(head[:40])
    elif kind == "headers dripped":
        client.drip = head
    elif kind == "body stalled":
        sock.send(head + b"{")
    else:  # body dripped
        sock.send(head)
        client.drip = b'{"orderId": "' + b"x" * BODY_BYTES
    return client


def pump(clients: list[Client], until: float) -> None:
    """Drip a byte a second into every dripping connection and read whatever
    the service answers, until every connection is closed or `until`."""
    with selectors.DefaultSelector() as selector:
        for client in clients:
            selector.register(client.sock, selectors.EVENT_READ, client)
        next_drip = time.monotonic()
        while selector.get_map() and time.monotonic() < until:
            now = time.monotonic()
            if now >= next_drip:
                for client in clients:
                    if client.closed is None and client.drip:
                        try:
                            client.sock.send(client.drip[:1])
                            client.drip = client.drip[1:]
                        except OSError:
                            pass  # closed by the service; the read below sees it
                next_drip = now + 1.0
            for key, _ in selector.select(timeout=max(0.0, min(next_drip, until) - time.monotonic())):
                client = key.data
                try:
                    data = client.sock.recv(65536)
                except BlockingIOError:
                    continue
                except OSError:
                    data = b""
                client.received += data
                if not data:
                    client.closed = time.monotonic()
                    selector.unregister(client.sock)


def answer_of(client: Client) -> tuple[int, dict, dict]:
    head, _, body = client.received.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines[1:])
    return int(lines[0].split()[1]), {k.lower(): v for k, v in headers.items()}, json.loads(body)


def timed(call) -> float:
    start = time.monotonic()
    reply = call()
    elapsed = time.monotonic() - start
    assert reply.status_code == 200, reply.text
    return elapsed


def test_stalled_and_dripping_clients_do_not_starve_the_service(serve, sandbox, database):
    served = serve(workers=WORKERS, GUNICORN_THREADS=THREADS,
                   HTTP_HEADER_TIMEOUT_S=HEADER_TIMEOUT_S, HTTP_BODY_TIMEOUT_S=BODY_TIMEOUT_S)
    kinds = ["headers stalled", "headers dripped", "body stalled", "body dripped"]
    clients = [open_client(served.port, kinds[n % 4], n) for n in range(8 * WORKERS * THREADS)]
    try:
        # Let the hostile connections reach the workers and take what they can.
        pump(clients, until=time.monotonic() + 1.0)
        probes = []
        for _ in range(3):
            probes.append(timed(lambda: requests.get(f"{served.url}/health/live", timeout=1)))
            body = jsonio.dumps(payment_body(new_order(sandbox)))
            probes.append(timed(lambda: requests.post(
                f"{served.url}/payments", data=body, timeout=1,
                headers={"Content-Type": "application/json"})))
        assert max(probes) < PROMPT_S, probes

        pump(clients, until=time.monotonic() + ceiling(BODY_TIMEOUT_S + CHECK_EVERY_S) + 1)
        for client in clients:
            assert client.closed is not None, f"{client.kind} #{client.n} still open"
            lifetime = client.closed - client.opened
            assert lifetime <= ceiling(client.bound + CHECK_EVERY_S), (client.kind, lifetime)
            assert lifetime >= client.bound - 0.5, (client.kind, lifetime)
            status, headers, envelope = answer_of(client)
            assert status == 408, (client.kind, client.received[:200])
            assert headers["content-type"] == "application/json"
            assert headers["connection"] == "close"
            assert envelope == {"success": False, "payment": None,
                                "errorMessage": "Request timeout: the request was not received in time"}
            if client.kind.startswith("body"):
                # Its headers were read: the id it sent comes back.
                assert headers["x-request-id"] == f"slow-{client.n}"
        assert len(database.rows()) == 3  # the three probes' payments, nothing from the stalled ones
    finally:
        for client in clients:
            client.sock.close()


def test_kept_alive_connections_idle_or_stalled_hold_no_thread(serve):
    """After one answered request, some connections stay idle and some start
    a second request and stall in it: a new client is still answered at once."""
    served = serve(workers=1, GUNICORN_THREADS=2,
                   HTTP_HEADER_TIMEOUT_S=HEADER_TIMEOUT_S, HTTP_BODY_TIMEOUT_S=BODY_TIMEOUT_S)
    clients = []
    try:
        for n in range(8):
            sock = socket.create_connection(("127.0.0.1", served.port), timeout=5)
            sock.sendall(b"GET /health/live HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            assert sock.recv(65536).startswith(b"HTTP/1.1 200 ")
            if n % 2:
                sock.sendall(HEAD.format(n=n).encode()[:30])
            sock.setblocking(False)
            clients.append(Client("kept alive", n, sock, time.monotonic()))
        pump(clients, until=time.monotonic() + 0.5)
        assert timed(lambda: requests.get(f"{served.url}/health/live", timeout=1)) < PROMPT_S
        pump(clients, until=time.monotonic() + ceiling(HEADER_TIMEOUT_S + CHECK_EVERY_S))
        for client in clients[1::2]:
            assert client.closed is not None and answer_of(client)[0] == 408
    finally:
        for client in clients:
            client.sock.close()


def exchange(port: int, request: bytes, wait_s: float = 5.0) -> tuple[bytes, float]:
    """Send, then read until the service closes or `wait_s`: (bytes, seconds to close)."""
    start = time.monotonic()
    with socket.create_connection(("127.0.0.1", port), timeout=wait_s) as sock:
        sock.sendall(request)
        received = b""
        try:
            while data := sock.recv(65536):
                received += data
        except TimeoutError:
            pass
    return received, time.monotonic() - start


def test_requests_read_ahead_reach_the_application_as_sent(serve, sandbox, database):
    served = serve(workers=1, HTTP_HEADER_TIMEOUT_S=HEADER_TIMEOUT_S, HTTP_BODY_TIMEOUT_S=BODY_TIMEOUT_S)
    body = jsonio.dumps(payment_body(new_order(sandbox))).encode()
    head = "POST /payments HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nConnection: close\r\n"

    # Chunked, a few bytes per chunk: handed over once the last chunk is in,
    # and answered by the application (which reads bodies by Content-Length
    # only, so it finds this one empty).
    chunks = b"".join(b"%x\r\n%s\r\n" % (len(body[i:i + 7]), body[i:i + 7]) for i in range(0, len(body), 7))
    received, seconds = exchange(served.port, (head + "Transfer-Encoding: chunked\r\n\r\n").encode()
                                 + chunks + b"0\r\n\r\n")
    status, _, envelope = answer_of(Client("chunked", 0, None, 0, received=received))
    assert status == 400 and envelope["errorMessage"].startswith("Invalid request: body is not valid JSON")
    assert seconds < PROMPT_S

    # Expect: 100-continue is answered before the body is sent.
    with socket.create_connection(("127.0.0.1", served.port), timeout=5) as sock:
        sock.sendall((head + f"Content-Length: {len(body)}\r\nExpect: 100-continue\r\n\r\n").encode())
        assert sock.recv(65536).startswith(b"HTTP/1.1 100 Continue\r\n\r\n")
        sock.sendall(body)
        reply = b""
        while data := sock.recv(65536):
            reply += data
        assert b"HTTP/1.1 200 " in reply and b'"Idempotent-Replayed' not in reply

    # A body declared over the limit: the application's 413 at once, without
    # waiting for a body it will not read, then the connection is closed.
    received, seconds = exchange(served.port, (
        "POST /payments HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        "X-Request-ID: too-big\r\nContent-Length: 1048576\r\n\r\n{").encode())
    status, headers, envelope = answer_of(Client("too large", 0, None, 0, received=received))
    assert status == 413 and headers["x-request-id"] == "too-big"
    assert envelope == {"success": False, "payment": None,
                        "errorMessage": "Invalid request: body is larger than 64 KiB"}
    assert seconds < PROMPT_S
    assert [row["status"] for row in database.rows()] == ["succeeded"]

    # Refused by the worker before the application reads them: a chunked body
    # past the limit, a header block past 32 KiB. Counted all the same.
    pad = b"x" * 8192
    received, _ = exchange(served.port, (head + "Transfer-Encoding: chunked\r\n\r\n").encode()
                           + b"".join(b"2000\r\n" + pad + b"\r\n" for _ in range(9)))
    assert answer_of(Client("chunked too large", 0, None, 0, received=received))[0] == 413
    received, _ = exchange(served.port, b"GET /health/live HTTP/1.1\r\nX-Pad: " + b"p" * 40000 + b"\r\n\r\n")
    assert answer_of(Client("headers too large", 0, None, 0, received=received))[0] == 431
    # Refused by gunicorn's parser: the envelope all the same, the client's bytes not quoted back.
    for malformed in (b"GARBAGE\r\n\r\n", b"GET /health/live HTTP/1.1\r\nBad Header\r\n\r\n"):
        received, _ = exchange(served.port, malformed)
        status, headers, envelope = answer_of(Client("malformed", 0, None, 0, received=received))
        assert (status, headers["content-type"]) == (400, "application/json")
        assert envelope == {"success": False, "payment": None,
                            "errorMessage": "Invalid request: malformed HTTP request"}
    for malformed, status in ((b"GET /" + b"a" * 5000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 414),
                              (b"GET /health/live HTTP/1.1\r\nHost: x\r\nExpect: 200-ok\r\n\r\n", 417)):
        received, _ = exchange(served.port, malformed)
        answer = answer_of(Client("refused by the parser", 0, None, 0, received=received))
        assert (answer[0], answer[1]["content-type"]) == (status, "application/json"), received[:300]
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value for family in text_string_to_metric_families(
        requests.get(f"{served.url}/metrics", timeout=5).text) for s in family.samples}
    refusals = {labels: value for (name, labels), value in samples.items()
                if name == "payment_http_refusals_total"}
    assert refusals == {
        (("kind", "json"), ("route", "/payments")): 1.0,
        (("kind", "too_large"), ("route", "/payments")): 1.0,
        (("kind", "too_large"), ("route", "unread")): 1.0,
        (("kind", "headers_too_large"), ("route", "unread")): 1.0,
        (("kind", "malformed_http"), ("route", "unread")): 2.0,
        (("kind", "uri_too_long"), ("route", "unread")): 1.0,
        (("kind", "expectation_failed"), ("route", "unread")): 1.0,
    }
    rejected = {labels: value for (name, labels), value in samples.items()
                if name == "payment_payments_total" and ("outcome", "rejected") in labels}
    assert rejected == {
        (("error_code", "INVALID_REQUEST"), ("outcome", "rejected")): 1.0,
        (("error_code", "BODY_TOO_LARGE"), ("outcome", "rejected")): 2.0,
    }
