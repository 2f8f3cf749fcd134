"""HTTP adapters for the ordering and reservation services.

One connection pool per process keeps connections alive between calls. A
404 is an answer (None); anything else that is not a well-formed 200 is the
upstream's fault and becomes the DependencyError that names it: an answer
not whole within the call's deadline is a timeout (504), one over the size
cap or holding a number that cannot be held exactly (jsonio's rules, the same
as for a request) a bad response (502).

Each call passes on the id of the request it is made for (X-Request-ID),
read from the request's log context (payment/logs.py), which goes with a
call made on another thread (payment/side_calls.py).
"""

from __future__ import annotations

import time
from datetime import datetime
from decimal import Decimal, InvalidOperation
from uuid import UUID

from payment import jsonio, logs
from payment.errors import UpstreamBadResponse, UpstreamTimeout, UpstreamUnavailable
from payment.httpclient import ConnectionPool, HTTPBadAnswer, HTTPTimeout, HTTPTooLarge, HTTPUnavailable
from payment.model import Order, Reservation


def new_session(pool_size: int) -> ConnectionPool:
    # No retries here: a POST /payments is retried by its client, and a
    # retry inside the request would blow the timeout budget.
    return ConnectionPool(max_idle_per_host=pool_size)


REQUEST_ID_HEADER = "X-Request-ID"

_ERROR_KINDS = {UpstreamTimeout: "timeout", UpstreamUnavailable: "unavailable", UpstreamBadResponse: "bad_response"}


class _JsonUpstream:
    part = "upstream service"
    service = "upstream"  # the metrics label

    def __init__(self, base_url: str, session: ConnectionPool, *, connect_timeout: float, read_timeout: float,
                 deadline: float, max_response_bytes: int, metrics=None):
        self.base_url = base_url.rstrip("/")
        self.session = session
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self.deadline = deadline
        self.max_response_bytes = max_response_bytes
        self.metrics = metrics  # metrics.Metrics, or None to record nothing

    def _get(self, path: str, parse, deadline: float | None):
        """GET path and parse the JSON object; None on 404. Timed, and any
        failure counted by kind, for the metrics. `deadline`, when given,
        shortens the call's own: a call that waited for a thread has only
        what is left of it (payment/side_calls.py)."""
        started = time.perf_counter()
        kind = None
        try:
            data = self._fetch(path, self.deadline if deadline is None else min(deadline, self.deadline))
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

    def _fetch(self, path: str, deadline: float) -> dict | None:
        if deadline <= 0:
            raise UpstreamTimeout(self.part)
        try:
            status, body = self.session.get(
                self.base_url + path, connect_timeout=self.connect_timeout, read_timeout=self.read_timeout,
                deadline=deadline, max_bytes=self.max_response_bytes, headers=_request_id_header())
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


class OrderingClient(_JsonUpstream):
    part = "ordering service"
    service = "ordering"

    def get_order(self, order_id: UUID, *, deadline: float | None = None) -> Order | None:
        return self._get(f"/orders/{order_id}", _order, deadline)


class ReservationClient(_JsonUpstream):
    part = "reservation service"
    service = "reservation"

    def get_reservation(self, reservation_id: UUID, *, deadline: float | None = None) -> Reservation | None:
        return self._get(f"/reservations/{reservation_id}", _reservation, deadline)


def _request_id_header() -> dict | None:
    """The id of the request the call is made for, when there is one."""
    request_id = logs.request_id()
    return {REQUEST_ID_HEADER: request_id} if request_id else None


def _order(data: dict) -> Order:
    return Order(
        id=UUID(str(data["id"])),
        customer_id=UUID(str(data["customerId"])),
        total_amount=_number(data["totalAmount"]),
        currency=str(data.get("currency") or "USD"),
        status=str(data["status"]).lower(),
    )


def _reservation(data: dict) -> Reservation:
    expires_at = datetime.fromisoformat(str(data["expiresAt"]).replace("Z", "+00:00"))
    if expires_at.tzinfo is None:
        raise ValueError("expiresAt without a time zone")
    return Reservation(
        id=UUID(str(data["id"])),
        customer_id=UUID(str(data["customerId"])),
        status=str(data["status"]).lower(),
        expires_at=expires_at,
    )


def _number(value) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, (int, Decimal)):
        raise ValueError("not a JSON number")
    return Decimal(value)
