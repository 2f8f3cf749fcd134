"""How much of one HTTP/1.x request has arrived, from the bytes alone.

The gunicorn worker in `payment/server/read_ahead_worker.py` reads each request
without blocking, in its event loop, and only hands it to a thread once this
says it is all there. It decides nothing else: a header block it cannot frame
(conflicting Content-Length, an unknown Transfer-Encoding) is handed over as
it is, for gunicorn's parser to refuse.
"""

from __future__ import annotations

import re

# What `Framing.state` can be.
HEADERS = "headers"            # the header block is not complete yet
BODY = "body"                  # headers read, the body is not complete yet
COMPLETE = "complete"          # the request is all in `buffer`
DECLARED_TOO_LARGE = "declared too large"  # Content-Length over the limit: headers only
HEADERS_TOO_LARGE = "headers too large"
BODY_TOO_LARGE = "body too large"      # a chunked body past the limit
MALFORMED_CHUNKS = "malformed chunks"

# Headers of this service's requests are a few hundred bytes; gunicorn's own
# per-line limits still apply to what is handed over.
MAX_HEADER_BYTES = 32 * 1024
_MAX_CHUNK_LINE = 1024
_HEX = re.compile(rb"[0-9A-Fa-f]{1,16}")


def request_line(buffer: bytes | bytearray) -> tuple[str, str] | None:
    """(method, path without its query) of the request line, once it has
    arrived whole; None before, or for one that is not `METHOD target VERSION`."""
    end = buffer.find(b"\r\n", 0, MAX_HEADER_BYTES)
    if end < 0:
        return None
    parts = bytes(buffer[:end]).decode("latin-1").split(" ")
    if len(parts) != 3:
        return None
    return parts[0], parts[1].split("?", 1)[0]


class Framing:
    """Feed it bytes as they arrive; `state` says what is still missing."""

    def __init__(self, max_body_bytes: int, max_header_bytes: int = MAX_HEADER_BYTES) -> None:
        self.max_body_bytes = max_body_bytes
        self.max_header_bytes = max_header_bytes
        self.buffer = bytearray()
        self.state = HEADERS
        self.request_id: str | None = None
        self.expects_continue = False
        self._end: int | None = None        # Content-Length framing: where the request ends
        self._chunk_at = 0                  # chunked framing (no _end): where the next chunk line starts
        self._decoded = 0

    def feed(self, data: bytes) -> str:
        self.buffer += data
        if self.state == HEADERS:
            self._read_headers()
        if self.state == BODY:
            self._read_body()
        return self.state

    def _read_headers(self) -> None:
        head_end = self.buffer.find(b"\r\n\r\n")
        if head_end < 0:
            if len(self.buffer) > self.max_header_bytes:
                self.state = HEADERS_TOO_LARGE
            return
        if head_end + 4 > self.max_header_bytes:
            self.state = HEADERS_TOO_LARGE
            return
        body_at = head_end + 4
        request_line, *lines = bytes(self.buffer[:head_end]).decode("latin-1").split("\r\n")
        fields: dict[str, list[str]] = {}
        for line in lines:
            name, _, value = line.partition(":")
            fields.setdefault(name.strip().lower(), []).append(value.strip())
        ids = fields.get("x-request-id")
        self.request_id = ids[0] if ids else None
        http11 = request_line.rstrip().endswith("HTTP/1.1")
        self.expects_continue = http11 and any(
            v.lower() == "100-continue" for v in fields.get("expect", []))
        self._frame_body(body_at, fields)

    def _frame_body(self, body_at: int, fields: dict[str, list[str]]) -> None:
        encodings = fields.get("transfer-encoding")
        lengths = fields.get("content-length")
        if encodings:
            codings = [c.strip().lower() for v in encodings for c in v.split(",")]
            if lengths or codings[-1] != "chunked":
                self._hand_over_as_is()
                return
            self._chunk_at = body_at
            self.state = BODY
            return
        if not lengths:
            self._end = body_at
            self.state = BODY
            return
        if len(set(lengths)) != 1 or not lengths[0].isdigit():
            self._hand_over_as_is()
            return
        length = int(lengths[0])
        if length > self.max_body_bytes:
            # The application answers 413 from the headers; the body is never read.
            self.state = DECLARED_TOO_LARGE
            return
        self._end = body_at + length
        self.state = BODY

    def _hand_over_as_is(self) -> None:
        # The header block is complete: gunicorn refuses it without reading more.
        self.state = COMPLETE

    def _read_body(self) -> None:
        if self._end is not None:
            if len(self.buffer) >= self._end:
                self.state = COMPLETE
            return
        while self.state == BODY:
            if not self._next_chunk():
                return

    def _next_chunk(self) -> bool:
        """Consume one chunk if it is all there; False when more bytes are needed."""
        at = self._chunk_at
        line_end = self.buffer.find(b"\r\n", at, at + _MAX_CHUNK_LINE)
        if line_end < 0:
            if len(self.buffer) - at >= _MAX_CHUNK_LINE:
                self.state = MALFORMED_CHUNKS
            return False
        size_text = bytes(self.buffer[at:line_end]).split(b";", 1)[0].strip()
        if not _HEX.fullmatch(size_text):
            self.state = MALFORMED_CHUNKS
            return False
        size = int(size_text, 16)
        if size == 0:
            return self._trailers(line_end + 2)
        self._decoded += size
        if self._decoded > self.max_body_bytes:
            self.state = BODY_TOO_LARGE
            return False
        data_end = line_end + 2 + size
        if len(self.buffer) < data_end + 2:
            return False
        if self.buffer[data_end:data_end + 2] != b"\r\n":
            self.state = MALFORMED_CHUNKS
            return False
        self._chunk_at = data_end + 2
        return True

    def _trailers(self, at: int) -> bool:
        if self.buffer[at:at + 2] == b"\r\n":
            self.state = COMPLETE
            return False
        end = self.buffer.find(b"\r\n\r\n", at)
        if end >= 0:
            self.state = COMPLETE
        elif len(self.buffer) - at > self.max_header_bytes:
            self.state = MALFORMED_CHUNKS
        return False
