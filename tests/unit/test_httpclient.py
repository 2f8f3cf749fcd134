"""The upstream HTTP client against a real local server: connections kept
alive and reused, a connection the server closed replaced without the caller
noticing, timeouts and refusals told apart; a whole-call deadline and a cap
on what an answer may send; a call sent and received in two halves, its
deadline counted from the send, a discarded one never pooled."""

from __future__ import annotations

import socket
import threading
import time
import tracemalloc
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from devstack import free_port
from payment.upstream.httpclient import ConnectionPool, HTTPBadAnswer, HTTPTimeout, HTTPTooLarge, HTTPUnavailable
from tests.timing import ceiling, eventually, wait_until


@contextmanager
def unaccepting_listener():
    """A listener whose accept queue is full: it drops further connection
    attempts, so a connect to it hangs. Yields its port."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    fillers = []
    try:
        while True:
            filler = socket.socket()
            filler.settimeout(0.2)
            fillers.append(filler)
            try:
                filler.connect(listener.getsockname())
            except (TimeoutError, socket.timeout):
                break
        yield listener.getsockname()[1]
    finally:
        for filler in fillers:
            filler.close()
        listener.close()


class Server:
    """HTTP/1.1 with keep-alive; records each connection and request."""

    def __init__(self, delay_s: float = 0.0, http10: bool = False, hang_up_on: int | None = None,
                 answer: bytes = b'{"ok":true}'):
        outer = self
        self.connections = 0
        self.closed = 0  # connections the server has closed
        self.paths: list[str] = []
        self.headers: list[dict] = []
        self.handlers: list[BaseHTTPRequestHandler] = []

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.0" if http10 else "HTTP/1.1"

            def setup(self):
                super().setup()
                outer.connections += 1
                outer.handlers.append(self)

            def finish(self):
                try:
                    super().finish()
                finally:
                    outer.closed += 1

            def do_GET(self):
                outer.paths.append(self.path)
                self.served = getattr(self, "served", 0) + 1
                if self.served == hang_up_on:
                    self.close_connection = True  # closes without an answer
                    return
                outer.headers.append(dict(self.headers))
                time.sleep(delay_s)
                body = answer if self.path != "/missing" else b"{}"
                self.send_response(200 if self.path != "/missing" else 404)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.server.handle_error = lambda *args: None  # a dropped connection is the point
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        # Polled often: close() waits up to one poll interval (0.5 s by default).
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()

    def drop_connections(self) -> None:
        """Close every connection from the server's side, as an idle timeout does."""
        for handler in self.handlers:
            handler.connection.shutdown(socket.SHUT_RDWR)
        eventually(lambda: self.closed == len(self.handlers), "the server's side of every connection closed")

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def server():
    server = Server()
    yield server
    server.close()


def get(pool, url, **kw):
    return pool.get(url, connect_timeout=1, read_timeout=kw.pop("read_timeout", 1), **kw)


def test_status_and_body_and_headers(server):
    pool = ConnectionPool()
    assert get(pool, server.url + "/orders/1?x=y", headers={"X-Request-ID": "abc"}) == (200, b'{"ok":true}')
    assert get(pool, server.url + "/missing") == (404, b"{}")
    assert server.paths == ["/orders/1?x=y", "/missing"]
    assert server.headers[0]["X-Request-ID"] == "abc"


def test_one_connection_serves_sequential_calls(server):
    pool = ConnectionPool()
    for _ in range(5):
        assert get(pool, server.url + "/orders/1")[0] == 200
    assert server.connections == 1


def test_a_connection_closed_by_the_server_is_replaced(server):
    pool = ConnectionPool()
    assert get(pool, server.url + "/orders/1")[0] == 200
    server.drop_connections()
    assert get(pool, server.url + "/orders/2")[0] == 200
    assert server.connections == 2
    assert server.paths == ["/orders/1", "/orders/2"]


def test_a_connection_that_dies_with_the_request_is_retried_once_on_a_new_one():
    server = Server(hang_up_on=2)
    try:
        pool = ConnectionPool()
        assert get(pool, server.url + "/orders/1")[0] == 200
        assert get(pool, server.url + "/orders/2")[0] == 200
        assert server.paths == ["/orders/1", "/orders/2", "/orders/2"]
        assert server.connections == 2
    finally:
        server.close()


