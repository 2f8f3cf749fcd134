"""A sandbox ordering and reservation service, for `make run` and the tests.

It answers the two calls the payment service makes, from memory, seeded with
the contract's example order, customer and an active reservation:

    GET /orders/{id}         -> {"id", "customerId", "totalAmount", "currency", "status"} | 404
    GET /reservations/{id}   -> {"id", "customerId", "status", "expiresAt"} | 404

and lets a test arrange the world over HTTP:

    PUT /orders/{id}, PUT /reservations/{id}     store a document
    PUT /_script  {"path", "status", "body", "contentType", "delayMs",
                   "trickleMs", "padBytes", "declareLength"}
                                                 answer that path this way instead:
                                                 after delayMs, the body one byte every
                                                 trickleMs, followed by padBytes of
                                                 spaces (still the same JSON), with a
                                                 Content-Length unless declareLength
                                                 is false (then the close ends it)
    PUT /_latency {"delayMs"}                    answer every order and reservation
                                                 (scripted ones too) delayMs later
    GET /_calls                                  {"calls": [path], "requestIds": [X-Request-ID]}
    POST /_reset                                 back to the seed
"""

from __future__ import annotations

import json
import socketserver
import threading
import time
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import falcon

EXAMPLE_ORDER_ID = "7c9e6679-7425-40de-944b-e07fc1f90ae7"
EXAMPLE_CUSTOMER_ID = "a8098c1a-f86e-11da-bd1a-00112444be1e"
EXAMPLE_RESERVATION_ID = "f47ac10b-58cc-4372-a567-0e02b2c3d479"


# A document as the sandbox serves it: JSON values by field.
Document = dict[str, Any]


def seed() -> tuple[dict[str, Document], dict[str, Document]]:
    expires = (datetime.now(timezone.utc) + timedelta(days=365)).strftime("%Y-%m-%dT%H:%M:%SZ")
    orders = {EXAMPLE_ORDER_ID: {
        "id": EXAMPLE_ORDER_ID, "customerId": EXAMPLE_CUSTOMER_ID,
        "totalAmount": 150.00, "currency": "USD", "status": "pending",
    }}
    reservations = {EXAMPLE_RESERVATION_ID: {
        "id": EXAMPLE_RESERVATION_ID, "customerId": EXAMPLE_CUSTOMER_ID,
        "status": "active", "expiresAt": expires,
    }}
    return orders, reservations


class _State:
    def __init__(self, latency_ms: int = 0) -> None:
        self.lock = threading.Lock()
        self.initial_latency_s = latency_ms / 1000
        self.reset()

    def reset(self) -> None:
        self.orders, self.reservations = seed()
        self.scripts: dict[str, Document] = {}
        self.latency_s = self.initial_latency_s
        self.calls: list[str] = []
        self.request_ids: list[str | None] = []


class _Documents:
    def __init__(self, state: _State, collection: str) -> None:
        self.state = state
        self.collection = collection

    # Identifiers are GUIDs, matched case-insensitively as the platform's
    # .NET services do.
    def on_get(self, req: falcon.Request, resp: falcon.Response, doc_id: str) -> None:
        document = getattr(self.state, self.collection).get(doc_id.lower())
        if document is None:
            resp.status = 404
            resp.media = {"title": "not found"}
        else:
            resp.media = document

    def on_put(self, req: falcon.Request, resp: falcon.Response, doc_id: str) -> None:
        with self.state.lock:
            getattr(self.state, self.collection)[doc_id.lower()] = req.get_media()
        resp.status = 204


class _Script:
    def __init__(self, state: _State) -> None:
        self.state = state

    def on_put(self, req: falcon.Request, resp: falcon.Response) -> None:
        script = req.get_media()
        with self.state.lock:
            self.state.scripts[script["path"]] = script
        resp.status = 204


class _Latency:
    def __init__(self, state: _State) -> None:
        self.state = state

    def on_put(self, req: falcon.Request, resp: falcon.Response) -> None:
        delay_ms = req.get_media()["delayMs"]
        with self.state.lock:
            self.state.latency_s = delay_ms / 1000
        resp.status = 204


class _Reset:
    def __init__(self, state: _State) -> None:
        self.state = state

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        with self.state.lock:
            self.state.reset()
        resp.status = 204


class _Calls:
    def __init__(self, state: _State) -> None:
        self.state = state

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.media = {"calls": list(self.state.calls), "requestIds": list(self.state.request_ids)}


class _Scripted:
    """Answers a scripted path as told: a status, raw bytes, a delay."""

    def __init__(self, state: _State) -> None:
        self.state = state

    def process_request(self, req: falcon.Request, resp: falcon.Response) -> None:
        if req.method == "GET" and not req.path.startswith("/_"):
            with self.state.lock:
                self.state.calls.append(req.path)
                self.state.request_ids.append(req.get_header("X-Request-ID"))
            if self.state.latency_s:
                # The network and the services' own work, as the payment service meets them.
                time.sleep(self.state.latency_s)
        script = self.state.scripts.get(req.path) if req.method == "GET" else None
        if script is None:
            return
        time.sleep(script.get("delayMs", 0) / 1000)
        resp.status = script.get("status", 200)
        resp.content_type = script.get("contentType", "application/json")
        body, pad = script.get("body", "").encode(), script.get("padBytes", 0)
        if script.get("trickleMs") or pad or script.get("declareLength") is False:
            resp.stream = _stream(body, pad, script.get("trickleMs", 0) / 1000)
            if script.get("declareLength", True):
                resp.content_length = len(body) + pad
        else:
            resp.data = body
        resp.complete = True


def _stream(body: bytes, pad: int, trickle_s: float) -> Iterator[bytes]:
    """The body a byte at a time (trickled) or whole, then the padding in
    64 KiB pieces: a huge answer is never held in memory at once."""
    if trickle_s:
        for index in range(len(body)):
            time.sleep(trickle_s)
            yield body[index:index + 1]
    elif body:
        yield body
    piece = b" " * 65536
    while pad > 0:
        yield piece[:pad]
        pad -= len(piece)


def create_sandbox_app(latency_ms: int = 0) -> falcon.App[falcon.Request, falcon.Response]:
    state = _State(latency_ms)
    app = falcon.App(middleware=(_Scripted(state),))
    app.add_route("/orders/{doc_id}", _Documents(state, "orders"))
    app.add_route("/reservations/{doc_id}", _Documents(state, "reservations"))
    app.add_route("/_script", _Script(state))
    app.add_route("/_latency", _Latency(state))
    app.add_route("/_reset", _Reset(state))
    app.add_route("/_calls", _Calls(state))
    return app


class _ThreadingServer(socketserver.ThreadingMixIn, WSGIServer):
    daemon_threads = True
    allow_reuse_address = True
    # socketserver's default backlog of 5 drops connections under a burst.
    request_queue_size = 256


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


def make_sandbox_server(host: str = "127.0.0.1", port: int = 0, latency_ms: int = 0) -> WSGIServer:
    """A threaded HTTP server; `server.server_port` is the port it took.
    `latency_ms`: the delay of every order and reservation answer, which
    `PUT /_latency` changes and `POST /_reset` puts back."""
    return make_server(host, port, create_sandbox_app(latency_ms),
                       server_class=_ThreadingServer, handler_class=_QuietHandler)


def serve(host: str, port: int, latency_ms: int = 0) -> None:
    server = make_sandbox_server(host, port, latency_ms)
    print(json.dumps({"sandbox": f"http://{host}:{server.server_port}"}), flush=True)
    server.serve_forever()
