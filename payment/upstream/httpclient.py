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

A call is made in two halves, `send` and `receive` (`get` is both), so that
one thread can have two calls under way at once: it sends one, makes the
other whole, then reads the first one's answer, and both servers work at the
same time without a thread of their own. `send` never waits for a server: it
writes the request on a kept-alive connection, or on a new one when that is
made at once; otherwise the connection is made by `receive`, within the
deadline, which counts from `send`. A call whose answer is no longer wanted
is `discard`ed: its connection is closed, never pooled with an answer still
to come on it.

A kept-alive connection that the server has closed is noticed before it is
used; one that turns out dead when the request is written, or that closes
before any answer, is replaced once by a fresh connection (GET is
idempotent). Nothing else is retried: a request is retried by its own client.
"""

from __future__ import annotations

import errno
import functools
import http.client
import io
import select
import socket
import threading
import time
from typing import TYPE_CHECKING, Any, cast
from urllib.parse import SplitResult, urlsplit

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer


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
    def __init__(self, max_idle_per_host: int = 16) -> None:
        self.max_idle = max_idle_per_host
        self._idle: dict[tuple[str, str], list[http.client.HTTPConnection]] = {}
        self._lock = threading.Lock()

    def get(self, url: str, *, connect_timeout: float, read_timeout: float,
            headers: dict[str, str] | None = None, deadline: float | None = None,
            max_bytes: int | None = None) -> tuple[int, bytes]:
        """GET url; returns (status, body) or raises HTTPTimeout, HTTPUnavailable,
        HTTPBadAnswer or HTTPTooLarge. `deadline` (seconds) bounds the whole
        call; `max_bytes` what the answer may send, headers included."""
        return self.receive(self.send(url, connect_timeout=connect_timeout, read_timeout=read_timeout,
                                      headers=headers, deadline=deadline, max_bytes=max_bytes))

    def send(self, url: str, *, connect_timeout: float, read_timeout: float,
             headers: dict[str, str] | None = None, deadline: float | None = None,
             max_bytes: int | None = None) -> "Call":
        """The first half of `get`: write the request and return at once, so
        that the caller can do something else (another call) while the server
        works. The deadline counts from here. Never raises: a failure is
        raised by `receive`, when the caller asks for the answer."""
        parts = urlsplit(url)
        call = Call(parts, (parts.path or "/") + (f"?{parts.query}" if parts.query else ""), headers,
                    _Budget(deadline, read_timeout, max_bytes), connect_timeout)
        call.conn = self._checkout(call.key)
        call.reused = call.conn is not None
        try:
            if call.conn is None:
                call.conn = _connect_at_once(parts)
            if call.conn is not None:
                try:
                    _write(call)
                except _STALE:
                    if not call.reused:
                        raise
                    call.conn.close()
                    call.reused = False
                    call.conn = _connect_at_once(parts)
                    if call.conn is not None:
                        _write(call)
        except Exception as exc:  # noqa: BLE001 - kept for receive, which raises it
            _close(call.conn)
            call.conn, call.failure = None, exc
        return call

    def receive(self, call: "Call") -> tuple[int, bytes]:
        """The answer to a sent call, as `get` returns it or raises. The
        connection goes back to the pool only when the answer was read whole
        and the server keeps it alive."""
        budget = call.budget
        try:
            if call.failure is not None:
                raise call.failure
            if not call.sent:
                # No connection could be made at once: made now, within the deadline.
                call.conn = self._connect(call.parts, budget.timeout(call.connect_timeout))
                _write(call)
            try:
                status, body, keep = _read(_connection(call), budget)
            except _STALE:
                if not call.reused:
                    raise
                _connection(call).close()
                call.reused = False
                call.conn = self._connect(call.parts, budget.timeout(call.connect_timeout))
                _write(call)
                status, body, keep = _read(_connection(call), budget)
        except HTTPTooLarge:
            self.discard(call)
            raise
        except (TimeoutError, socket.timeout):
            self.discard(call)
            raise HTTPTimeout() from None
        except (OSError, http.client.RemoteDisconnected):
            self.discard(call)
            raise HTTPUnavailable() from None
        except (http.client.HTTPException, ValueError):
            self.discard(call)
            raise HTTPBadAnswer() from None
        conn, call.conn = _connection(call), None
        if keep:
            self._checkin(call.key, conn)
        else:
            conn.close()
        return status, body

    @staticmethod
    def discard(call: "Call") -> None:
        """The answer is no longer wanted: its connection is closed, never
        pooled with an answer still to come on it."""
        _close(call.conn)
        call.conn = None

    @staticmethod
    def _connect(parts: SplitResult, timeout: float) -> http.client.HTTPConnection:
        cls = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
        conn = cls(_host(parts), parts.port, timeout=timeout)
        conn.connect()
        conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return conn

    def _checkout(self, key: tuple[str, str]) -> http.client.HTTPConnection | None:
        while True:
            with self._lock:
                idle = self._idle.get(key)
                conn = idle.pop() if idle else None
            if conn is None or _alive(conn):
                return conn
            conn.close()

    def _checkin(self, key: tuple[str, str], conn: http.client.HTTPConnection) -> None:
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


class Call:
    """A GET between `send` and `receive`: its connection (None before one
    is made, or once the call is over), its budget, and a failure of `send`
    kept for `receive` to raise."""

    __slots__ = ("parts", "key", "target", "headers", "budget", "connect_timeout", "conn", "reused", "sent",
                 "failure")

    def __init__(self, parts: SplitResult, target: str, headers: dict[str, str] | None, budget: _Budget,
                 connect_timeout: float) -> None:
        self.parts = parts
        self.key = (parts.scheme, parts.netloc)
        self.target = target
        self.headers = headers or {}
        self.budget = budget
        self.connect_timeout = connect_timeout
        self.conn: http.client.HTTPConnection | None = None
        self.reused = False
        self.sent = False
        self.failure: BaseException | None = None


def _connection(call: Call) -> http.client.HTTPConnection:
    """The call's connection: there from the moment it is written to until
    the answer is read (a call without one failed to connect)."""
    if call.conn is None:
        raise HTTPUnavailable()
    return call.conn


def _write(call: Call) -> None:
    conn = _connection(call)
    conn.sock.settimeout(call.budget.timeout(call.budget.read_timeout))
    conn.request("GET", call.target, headers=call.headers)
    call.sent = True


def _read(conn: http.client.HTTPConnection, budget: _Budget) -> tuple[int, bytes, bool]:
    # The response reads the socket through this call's budget.
    # http.client calls response_class as it would the class.
    conn.response_class = cast(type[http.client.HTTPResponse], functools.partial(_BudgetedResponse, budget=budget))
    response = conn.getresponse()
    if response.length is not None and budget.max_bytes is not None and response.length > budget.max_bytes:
        raise HTTPTooLarge()  # declared too large: its body is never read
    pieces: list[bytes] = []
    while piece := response.read(_PIECE):
        pieces.append(piece)
    return response.status, b"".join(pieces), not response.will_close


def _host(parts: SplitResult) -> str:
    # The configuration refuses a URL without a host (config._url).
    if parts.hostname is None:
        raise ValueError("the URL names no host")
    return parts.hostname


def _connect_at_once(parts: SplitResult) -> http.client.HTTPConnection | None:
    """A new plain-HTTP connection if its handshake is over as soon as it is
    asked for (a server on this host, or one as near), else None: `send`
    never waits for a connection, so that a server that drops connection
    attempts holds up nothing the caller does meanwhile; `receive` then
    connects the usual way. TLS is always left to `receive`: its handshake
    is a wait too."""
    if parts.scheme != "http":
        return None
    try:
        family, kind, proto, _, address = socket.getaddrinfo(_host(parts), parts.port or 80,
                                                             type=socket.SOCK_STREAM)[0]
    except OSError:
        return None
    sock = socket.socket(family, kind, proto)
    try:
        sock.setblocking(False)
        if sock.connect_ex(address) not in (0, errno.EINPROGRESS):
            sock.close()
            return None
        poller = select.poll()
        poller.register(sock, select.POLLOUT)
        if not poller.poll(0) or sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR):
            # Not connected yet, or refused: the connect of `receive` tells which.
            sock.close()
            return None
        sock.setblocking(True)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    except OSError:
        sock.close()
        return None
    conn = http.client.HTTPConnection(_host(parts), parts.port)
    conn.sock = sock
    return conn


class _Budget:
    """One call's limits: the time left to its deadline and the bytes received."""

    def __init__(self, deadline: float | None, read_timeout: float, max_bytes: int | None) -> None:
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

    def __init__(self, sock: socket.socket, budget: _Budget) -> None:
        super().__init__()
        self.sock = sock
        # The socket's own raw file, as http.client would use: it keeps the
        # socket open while the response is read, even once the connection
        # has handed it over (`Connection: close`).
        self.raw = sock.makefile("rb", buffering=0)
        self.budget = budget

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: WriteableBuffer) -> int | None:
        self.sock.settimeout(self.budget.timeout(self.budget.read_timeout))
        received = self.raw.readinto(buffer)
        self.budget.count(received or 0)
        return received

    def close(self) -> None:
        self.raw.close()
        super().close()


class _BudgetedSocket:
    """What an HTTPResponse asks of its socket: a file to read it through."""

    def __init__(self, sock: socket.socket, budget: _Budget) -> None:
        self.sock = sock
        self.budget = budget

    def makefile(self, mode: str) -> io.BufferedReader:
        return io.BufferedReader(_BudgetedReader(self.sock, self.budget))


class _BudgetedResponse(http.client.HTTPResponse):
    def __init__(self, sock: socket.socket, *args: Any, budget: _Budget, **kwargs: Any) -> None:
        # HTTPResponse asks its socket for makefile() alone.
        super().__init__(cast(socket.socket, _BudgetedSocket(sock, budget)), *args, **kwargs)


def _alive(conn: http.client.HTTPConnection) -> bool:
    """An idle kept-alive connection has nothing to read; if it has (EOF, or
    bytes nobody asked for), the server closed it or it is out of step."""
    if conn.sock is None:
        return False
    poller = select.poll()
    poller.register(conn.sock, select.POLLIN)
    return not poller.poll(0)


def _close(conn: http.client.HTTPConnection | None) -> None:
    if conn is not None:
        conn.close()