def test_a_new_connection_that_dies_is_not_retried():
    server = Server(hang_up_on=1)
    try:
        with pytest.raises(HTTPUnavailable):
            get(ConnectionPool(), server.url + "/orders/1")
        assert server.paths == ["/orders/1"]
    finally:
        server.close()


def test_concurrent_calls_each_get_a_connection(server):
    pool = ConnectionPool(max_idle_per_host=2)
    results = []
    threads = [threading.Thread(target=lambda: results.append(get(pool, server.url + "/orders/1")))
               for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [status for status, _ in results] == [200] * 6
    assert len(pool._idle[("http", server.url[len("http://"):])]) <= 2


def test_a_server_that_closes_after_each_answer():
    server = Server(http10=True)
    try:
        pool = ConnectionPool()
        assert get(pool, server.url + "/orders/1")[0] == 200
        assert get(pool, server.url + "/orders/2")[0] == 200
        assert server.connections == 2
    finally:
        server.close()


def test_no_answer_in_time_is_a_timeout():
    server = Server(delay_s=0.5)
    try:
        with pytest.raises(HTTPTimeout):
            get(ConnectionPool(), server.url + "/orders/1", read_timeout=0.1)
    finally:
        server.close()


def test_nothing_listening_is_unavailable():
    with pytest.raises(HTTPUnavailable):
        get(ConnectionPool(), f"http://127.0.0.1:{free_port()}/orders/1")


def test_an_answer_that_is_not_http_is_a_bad_answer():
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()

    def garbage():
        conn, _ = listener.accept()
        conn.recv(1024)
        conn.sendall(b"SSH-2.0-OpenSSH\r\n\r\n")
        conn.close()

    threading.Thread(target=garbage, daemon=True).start()
    try:
        with pytest.raises(HTTPBadAnswer):
            get(ConnectionPool(), f"http://127.0.0.1:{listener.getsockname()[1]}/orders/1")
    finally:
        listener.close()


class RawServer:
    """Answers every connection with `answer(conn)` on a thread of its own;
    counts the bytes it managed to send, and sees a client hang up."""

    def __init__(self, answer):
        self.listener = socket.socket()
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(16)
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        self.sent = 0
        self.answer = answer
        self.hung_up = threading.Event()  # a client closed while it was answered
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._one, args=(conn,), daemon=True).start()

    def _one(self, conn):
        try:
            conn.recv(65536)
            self.answer(self, conn)
        except OSError:
            self.hung_up.set()  # the client hung up: the point of most of these tests
        finally:
            conn.close()

    def send(self, conn, data: bytes):
        conn.sendall(data)
        self.sent += len(data)

    def close(self):
        self.listener.close()


def trickle(pause_s: float, data: bytes):
    def answer(server, conn):
        for index in range(len(data)):
            time.sleep(pause_s)
            server.send(conn, data[index:index + 1])
    return answer


ORDER = b'{"id": "7c9e6679-7425-40de-944b-e07fc1f90ae7", "status": "pending"}'
HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(ORDER)


@pytest.mark.parametrize("what", ["status line and headers", "body"])
def test_a_trickling_answer_ends_at_the_deadline(what):
    """Each byte comes well within the read timeout; the whole call still ends
    at the deadline."""
    if what == "body":
        def answer(server, conn):
            server.send(conn, HEAD)
            trickle(0.05, ORDER)(server, conn)
    else:
        answer = trickle(0.05, HEAD + ORDER)
    server = RawServer(answer)
    try:
        started = time.monotonic()
        with pytest.raises(HTTPTimeout):
            ConnectionPool().get(server.url + "/orders/1", connect_timeout=1, read_timeout=1, deadline=0.6)
        elapsed = time.monotonic() - started
        # Unbounded, the trickle would last over 3 s.
        assert 0.55 < elapsed < ceiling(0.6), elapsed
    finally:
        server.close()


def test_an_answer_within_the_deadline_and_the_cap_is_read_whole(server):
    status, body = ConnectionPool().get(server.url + "/orders/1", connect_timeout=1, read_timeout=1,
                                        deadline=1, max_bytes=1024)
    assert (status, body) == (200, b'{"ok":true}')


def test_a_deadline_shorter_than_the_connect_timeout_bounds_the_connect():
    with unaccepting_listener() as port:
        started = time.monotonic()
        with pytest.raises(HTTPTimeout):
            ConnectionPool().get(f"http://127.0.0.1:{port}/orders/1",
                                 connect_timeout=5, read_timeout=5, deadline=0.3)
        assert time.monotonic() - started < ceiling(0.3)  # not the connect timeout


