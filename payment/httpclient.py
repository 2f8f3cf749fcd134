"""A small HTTP/1.1 client for the upstream GETs: kept-alive connections from
the standard library's http.client, pooled per host.

A payment makes two upstream calls; through requests each cost several times
the CPU of the call itself (request preparation, hooks, cookies, adapters).
This does only what those calls need: GET, headers, a connect and a read
timeout, the status and the body.

A kept-alive connection that the server has closed is noticed before it is
used; one that turns out dead when the request is written is replaced once by
a fresh connection (GET is idempotent). Nothing else is retried: a request is
retried by its own client.
"""

from __future__ import annotations

import http.client
import select
import socket
import threading
from urllib.parse import urlsplit


class HTTPTimeout(Exception):
    """No connection, or no answer, within the timeout."""


class HTTPUnavailable(Exception):
    """The connection failed, or closed before any answer."""


class HTTPBadAnswer(Exception):
    """Something answered, but not well-formed HTTP (or it was cut short)."""


# A reused connection that fails in one of these ways before any answer was
# read was closed by the server while idle: the request never reached it.
_STALE = (ConnectionResetError, BrokenPipeError, ConnectionAbortedError, http.client.RemoteDisconnected)


class ConnectionPool:
    def __init__(self, max_idle_per_host: int = 16):
        self.max_idle = max_idle_per_host
        self._idle: dict[tuple[str, str], list[http.client.HTTPConnection]] = {}
        self._lock = threading.Lock()

    def get(self, url: str, *, connect_timeout: float, read_timeout: float,
            headers: dict | None = None) -> tuple[int, bytes]:
        """GET url; returns (status, body) or raises HTTPTimeout, HTTPUnavailable or HTTPBadAnswer."""
        parts = urlsplit(url)
        key = (parts.scheme, parts.netloc)
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        conn = self._checkout(key)
        reused = conn is not None
        try:
            if conn is None:
                conn = self._connect(parts, connect_timeout)
            conn.sock.settimeout(read_timeout)
            try:
                status, body, keep = self._exchange(conn, target, headers)
            except _STALE:
                if not reused:
                    raise
                conn.close()
                conn = self._connect(parts, connect_timeout)
                conn.sock.settimeout(read_timeout)
                status, body, keep = self._exchange(conn, target, headers)
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
    def _exchange(conn, target: str, headers: dict | None) -> tuple[int, bytes, bool]:
        conn.request("GET", target, headers=headers or {})
        response = conn.getresponse()
        body = response.read()
        return response.status, body, not response.will_close

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
