"""HTTP adapters for the ordering and reservation services.

One connection pool per process keeps connections alive between calls. A
404 is an answer (None); anything else that is not a well-formed 200 is the
upstream's fault and becomes the DependencyError that names it: an answer
not whole within the call's deadline is a timeout (504), one over the size
cap or holding a number that cannot be held exactly (jsonio's rules, the same
as for a request) a bad response (502).

A reservation is asked for in two steps, `start_reservation` (the request
is sent) and `result()` (the answer is read and judged), so that the order
can be fetched in between: both services work at once, the payment waits
for the slower of the two answers, and no thread is handed the call.

Each call passes on the id of the request it is made for (X-Request-ID),
read from the request's log context (payment/logs.py).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any, Generic, Protocol, TypedDict, TypeVar
from uuid import UUID

from payment import jsonio, logs
from payment.errors import DependencyError, UpstreamBadResponse, UpstreamTimeout, UpstreamUnavailable
from payment.model import Order, Reservation
from payment.upstream.httpclient import (
    Call,
    ConnectionPool,
    HTTPBadAnswer,
    HTTPTimeout,
    HTTPTooLarge,
    HTTPUnavailable,
)

T = TypeVar("T")
# A JSON object as the upstream sent it, each value as jsonio reads it.
JSONObject = dict[str, Any]
Parse = Callable[[JSONObject], T]


class CallCounter(Protocol):
    """Where each call is timed and each failure counted (metrics.Metrics)."""

    def upstream_call(self, service: str, seconds: float, error_kind: str | None = None) -> None: ...


def new_session(pool_size: int) -> ConnectionPool:
    # No retries here: a POST /payments is retried by its client, and a
    # retry inside the request would blow the timeout budget.
    return ConnectionPool(max_idle_per_host=pool_size)


class ClientOptions(TypedDict):
    """The settings both clients take (payment/bootstrap.py reads them from the configuration)."""

    connect_timeout: float
    read_timeout: float
    deadline: float
    max_response_bytes: int
    metrics: CallCounter | None


_ERROR_KINDS: dict[type[DependencyError], str] = {
    UpstreamTimeout: "timeout", UpstreamUnavailable: "unavailable", UpstreamBadResponse: "bad_response"}


class _JsonUpstream:
    part = "upstream service"
    service = "upstream"  # the metrics label

    def __init__(self, base_url: str, session: ConnectionPool, *, connect_timeout: float, read_timeout: float,
                 deadline: float, max_response_bytes: int, metrics: CallCounter | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self.session = session
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self.deadline = deadline
        self.max_response_bytes = max_response_bytes
        self.metrics = metrics  # None: nothing is recorded

    def _get(self, path: str, parse: Parse[T]) -> T | None:
        return self._start(path, parse).result()

    def _start(self, path: str, parse: Parse[T]) -> Pending[T]:
        """Send the GET of path; its answer is read by the Pending's result().
        The call's deadline counts from here."""
        started = time.perf_counter()
        call = self.session.send(
            self.base_url + path, connect_timeout=self.connect_timeout, read_timeout=self.read_timeout,
            deadline=self.deadline, max_bytes=self.max_response_bytes, headers=_request_id_header())
        return Pending(self, call, parse, started)

    def _finish(self, call: Call, parse: Parse[T], started: float) -> T | None:
        """Read the answer and parse the JSON object; None on 404. Timed from
        the send, and any failure counted by kind, for the metrics."""
        kind = None
        try:
            data = self._answer(call)
            if data is None:
                return None
            try:
                return parse(data)
            except (KeyError, ValueError, TypeError, InvalidOperation, AttributeError):
                raise UpstreamBadResponse(self.part) from None
        except (UpstreamTimeout, UpstreamUnavailable, UpstreamBadResponse) as exc:
            kind = _ERROR_KINDS[type(exc)]
            raise
        finally:
            if self.metrics is not None:
                self.metrics.upstream_call(self.service, time.perf_counter() - started, kind)

    def _answer(self, call: Call) -> JSONObject | None:
        try:
            status, body = self.session.receive(call)
        except HTTPTimeout:
            raise UpstreamTimeout(self.part) from None
        except HTTPUnavailable:
            raise UpstreamUnavailable(self.part) from None
        except (HTTPBadAnswer, HTTPTooLarge):
            raise UpstreamBadResponse(self.part) from None
        if status == 404:
            return None
        if status != 200:
            raise UpstreamBadResponse(self.part)
        try:
            data = jsonio.loads(body)
        except jsonio.JSONInputError:
            raise UpstreamBadResponse(self.part) from None
        if not isinstance(data, dict):
            raise UpstreamBadResponse(self.part)
        return data


class Pending(Generic[T]):
    """An upstream call sent, its answer not read yet (payment.ports.PendingAnswer)."""

    __slots__ = ("_upstream", "_call", "_parse", "_started")

    def __init__(self, upstream: _JsonUpstream, call: Call, parse: Parse[T], started: float) -> None:
        self._upstream = upstream
        self._call = call
        self._parse = parse
        self._started = started

    def result(self) -> T | None:
        """What the upstream answered, parsed (None on 404), or the
        DependencyError that names it; waits no longer than the deadline."""
        return self._upstream._finish(self._call, self._parse, self._started)

    def abandon(self) -> None:
        """The answer is no longer wanted: its connection is closed unread.
        Nothing is timed or counted: the call had no outcome."""
        self._upstream.session.discard(self._call)


class OrderingClient(_JsonUpstream):
    part = "ordering service"
    service = "ordering"

    def get_order(self, order_id: UUID) -> Order | None:
        return self._get(f"/orders/{order_id}", _order)


class ReservationClient(_JsonUpstream):
    part = "reservation service"
    service = "reservation"

    def start_reservation(self, reservation_id: UUID) -> Pending[Reservation]:
        """The reservation's GET, sent; `result()` is the Reservation or None."""
        return self._start(f"/reservations/{reservation_id}", _reservation)


def _request_id_header() -> dict[str, str] | None:
    """The id of the request the call is made for, when there is one."""
    request_id = logs.request_id()
    return {logs.REQUEST_ID_HEADER: request_id} if request_id else None


def _order(data: JSONObject) -> Order:
    return Order(
        id=UUID(str(data["id"])),
        customer_id=UUID(str(data["customerId"])),
        total_amount=_number(data["totalAmount"]),
        currency=str(data.get("currency") or "USD"),
        status=str(data["status"]).lower(),
    )


def _reservation(data: JSONObject) -> Reservation:
    expires_at = datetime.fromisoformat(str(data["expiresAt"]).replace("Z", "+00:00"))
    if expires_at.tzinfo is None:
        raise ValueError("expiresAt without a time zone")
    return Reservation(
        id=UUID(str(data["id"])),
        customer_id=UUID(str(data["customerId"])),
        status=str(data["status"]).lower(),
        expires_at=expires_at,
    )


def _number(value: object) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, (int, Decimal)):
        raise ValueError("not a JSON number")
    return Decimal(value)