def test_an_answer_declared_larger_than_the_cap_is_refused_unread():
    def answer(server, conn):
        server.send(conn, b"HTTP/1.1 200 OK\r\nContent-Length: 100000000\r\n\r\n")
        while True:
            server.send(conn, b" " * 65536)
    server = RawServer(answer)
    try:
        with pytest.raises(HTTPTooLarge):
            ConnectionPool().get(server.url + "/orders/1", connect_timeout=1, read_timeout=1, max_bytes=65536)
        # Its writes fail once the client has closed: the client did not read on.
        eventually(server.hung_up.is_set, "the server sees the client hang up")
        assert server.sent < 10_000_000
    finally:
        server.close()


@pytest.mark.parametrize("framing", ["close-delimited", "chunked", "headers"])
def test_an_endless_answer_stops_at_the_cap_and_memory_stays_flat(framing):
    """50 MB offered, 1 MiB allowed: the client reads in bounded pieces and
    hangs up at the cap; what it holds never grows with the answer."""
    cap = 1024 * 1024
    heads = {"close-delimited": b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n",
             "chunked": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
             "headers": b"HTTP/1.1 200 OK\r\n"}
    pieces = {"close-delimited": b" " * 65536,
              "chunked": b"10000\r\n" + b" " * 65536 + b"\r\n",
              "headers": b"X-Filler: " + b"x" * 60000 + b"\r\n"}

    def answer(server, conn):
        server.send(conn, heads[framing])
        for _ in range(800):
            server.send(conn, pieces[framing])

    server = RawServer(answer)
    try:
        tracemalloc.start()
        try:
            with pytest.raises(HTTPTooLarge):
                ConnectionPool().get(server.url + "/orders/1", connect_timeout=1, read_timeout=1, max_bytes=cap)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert peak < 3 * cap, peak
    finally:
        server.close()


def send(pool, url, **kw):
    return pool.send(url, connect_timeout=1, read_timeout=kw.pop("read_timeout", 1), **kw)


def test_send_returns_before_the_answer_and_receive_reads_it():
    server = Server(delay_s=0.3)
    try:
        pool = ConnectionPool()
        started = time.monotonic()
        call = send(pool, server.url + "/orders/1", headers={"X-Request-ID": "abc"})
        assert time.monotonic() - started < 0.2
        assert pool.receive(call) == (200, b'{"ok":true}')
        assert server.headers[0]["X-Request-ID"] == "abc"
        assert get(pool, server.url + "/orders/2")[0] == 200
        assert server.connections == 1  # read whole: back in the pool
    finally:
        server.close()


def test_two_calls_sent_then_received_on_one_thread_are_served_at_once():
    server = Server(delay_s=0.5)
    try:
        pool = ConnectionPool()
        started = time.monotonic()
        first, second = send(pool, server.url + "/reservations/1"), send(pool, server.url + "/orders/1")
        assert pool.receive(second)[0] == pool.receive(first)[0] == 200
        elapsed = time.monotonic() - started
        assert elapsed < 0.85, elapsed  # one after the other: 1 s
        assert server.connections == 2
    finally:
        server.close()


def test_the_deadline_counts_from_send():
    server = Server(delay_s=3.0)
    try:
        pool = ConnectionPool()
        started = time.monotonic()
        call = send(pool, server.url + "/orders/1", read_timeout=2, deadline=0.6)
        time.sleep(0.4)  # time passing between send and receive, as while the order is fetched
        with pytest.raises(HTTPTimeout):
            pool.receive(call)
        elapsed = time.monotonic() - started
        assert 0.55 <= elapsed < 0.9, elapsed  # from receive it would be 1.0 s
    finally:
        server.close()


def test_a_discarded_call_closes_its_connection():
    server = Server(delay_s=0.3)
    try:
        pool = ConnectionPool()
        call = send(pool, server.url + "/orders/1")
        assert wait_until(lambda: server.paths == ["/orders/1"])
        pool.discard(call)
        assert not any(pool._idle.values())
        assert get(pool, server.url + "/orders/2") == (200, b'{"ok":true}')  # not the first answer
        # Each request on a connection of its own: the discarded one carried
        # no other. (A connection counted without a request is a handshake
        # that send found unfinished and left to receive: a busy machine.)
        assert sorted(getattr(h, "served", 0) for h in server.handlers if getattr(h, "served", 0)) == [1, 1]
    finally:
        server.close()


