"""The upstream HTTP client against a real local server: connections kept
alive and reused, a connection the server closed replaced without the caller
noticing, timeouts and refusals told apart."""

from __future__ import annotations

import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from payment.devstack import free_port
from payment.httpclient import ConnectionPool, HTTPBadAnswer, HTTPTimeout, HTTPUnavailable


class Server:
    """HTTP/1.1 with keep-alive; records each connection and request."""

    def __init__(self, delay_s: float = 0.0, http10: bool = False, hang_up_on: int | None = None):
        outer = self
        self.connections = 0
        self.paths: list[str] = []
        self.headers: list[dict] = []
        self.handlers: list[BaseHTTPRequestHandler] = []

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.0" if http10 else "HTTP/1.1"

            def setup(self):
                super().setup()
                outer.connections += 1
                outer.handlers.append(self)

            def do_GET(self):
                outer.paths.append(self.path)
                self.served = getattr(self, "served", 0) + 1
                if self.served == hang_up_on:
                    self.close_connection = True  # closes without an answer
                    return
                outer.headers.append(dict(self.headers))
                time.sleep(delay_s)
                body = b'{"ok":true}' if self.path != "/missing" else b"{}"
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
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def drop_connections(self) -> None:
        """Close every connection from the server's side, as an idle timeout does."""
        for handler in self.handlers:
            handler.connection.shutdown(socket.SHUT_RDWR)
        time.sleep(0.05)

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
