"""A gunicorn worker that reads each request whole before a thread serves it.

gunicorn's gthread worker hands a connection to a thread as soon as its first
byte arrives; the thread then blocks reading headers and body. A client that
sends a little and stops holds that thread, and a few dozen such clients hold
them all: nothing else is answered (docs/reliability.md). The service is
published directly, with no proxy in front to buffer requests for it, so this
worker does what such a proxy would: its event loop reads headers and body
without blocking, up to the body limit (`MAX_BODY_BYTES`), and a thread only
ever gets a request that is all there. A request not complete in time is
answered 408 in the documented envelope and closed:

- the header block within `HTTP_HEADER_TIMEOUT_S` of its first byte (of the
  connection, for a new one),
- the body within `HTTP_BODY_TIMEOUT_S` of the end of the headers.

Connections idle between requests wait in the event loop (gunicorn's
keep-alive handling), and so do connections being closed, which linger to
let the client read the answer without holding up the loop.
"""

from __future__ import annotations

import errno
import logging
import selectors
import socket
import time
from functools import partial
from typing import TYPE_CHECKING, Any

from gunicorn import http
from gunicorn.http import errors as parse_errors
from gunicorn.workers.gthread import TConn, ThreadWorker

from payment import jsonio
from payment.api.request_id import request_id_from
from payment.config import Config
from payment.server import http_framing

if TYPE_CHECKING:
    # Only for the annotation: gunicorn's master imports this module before
    # gunicorn.conf.py sets PROMETHEUS_MULTIPROC_DIR, which prometheus_client
    # reads once, at import (payment/metrics.py).
    from payment.metrics import Metrics

log = logging.getLogger(__name__)

# How long a closing connection may keep sending before it is cut (gunicorn
# lingers as long, but blocking the thread that closes).
LINGER_S = 2.0
_LINGER_BYTES = 64 * 1024

ANSWERS = {
    408: ("Request Timeout", "Request timeout: the request was not received in time"),
    413: ("Content Too Large", "Invalid request: body is larger than {kib} KiB"),
    431: ("Request Header Fields Too Large", "Invalid request: request headers are too large"),
    400: ("Bad Request", "Invalid request: malformed chunked body"),
}
_STATUS_OF = {
    http_framing.HEADERS_TOO_LARGE: 431,
    http_framing.BODY_TOO_LARGE: 413,
    http_framing.MALFORMED_CHUNKS: 400,
}
# Each answer's kind and error code, as the app names its refusals (payment/api/error_handlers.py).
KINDS = {408: "request_timeout", 413: "too_large", 431: "headers_too_large", 400: "malformed_chunks"}
# A request gunicorn's parser refuses (a bad request line, header or chunk):
# answered here in the envelope, as every refusal is, rather than with
# gunicorn's HTML page quoting what the client sent. (errors, status,
# reason, kind, message)
_MALFORMED_ANSWERS = (
    (parse_errors.LimitRequestLine, 414, "URI Too Long", "uri_too_long",
     "Invalid request: the request line is too long"),
    (parse_errors.LimitRequestHeaders, 431, "Request Header Fields Too Large", "headers_too_large",
     "Invalid request: request headers are too large"),
    (parse_errors.ExpectationFailed, 417, "Expectation Failed", "expectation_failed",
     "Invalid request: the Expect header is not supported"),
    ((parse_errors.InvalidRequestLine, parse_errors.InvalidRequestMethod, parse_errors.InvalidHTTPVersion,
      parse_errors.InvalidHeader, parse_errors.InvalidHeaderName, parse_errors.InvalidProxyLine,
      parse_errors.InvalidSchemeHeaders, parse_errors.ObsoleteFolding, parse_errors.InvalidH2CPreface,
      parse_errors.InvalidChunkSize, parse_errors.ChunkMissingTerminator, parse_errors.InvalidChunkExtension),
     400, "Bad Request", "malformed_http", "Invalid request: malformed HTTP request"),
)
CODES = {408: "REQUEST_TIMEOUT", 413: "BODY_TOO_LARGE", 431: "HEADERS_TOO_LARGE", 400: "MALFORMED_CHUNKS"}
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "CONNECT"})


class ReadAheadConn(TConn):
    """gunicorn's connection, plus what the event loop knows about its request."""

    def __init__(self, worker: ReadAheadWorker, *args: Any) -> None:
        super().__init__(*args)
        self.worker = worker
        self.framing: http_framing.Framing | None = None
        self.deadline = 0.0
        self.body_unread = False   # handed over without its (too large) body
        self.registered = False    # with the poller, for reading
        self.lingering = 0

    def init(self) -> None:
        super().init()
        # A thread only gets a request that is all there, so it should never
        # wait on this socket; if it does (a framing gunicorn reads otherwise,
        # a client that does not read its answer), not for longer than this.
        self.sock.settimeout(self.worker.body_timeout)

    def close(self, graceful: bool = False) -> None:
        if graceful:
            self.worker.linger(self)
        else:
            super().close()


