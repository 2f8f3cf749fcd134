"""HTTP adapters for the ordering and reservation services.

One requests.Session per process keeps connections alive between calls. A
404 is an answer (None); anything else that is not a well-formed 200 is the
upstream's fault and becomes the DependencyError that names it.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal, InvalidOperation
from uuid import UUID

import requests
from requests.adapters import HTTPAdapter

from payment import jsonio
from payment.errors import UpstreamBadResponse, UpstreamTimeout, UpstreamUnavailable
from payment.model import Order, Reservation


def new_session(pool_size: int = 16) -> requests.Session:
    session = requests.Session()
    # No retries here: a POST /payments is retried by its client, and a
    # retry inside the request would blow the timeout budget.
    adapter = HTTPAdapter(pool_connections=2, pool_maxsize=pool_size, max_retries=0)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    session.trust_env = False
    return session


class _JsonUpstream:
    part = "upstream service"

    def __init__(self, base_url: str, session: requests.Session, *, connect_timeout: float, read_timeout: float):
        self.base_url = base_url.rstrip("/")
        self.session = session
        self.timeout = (connect_timeout, read_timeout)

    def _get(self, path: str, headers: dict | None = None) -> dict | None:
        try:
            response = self.session.get(self.base_url + path, timeout=self.timeout, headers=headers)
            body = response.content
        except requests.Timeout:
            raise UpstreamTimeout(self.part) from None
        except requests.RequestException:
            raise UpstreamUnavailable(self.part) from None
        if response.status_code == 404:
            return None
        if response.status_code != 200:
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

    def get_order(self, order_id: UUID, headers: dict | None = None) -> Order | None:
        data = self._get(f"/orders/{order_id}", headers)
        if data is None:
            return None
        try:
            return Order(
                id=UUID(str(data["id"])),
                customer_id=UUID(str(data["customerId"])),
                total_amount=_number(data["totalAmount"]),
                currency=str(data.get("currency") or "USD"),
                status=str(data["status"]).lower(),
            )
        except (KeyError, ValueError, TypeError, InvalidOperation, AttributeError):
            raise UpstreamBadResponse(self.part) from None


class ReservationClient(_JsonUpstream):
    part = "reservation service"

    def get_reservation(self, reservation_id: UUID, headers: dict | None = None) -> Reservation | None:
        data = self._get(f"/reservations/{reservation_id}", headers)
        if data is None:
            return None
        try:
            expires_at = datetime.fromisoformat(str(data["expiresAt"]).replace("Z", "+00:00"))
            if expires_at.tzinfo is None:
                raise ValueError("expiresAt without a time zone")
            return Reservation(
                id=UUID(str(data["id"])),
                customer_id=UUID(str(data["customerId"])),
                status=str(data["status"]).lower(),
                expires_at=expires_at,
            )
        except (KeyError, ValueError, TypeError, AttributeError):
            raise UpstreamBadResponse(self.part) from None


def _number(value) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, (int, Decimal)):
        raise ValueError("not a JSON number")
    return Decimal(value)
