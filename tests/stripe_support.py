"""A real localstripe process (a stateful fake of the Stripe API) and a TCP
proxy in front of it that can be switched off and on, for the Stripe adapter's
tests and for end-to-end tests of the service with PAYMENT_GATEWAY=stripe.

Use the fixtures by importing them into a test module (or a conftest):

    from tests.stripe_support import localstripe, stripe_proxy  # noqa: F401

`localstripe` is one process per session (its store is wiped by `reset()`);
`stripe_proxy` is a fresh proxy per test, pointed at it, always forwarding
again when the test ends.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets
import socket
import struct
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import requests

from devstack import free_port, stop, wait_for_port

ROOT = Path(__file__).resolve().parents[1]
# localstripe accepts any key that starts with sk_; a fresh one per session,
# so that a test can look for it in logs and messages.
API_KEY = "sk_test_" + secrets.token_hex(16)


class LocalStripe:
    """localstripe run as `python -m tests.localstripe_server`: started by
    the constructor, listening after `wait_ready()` (register it for closing
    in between)."""

    def __init__(self, log_path: Path):
        self.port = free_port()
        self.log = open(log_path, "wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.localstripe_server", "--port", str(self.port)],
            cwd=ROOT, stdout=self.log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        )
        self.url = f"http://127.0.0.1:{self.port}"
        self.http = requests.Session()
        self.http.auth = (API_KEY, "")

    def wait_ready(self) -> "LocalStripe":
        wait_for_port(self.port, timeout=30, process=self.process)
        return self

    def close(self) -> None:
        self.http.close()
        stop(self.process)
        self.log.close()

    def reset(self) -> None:
        """Forget every object (localstripe's own endpoint), offer search again."""
        self.http.delete(f"{self.url}/_config/data", timeout=10).raise_for_status()
        self.search(True)

    def _request(self, method: str, path: str, **kwargs) -> dict:
        answer = self.http.request(method, f"{self.url}{path}", timeout=10, **kwargs)
        answer.raise_for_status()
        return answer.json()

    def intent(self, intent_id: str) -> dict:
        return self._request("GET", f"/v1/payment_intents/{intent_id}")

    def intents(self) -> list[dict]:
        return self._request("GET", "/v1/payment_intents", params={"limit": 1000})["data"]

    def charges(self, intent_id: str | None = None) -> list[dict]:
        charges = self._request("GET", "/v1/charges", params={"limit": 1000})["data"]
        return [c for c in charges if intent_id is None or c["payment_intent"] == intent_id]

    def charged_intent(self, payment_id) -> str:
        """The id of the one PaymentIntent of the payment (by its metadata)
        that localstripe holds a succeeded charge for."""
        mine = {i["id"] for i in self.intents() if i["metadata"].get("paymentId") == str(payment_id)}
        [intent_id] = [c["payment_intent"] for c in self.charges()
                       if c["payment_intent"] in mine and c["status"] == "succeeded"]
        return intent_id

    def events(self, intent_id: str, event_type: str | None = None) -> list[dict]:
        """The events localstripe made about the intent (what it delivers to webhooks), oldest first."""
        params = {"limit": 1000, **({"type": event_type} if event_type else {})}
        listed = self._request("GET", "/v1/events", params=params)["data"]
        return sorted((e for e in listed if e["data"]["object"].get("id") == intent_id), key=lambda e: e["created"])

    def refunds(self, intent_id: str) -> list[dict]:
        """The intent's Refunds, newest first."""
        return self._request("GET", "/v1/refunds", params={"payment_intent": intent_id, "limit": 100})["data"]

    def confirm(self, intent_id: str) -> requests.Response:
        """A confirm sent behind the adapter's back (a late or second one)."""
        return self.http.post(f"{self.url}/v1/payment_intents/{intent_id}/confirm", timeout=10)

    def payment_method(self, card_number: str) -> str:
        """A PaymentMethod for a test card number (localstripe's own card
        behaviours: 4000000000000341 declines at charge, 4000002500003155
        asks for 3-D Secure), as Stripe.js makes one in a checkout page."""
        return self._request("POST", "/v1/payment_methods", data={
            "type": "card", "card[number]": card_number, "card[exp_month]": "12",
            "card[exp_year]": "2034", "card[cvc]": "123",
        })["id"]

    def sepa_payment_method(self, iban: str) -> str:
        """A SEPA Direct Debit PaymentMethod: localstripe settles its charges
        half a second after the confirm, so its intent is `processing`
        meanwhile (DE62370400440532013001 then fails; any other IBAN succeeds
        at once)."""
        return self._request("POST", "/v1/payment_methods", data={
            "type": "sepa_debit", "sepa_debit[iban]": iban})["id"]

    def intent_awaiting_capture(self, payment, payment_method: str = "pm_card_visa") -> str:
        """An intent for the payment made with manual capture and confirmed,
        as an account or a caller other than the adapter may leave one:
        `requires_capture`."""
        intent = self._request("POST", "/v1/payment_intents", data={
            "amount": "15000", "currency": "usd", "payment_method": payment_method,
            "capture_method": "manual", "metadata[paymentId]": str(payment.id),
            "metadata[orderId]": str(payment.order_id)})
        self.confirm(intent["id"]).raise_for_status()
        return intent["id"]

    def search(self, enabled: bool) -> None:
        """Offer the Search API (tests/localstripe_server.py) or not, as localstripe itself does not."""
        self.http.post(f"{self.url}/_config/search", json={"enabled": enabled}, timeout=10).raise_for_status()

    def register_webhook(self, url: str, secret: str, events: list[str] | None = None,
                         webhook_id: str = "payments") -> None:
        """Have localstripe deliver its events to `url`, signed with `secret`
        (one second after each event, as its own webhooks do)."""
        data = {"url": url, "secret": secret}
        if events is not None:
            data["events"] = events
        self.http.post(f"{self.url}/_config/webhooks/{webhook_id}", json=data, timeout=10).raise_for_status()


def expected_transaction_id(intent_id: str) -> str:
    """The transaction id a charge of this PaymentIntent is recorded with:
    localstripe's ids are `pi_` and letters and digits, and the contract's
    form keeps those (`pi_3MtwBw…` -> `txn_3MtwBw…`)."""
    letters_and_digits = re.fullmatch(r"pi_([0-9A-Za-z]+)", intent_id)
    assert letters_and_digits, intent_id
    return "txn_" + letters_and_digits.group(1)


def signed_delivery(event: dict, secret: str, at: float | None = None) -> tuple[bytes, dict]:
    """A webhook delivery of `event` as Stripe (and localstripe) makes one:
    the body, and the Stripe-Signature header of HMAC-SHA256("<t>.<body>")
    with the endpoint's secret, at `at` (now by default)."""
    body = json.dumps(event, indent=2, sort_keys=True)
    timestamp = int(time.time() if at is None else at)
    signature = hmac.new(secret.encode(), f"{timestamp}.{body}".encode(), hashlib.sha256).hexdigest()
    return body.encode(), {"Content-Type": "application/json; charset=utf-8",
                           "Stripe-Signature": f"t={timestamp},v1={signature}"}


FORWARD = "forward"        # pass everything through
RESET = "reset"            # accept, then reset the connection at once: a refused call
BLACKHOLE = "blackhole"    # accept and read, never answer: the client's timeout fires
LOSE_ANSWER = "lose_answer"  # forward a matching request, then reset instead of answering
HOLD_ANSWER = "hold_answer"  # forward a matching request, answer only at the next switch


@dataclass
class Seen:
    method: str
    path: str
    answered: bool
    idempotency_key: str | None = None


@dataclass
class GatewayProxy:
    """A TCP proxy between a client and an HTTP server, one request per
    connection (it answers `Connection: close`, so no kept-alive connection
    outlives a switch of mode). Real sockets; the server keeps its state."""

    upstream_port: int
    mode: str = FORWARD
    lose_path: str = ""
    seen: list[Seen] = field(default_factory=list)

    def __post_init__(self):
        self._listener = socket.socket()
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(64)
        self.port = self._listener.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._lock = threading.Lock()
        self._held: set[socket.socket] = set()
        self._switched = threading.Event()
        self._closed = False
        threading.Thread(target=self._accept_loop, daemon=True).start()

    def switch(self, mode: str, lose_path: str = "") -> None:
        """The mode for requests whose path contains `lose_path` (all when
        empty); the others are forwarded. A switch releases what BLACKHOLE and
        HOLD_ANSWER hold."""
        with self._lock:
            self.mode, self.lose_path = mode, lose_path
            held, self._held = self._held, set()
            switched, self._switched = self._switched, threading.Event()
        switched.set()  # releases the connections held by BLACKHOLE
        for conn in held:
            _reset(conn)

    def close(self) -> None:
        self._closed = True
        self.switch(FORWARD)
        self._listener.close()

    def _accept_loop(self) -> None:
        while not self._closed:
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        with self._lock:
            mode, lose_path, switched = self.mode, self.lose_path, self._switched
        try:
            if mode == RESET and not lose_path:
                _reset(conn)
                return
            if mode == BLACKHOLE and not lose_path:
                self._hold_then_reset(conn, switched)
                return
            head, body = _read_request(conn)
            method, path = head.split(b"\r\n", 1)[0].decode("latin-1").split(" ")[:2]
            if lose_path not in path:
                mode = FORWARD
            if mode == RESET:
                _reset(conn)
                return
            if mode == BLACKHOLE:
                self._hold_then_reset(conn, switched, read=False)
                return
            answer = self._forward(_with_close(head), body)
            lose = mode == LOSE_ANSWER
            self.seen.append(Seen(method, path, answered=not lose, idempotency_key=_header(head, b"idempotency-key")))
            if lose:
                _reset(conn)  # the server did the work; its answer is lost
                return
            if mode == HOLD_ANSWER:
                switched.wait(60)  # the server did the work; its answer comes late
            answer_head, _, answer_body = answer.partition(b"\r\n\r\n")
            conn.sendall(_with_close(answer_head) + b"\r\n\r\n" + answer_body)
            conn.close()
        except OSError:
            _reset(conn)

    def _hold_then_reset(self, conn: socket.socket, switched: threading.Event, read: bool = True) -> None:
        with self._lock:
            self._held.add(conn)
        conn.settimeout(60)
        if read:
            _read_request(conn)
        switched.wait(60)
        _reset(conn)

    def _forward(self, head: bytes, body: bytes) -> bytes:
        with socket.create_connection(("127.0.0.1", self.upstream_port), timeout=30) as upstream:
            upstream.sendall(head + b"\r\n\r\n" + body)
            chunks = []
            while chunk := upstream.recv(65536):
                chunks.append(chunk)
        return b"".join(chunks)


def _read_request(conn: socket.socket) -> tuple[bytes, bytes]:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            raise OSError("client closed before sending a request")
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    while len(body) < length:
        chunk = conn.recv(65536)
        if not chunk:
            raise OSError("client closed in the middle of a request")
        body += chunk
    return head, body


def _header(head: bytes, name: bytes) -> str | None:
    for line in head.split(b"\r\n")[1:]:
        key, _, value = line.partition(b":")
        if key.strip().lower() == name:
            return value.strip().decode("latin-1")
    return None


def _with_close(head: bytes) -> bytes:
    lines = [line for line in head.split(b"\r\n")
             if line.split(b":", 1)[0].strip().lower() != b"connection"]
    return b"\r\n".join(lines + [b"Connection: close"])


def _reset(conn: socket.socket) -> None:
    """Close with a TCP reset rather than an orderly FIN."""
    try:
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        conn.close()
    except OSError:
        pass


@pytest.fixture(scope="session")
def localstripe(tmp_path_factory):
    server = LocalStripe(tmp_path_factory.mktemp("localstripe") / "localstripe.log")
    try:
        yield server.wait_ready()
    finally:
        server.close()


@pytest.fixture
def stripe_proxy(localstripe):
    proxy = GatewayProxy(localstripe.port)
    try:
        yield proxy
    finally:
        proxy.close()