def test_a_stale_connection_found_by_receive_is_replaced_once():
    """The server takes the second request on the kept-alive connection and
    closes without an answer: the call is made again on a fresh one."""
    server = Server(hang_up_on=2)
    try:
        pool = ConnectionPool()
        assert get(pool, server.url + "/orders/1")[0] == 200
        call = send(pool, server.url + "/orders/2")
        assert pool.receive(call) == (200, b'{"ok":true}')
        assert server.paths == ["/orders/1", "/orders/2", "/orders/2"]
        assert server.connections == 2
    finally:
        server.close()


def test_send_fails_nothing_that_receive_does_not_raise():
    pool = ConnectionPool()
    call = send(pool, f"http://127.0.0.1:{free_port()}/orders/1")
    with pytest.raises(HTTPUnavailable):
        pool.receive(call)


def test_send_does_not_wait_for_a_connection_that_is_slow_to_come():
    """A listener whose accept queue is full drops connection attempts: send
    returns at once; receive waits for the connection up to the deadline."""
    with unaccepting_listener() as port:
        pool = ConnectionPool()
        started = time.monotonic()
        call = pool.send(f"http://127.0.0.1:{port}/orders/1", connect_timeout=5, read_timeout=5, deadline=0.5)
        assert time.monotonic() - started < 0.1
        with pytest.raises(HTTPTimeout):
            pool.receive(call)
        assert time.monotonic() - started < ceiling(0.5)


def test_the_request_id_of_the_log_context_is_passed_on_by_both_clients():
    """The clients read the id from the request's log context; no id outside a request."""
    from payment import logs
    from payment.errors import UpstreamBadResponse
    from payment.upstream.clients import OrderingClient, ReservationClient

    server = Server()
    options = dict(connect_timeout=1, read_timeout=1, deadline=2, max_response_bytes=4096)
    ordering = OrderingClient(server.url, ConnectionPool(), **options)
    reservations = ReservationClient(server.url, ConnectionPool(), **options)
    token = logs.bind(requestId="checkout-7f3a:1")
    try:
        pending = reservations.start_reservation("f47ac10b-58cc-4372-a567-0e02b2c3d479")
        # The server's `{"ok":true}` is no order: the answer is not the point here.
        with pytest.raises(UpstreamBadResponse):
            ordering.get_order("7c9e6679-7425-40de-944b-e07fc1f90ae7")
        with pytest.raises(UpstreamBadResponse):
            pending.result()
        logs.unbind(token)
        token = None
        with pytest.raises(UpstreamBadResponse):
            ordering.get_order("7c9e6679-7425-40de-944b-e07fc1f90ae7")
    finally:
        if token is not None:
            logs.unbind(token)
        server.close()
    assert [headers.get("X-Request-ID") for headers in server.headers] == ["checkout-7f3a:1", "checkout-7f3a:1", None]


def test_a_reservation_call_is_timed_from_its_start_and_an_abandoned_one_not_counted():
    from payment.errors import UpstreamBadResponse
    from payment.metrics import Metrics
    from payment.upstream.clients import ReservationClient

    server = Server(delay_s=0.2)
    metrics = Metrics()
    try:
        client = ReservationClient(server.url, ConnectionPool(), connect_timeout=1, read_timeout=1, deadline=2,
                                   max_response_bytes=4096, metrics=metrics)
        def sample(name, **labels):
            return metrics.registry.get_sample_value(name, {"service": "reservation", **labels})

        client.start_reservation("f47ac10b-58cc-4372-a567-0e02b2c3d479").abandon()
        assert not sample("payment_upstream_request_duration_seconds_count")
        pending = client.start_reservation("f47ac10b-58cc-4372-a567-0e02b2c3d479")
        time.sleep(0.3)  # time passing before the answer is read: counted, from the start
        with pytest.raises(UpstreamBadResponse):
            pending.result()  # `{"ok":true}` is no reservation
        assert sample("payment_upstream_request_duration_seconds_count") == 1
        assert sample("payment_upstream_request_duration_seconds_sum") >= 0.3
        assert sample("payment_upstream_errors_total", kind="bad_response") == 1
    finally:
        server.close()