class ReadAheadWorker(ThreadWorker):

    @classmethod
    def check_config(cls, cfg: Any, log: Any) -> None:
        super().check_config(cfg, log)
        if cfg.is_ssl:
            raise RuntimeError("ReadAheadWorker serves plain HTTP/1.x; terminate TLS in front of it")

    def init_process(self) -> None:
        # gunicorn.conf.py has already refused a bad configuration at start-up.
        config = Config.from_env()
        self.header_timeout = config.http_header_timeout
        self.body_timeout = config.http_body_timeout
        self.max_body_bytes = config.max_body_bytes
        self.reading: dict[ReadAheadConn, None] = {}   # insertion-ordered set
        self.lingering: dict[ReadAheadConn, float] = {}
        # The app's metrics, once it is loaded (gunicorn.conf.py's post_worker_init):
        # the answers given here are counted with the app's.
        self.metrics: Metrics | None = None
        super().init_process()

    def accept(self, listener: socket.socket) -> None:
        try:
            client_sock, client_addr = listener.accept()
        except OSError as e:
            if e.errno not in (errno.EAGAIN, errno.ECONNABORTED, errno.EWOULDBLOCK):
                raise
            return
        self.nr_conns += 1
        conn = ReadAheadConn(self, self.cfg, client_sock, client_addr, listener.getsockname())
        self.enqueue_req(conn)

    def enqueue_req(self, conn: ReadAheadConn) -> None:
        """Every path to a thread (a new connection, a kept-alive one with a
        new request, bytes left over from the last one) reads the request first."""
        conn.sock.setblocking(False)
        conn.framing = http_framing.Framing(self.max_body_bytes)
        conn.deadline = time.monotonic() + self.header_timeout
        self.reading[conn] = None
        leftover = conn.parser.unreader.take_buffered() if conn.parser is not None else b""
        if leftover:
            self._advance(conn, leftover)
        # A kept-alive connection is here because its next request arrived, and
        # a new one has often sent its request already: reading at once spares
        # a turn of the loop.
        if conn in self.reading:
            self._read(conn)
        if conn in self.reading:
            self.poller.register(conn.sock, selectors.EVENT_READ, partial(self._on_readable, conn))
            conn.registered = True

    def _on_readable(self, conn: ReadAheadConn, _sock: socket.socket) -> None:
        self._read(conn)

    def _read(self, conn: ReadAheadConn) -> None:
        data = _receive(conn.sock)
        if data is None:
            return
        if not data:
            self._stop_reading(conn)
            self.nr_conns -= 1
            conn.close()
            return
        self._advance(conn, data)

    def _advance(self, conn: ReadAheadConn, data: bytes) -> None:
        framing = _framing(conn)
        before = framing.state
        state = framing.feed(data)
        if state == http_framing.BODY:
            if before == http_framing.HEADERS:
                conn.deadline = time.monotonic() + self.body_timeout
                if framing.expects_continue:
                    self._send(conn, b"HTTP/1.1 100 Continue\r\n\r\n")
            return
        if state == http_framing.HEADERS:
            return
        self._stop_reading(conn)
        if state in (http_framing.COMPLETE, http_framing.DECLARED_TOO_LARGE):
            self._hand_to_thread(conn, body_unread=state == http_framing.DECLARED_TOO_LARGE)
        else:
            self._answer(conn, _STATUS_OF[state])

    def _hand_to_thread(self, conn: ReadAheadConn, body_unread: bool) -> None:
        if conn.parser is None:
            conn.parser = http.get_parser(self.cfg, conn.sock, conn.client)
        conn.parser.unreader.unread(bytes(_framing(conn).buffer))
        conn.framing = None
        conn.body_unread = body_unread
        conn.data_ready = True   # gunicorn's own wait for a first byte is over
        super().enqueue_req(conn)

    def _keepalive_after(self, conn: ReadAheadConn, keepalive: bool) -> bool:
        # A body too large to read is not drained by a thread: the connection
        # is closed after the 413 instead.
        if conn.body_unread:
            return False
        return bool(super()._keepalive_after(conn, keepalive))

    def _stop_reading(self, conn: ReadAheadConn) -> None:
        self.reading.pop(conn, None)
        if conn.registered:
            conn.registered = False
            try:
                self.poller.unregister(conn.sock)
            except (KeyError, ValueError, OSError):
                pass

    def _answer(self, conn: ReadAheadConn, status: int) -> None:
        """The worker's own answer to a request no thread will see, then close."""
        reason, message = ANSWERS[status]
        request_id = request_id_from(conn.framing.request_id if conn.framing else None)
        message = message.format(kib=self.max_body_bytes // 1024)
        self._send(conn, _envelope_answer(status, reason, message, request_id))
        line = http_framing.request_line(conn.framing.buffer) if conn.framing else None
        method, path = line or ("", "")
        self._count(method, path, status)
        log.info("request", extra={"requestId": request_id, "status": status, "route": None,
                                   "errorKind": KINDS[status], "reason": message,
                                   "client": conn.client[0] if conn.client else None})
        self.nr_conns -= 1
        self.linger(conn)

    def handle_error(self, req: object, client: socket.socket, addr: tuple[str, int] | None,
                     exc: BaseException) -> None:
        """A request gunicorn's parser refused: the envelope, counted and
        logged like the others (the parser's message, which quotes what the
        client sent, is left out). Anything else is gunicorn's to answer."""
        answer = next((answer[1:] for answer in _MALFORMED_ANSWERS if isinstance(exc, answer[0])), None)
        if answer is None:
            super().handle_error(req, client, addr, exc)
            return
        status, reason, kind, message = answer
        request_id = request_id_from(None)
        try:
            client.sendall(_envelope_answer(status, reason, message, request_id))
        except OSError:
            pass
        if self.metrics is not None:
            self.metrics.refused_unread("other", status, kind, payment_code=None)
        log.info("request", extra={"requestId": request_id, "status": status, "route": None,
                                   "errorKind": kind, "reason": type(exc).__name__,
                                   "client": addr[0] if addr else None})

    def _count(self, method: str, path: str, status: int) -> None:
        if self.metrics is None:
            return
        paying = (method, path) == ("POST", "/payments")
        self.metrics.refused_unread(method if method in _METHODS else "other", status, KINDS[status],
                                    payment_code=CODES[status] if paying else None)

    @staticmethod
    def _send(conn: ReadAheadConn, data: bytes) -> None:
        # Small answers fit the socket's send buffer; a client that does not
        # read them loses them rather than holding the loop.
        try:
            conn.sock.send(data)
        except OSError:
            pass

    def linger(self, conn: ReadAheadConn) -> None:
        """Close after the answer without cutting it: half-close, then read and
        drop what the client still sends until it closes, at most LINGER_S."""
        try:
            conn.sock.setblocking(False)
            conn.sock.shutdown(socket.SHUT_WR)
            self.poller.register(conn.sock, selectors.EVENT_READ, partial(self._on_lingering, conn))
        except (OSError, ValueError, KeyError):
            TConn.close(conn)
            return
        self.lingering[conn] = time.monotonic() + LINGER_S

    def _on_lingering(self, conn: ReadAheadConn, _sock: socket.socket) -> None:
        data = _receive(conn.sock)
        if data is None:
            return
        conn.lingering += len(data)
        if not data or conn.lingering > _LINGER_BYTES:
            self._close_lingering(conn)

    def _close_lingering(self, conn: ReadAheadConn) -> None:
        self.lingering.pop(conn, None)
        try:
            self.poller.unregister(conn.sock)
        except (KeyError, ValueError, OSError):
            pass
        TConn.close(conn)

    def murder_pending(self) -> None:
        """Run every turn of gunicorn's loop: requests past their deadline get
        their 408, lingering connections past theirs are closed."""
        super().murder_pending()
        now = time.monotonic()
        for conn in [c for c in self.reading if c.deadline <= now]:
            self._stop_reading(conn)
            self._answer(conn, 408)
        for conn in [c for c, deadline in self.lingering.items() if deadline <= now]:
            self._close_lingering(conn)


def _framing(conn: ReadAheadConn) -> http_framing.Framing:
    """The framing of a connection the loop is reading (enqueue_req sets it)."""
    if conn.framing is None:
        raise RuntimeError("a connection read without its framing")
    return conn.framing


def _envelope_answer(status: int, reason: str, message: str, request_id: str) -> bytes:
    """A whole response in the documented envelope, closing the connection."""
    body = jsonio.dumps({"success": False, "errorMessage": message, "payment": None}).encode()
    head = (f"HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\nX-Request-ID: {request_id}\r\n\r\n")
    return head.encode("latin-1") + body


def _receive(sock: socket.socket) -> bytes | None:
    """What a non-blocking socket has: bytes, b"" once the peer is gone (or
    the socket failed), None when nothing is there yet."""
    try:
        return sock.recv(65536)
    except (BlockingIOError, InterruptedError):
        return None
    except OSError:
        return b""
