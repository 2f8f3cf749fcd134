"""A small HTTP/1.1 client for the upstream GETs: kept-alive connections from
the standard library's http.client, pooled per host.

A payment makes two upstream calls; through requests each cost several times
the CPU of the call itself (request preparation, hooks, cookies, adapters).
This does only what those calls need: GET, headers, a connect and a read
timeout, the status and the body.

Two limits bound a whole call, however the server paces or sizes its answer:
a deadline over connect, request, headers and body together (each socket
operation gets what is left of it, at most its own timeout, so a server that
trickles a byte at a time still ends at the deadline), and a cap on the bytes
received (status line and headers included), read in bounded pieces and
counted as they arrive: an oversized answer is dropped at the cap, never held
whole.

A kept-alive connection that the server has closed is noticed before it is
used; one that turns out dead when the request is written is replaced once by
a fresh connection (GET is idempotent). Nothing else is retried: a request is
retried by its own client.
"""

from __future__ import annotations

import functools
import http.client
import io
import select
import socket
import threading
import time
from urllib.parse import urlsplit


class HTTPTimeout(Exception):
    """No connection, or no answer, within the timeout."""


class HTTPUnavailable(Exception):
    """The connection failed, or closed before any answer."""


class HTTPBadAnswer(Exception):
    """Something answered, but not well-formed HTTP (or it was cut short)."""


class HTTPTooLarge(Exception):
    """The answer is larger than the caller allows."""


# How much of a body is asked for at once.
_PIECE = 64 * 1024


# A reused connection that fails in one of these ways before any answer was
# read was closed by the server while idle: the request never reached it.
_STALE = (ConnectionResetError, BrokenPipeError, ConnectionAbortedError, http.client.RemoteDisconnected)


class ConnectionPool:
    def __init__(self, max_idle_per_host: int = 16):
        self.max_idle = max_idle_per_host
        self._idle: dict[tuple[str, str], list[http.client.HTTPConnection]] = {}
        self._lock = threading.Lock()

    def get(self, url: str, *, connect_timeout: float, read_timeout: float,
            headers: dict | None = None, deadline: float | None = None,
            max_bytes: int | None = None) -> tuple[int, bytes]:
        """GET url; returns (status, body) or raises HTTPTimeout, HTTPUnavailable,
        HTTPBadAnswer or HTTPTooLarge. `deadline` (seconds) bounds the whole
        call; `max_bytes` what the answer may send, headers included."""
        budget = _Budget(deadline, read_timeout, max_bytes)
        parts = urlsplit(url)
        key = (parts.scheme, parts.netloc)
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        conn = self._checkout(key)
        reused = conn is not None
        try:
            if conn is None:
                conn = self._connect(parts, budget.timeout(connect_timeout))
            try:
                status, body, keep = self._exchange(conn, target, headers, budget)
            except _STALE:
                if not reused:
                    raise
                conn.close()
                conn = self._connect(parts, budget.timeout(connect_timeout))
                status, body, keep = self._exchange(conn, target, headers, budget)
        except HTTPTooLarge:
            _close(conn)
            raise
        except (TimeoutError, socket.timeout):
            _close(conn)
            raise HTTPTimeout() from None
        except (OSError, http.client.RemoteDisconnected):
            _close(conn)
            raise HTTPUnavailable() from None
        except (http.client.HTTPException, ValueError):
            _close(conn)
            raise HTTPBadAnswer() from None
        if keep:
            self._checkin(key, conn)
        else:
            conn.close()
        return status, body

    @staticmethod
    def _exchange(conn, target: str, headers: dict | None, budget: "_Budget") -> tuple[int, bytes, bool]:
        conn.sock.settimeout(budget.timeout(budget.read_timeout))
        conn.request("GET", target, headers=headers or {})
        # The response reads the socket through this call's budget.
        conn.response_class = functools.partial(_BudgetedResponse, budget=budget)
        response = conn.getresponse()
        if response.length is not None and budget.max_bytes is not None and response.length > budget.max_bytes:
            raise HTTPTooLarge()  # declared too large: its body is never read
        pieces = []
        while piece := response.read(_PIECE):
            pieces.append(piece)
        return response.status, b"".join(pieces), not response.will_close

    @staticmethod
    def _connect(parts, timeout: float) -> http.client.HTTPConnection:
        cls = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
        conn = cls(parts.hostname, parts.port, timeout=timeout)
        conn.connect()
        conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return conn

    def _checkout(self, key) -> http.client.HTTPConnection | None:
        while True:
            with self._lock:
                idle = self._idle.get(key)
                conn = idle.pop() if idle else None
            if conn is None or _alive(conn):
                return conn
            conn.close()

    def _checkin(self, key, conn) -> None:
        with self._lock:
            idle = self._idle.setdefault(key, [])
            if len(idle) < self.max_idle:
                idle.append(conn)
                return
        conn.close()

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, {}
        for conns in idle.values():
            for conn in conns:
                conn.close()


class _Budget:
    """One call's limits: the time left to its deadline and the bytes received."""

    def __init__(self, deadline: float | None, read_timeout: float, max_bytes: int | None):
        self.ends = None if deadline is None else time.monotonic() + deadline
        self.read_timeout = read_timeout
        self.max_bytes = max_bytes
        self.received = 0

    def timeout(self, limit: float) -> float:
        """`limit`, or what is left of the deadline when that is less;
        TimeoutError once nothing is left."""
        if self.ends is None:
            return limit
        left = self.ends - time.monotonic()
        if left <= 0:
            raise TimeoutError()
        return min(limit, left)

    def count(self, received: int) -> None:
        self.received += received
        if self.max_bytes is not None and self.received > self.max_bytes:
            raise HTTPTooLarge()


class _BudgetedReader(io.RawIOBase):
    """The socket as http.client reads it, each receive under the budget."""

    def __init__(self, sock: socket.socket, budget: _Budget):
        super().__init__()
        self.sock = sock
        # The socket's own raw file, as http.client would use: it keeps the
        # socket open while the response is read, even once the connection
        # has handed it over (`Connection: close`).
        self.raw = sock.makefile("rb", buffering=0)
        self.budget = budget

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        self.sock.settimeout(self.budget.timeout(self.budget.read_timeout))
        received = self.raw.readinto(buffer)
        self.budget.count(received or 0)
        return received

    def close(self) -> None:
        self.raw.close()
        super().close()


class _BudgetedSocket:
    """What an HTTPResponse asks of its socket: a file to read it through."""

    def __init__(self, sock: socket.socket, budget: _Budget):
        self.sock = sock
        self.budget = budget

    def makefile(self, mode: str):
        return io.BufferedReader(_BudgetedReader(self.sock, self.budget))


class _BudgetedResponse(http.client.HTTPResponse):
    def __init__(self, sock, *args, budget: _Budget, **kwargs):
        super().__init__(_BudgetedSocket(sock, budget), *args, **kwargs)


def _alive(conn: http.client.HTTPConnection) -> bool:
    """An idle kept-alive connection has nothing to read; if it has (EOF, or
    bytes nobody asked for), the server closed it or it is out of step."""
    if conn.sock is None:
        return False
    poller = select.poll()
    poller.register(conn.sock, select.POLLIN)
    return not poller.poll(0)


def _close(conn) -> None:
    if conn is not None:
        conn.close()
