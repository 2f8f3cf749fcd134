"""When a request is all there, from its bytes alone (payment/server/http_framing.py)."""

from __future__ import annotations

import pytest

from payment.server import http_framing as f

LIMIT = 64 * 1024


def framing_of(*pieces: bytes) -> f.Framing:
    framing = f.Framing(LIMIT)
    for piece in pieces:
        framing.feed(piece)
    return framing


def post(body: bytes, *headers: str) -> bytes:
    lines = ["POST /payments HTTP/1.1", "Host: x", f"Content-Length: {len(body)}", *headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def test_a_get_is_complete_at_the_end_of_its_headers():
    framing = framing_of(b"GET /health/live HTTP/1.1\r\nHost: x\r\n", b"\r\n")
    assert framing.state == f.COMPLETE


def test_headers_arriving_a_byte_at_a_time():
    request = post(b"{}")
    framing = f.Framing(LIMIT)
    states = [framing.feed(request[i:i + 1]) for i in range(len(request))]
    assert states[-1] == f.COMPLETE and set(states[:-3]) == {f.HEADERS}


def test_body_waits_for_its_content_length():
    request = post(b'{"a": 1}', "X-Request-ID: abc", "Expect: 100-continue")
    framing = framing_of(request[:-1])
    assert framing.state == f.BODY
    assert framing.request_id == "abc" and framing.expects_continue
    assert framing.feed(request[-1:]) == f.COMPLETE
    assert bytes(framing.buffer) == request


def test_pipelined_bytes_stay_in_the_buffer():
    request = post(b"{}") + b"GET /health/live HTTP/1.1\r\n"
    framing = framing_of(request)
    assert framing.state == f.COMPLETE and bytes(framing.buffer) == request


def test_declared_body_over_the_limit_is_handed_over_without_it():
    framing = framing_of(b"POST /payments HTTP/1.1\r\nContent-Length: 65537\r\n\r\n{")
    assert framing.state == f.DECLARED_TOO_LARGE
    assert framing_of(b"POST / HTTP/1.1\r\nContent-Length: 65536\r\n\r\n{").state == f.BODY


def test_endless_headers_are_too_large():
    framing = framing_of(b"GET / HTTP/1.1\r\n", b"X-Pad: " + b"a" * f.MAX_HEADER_BYTES)
    assert framing.state == f.HEADERS_TOO_LARGE


@pytest.mark.parametrize("head", [
    b"POST / HTTP/1.1\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\n",
    b"POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n",
    b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n",
    b"POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n",
])
def test_framing_it_cannot_read_is_left_to_gunicorn(head):
    # Handed over as soon as the header block is complete: gunicorn refuses it.
    assert framing_of(head).state == f.COMPLETE


def test_chunked_body_complete_after_its_last_chunk_and_trailers():
    head = b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
    framing = framing_of(head, b"4;ext=1\r\n{\"a\"\r\n", b"3\r\n: 1\r\n")
    assert framing.state == f.BODY
    framing.feed(b"1\r\n}\r\n0\r\n")
    assert framing.state == f.BODY
    assert framing.feed(b"\r\n") == f.COMPLETE
    trailers = framing_of(head, b"1\r\n{\r\n0\r\nX-Trailer: 1\r\n", b"\r\n")
    assert trailers.state == f.COMPLETE


def test_chunked_body_over_the_limit():
    head = b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
    framing = framing_of(head, b"8000\r\n" + b"a" * 0x8000 + b"\r\n", b"8001\r\n")
    assert framing.state == f.BODY_TOO_LARGE


@pytest.mark.parametrize("chunks", [b"zz\r\n", b"2\r\nabc\r\n", b"1" * 2000])
def test_malformed_chunks(chunks):
    framing = framing_of(b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n", chunks)
    assert framing.state == f.MALFORMED_CHUNKS
