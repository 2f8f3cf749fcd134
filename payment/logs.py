"""Logging for every entry point: one JSON object per line on stdout.

Fields bound to the request being served (requestId, orderId) are kept in a
context variable and added to every line logged while it is served, by the
service's own code and by the libraries it calls alike. Fields passed with
`extra=` (paymentId, eventId...) become top-level keys of the line.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from contextvars import ContextVar, Token
from itertools import islice
from typing import IO, Any

from payment.model import OutboxEvent, Payment, Refund

# Field values are whatever a line should show: JSON types, or anything str() can write.
Fields = dict[str, Any]

_bound: ContextVar[Fields] = ContextVar("log_fields", default={})

# Attributes every LogRecord has; anything else on a record came from `extra=`.
_STANDARD = vars(logging.LogRecord("", 0, "", 0, "", None, None))
_RECORD_ATTRIBUTES = frozenset(_STANDARD) | {"message", "asctime"}
# LogRecord sets its own attributes first, always the same ones, and `extra=`
# may not overwrite them, so a record's extras are the attributes after these
# (with `message` and `asctime` among them once another formatter has run).
_STANDARD_COUNT = len(_STANDARD)

# One encoder for every line: json.dumps with options builds a new one per call.
_ENCODER = json.JSONEncoder(default=str, ensure_ascii=False)


def bind(**fields: Any) -> Token[Fields]:
    """Add fields to every line logged from this context until `unbind`."""
    return _bound.set({**_bound.get(), **fields})


def unbind(token: Token[Fields]) -> None:
    _bound.reset(token)


def bound(name: str) -> Any:
    return _bound.get().get(name)


# The header that carries the request id between services: read from a
# request (api/request_id.py), sent on with every upstream call (upstream.py).
REQUEST_ID_HEADER = "X-Request-ID"


def note(**fields: object) -> None:
    """Add fields to the lines of the request being served, its access line
    (api/telemetry.py) among them, as soon as they are known: a payment's id,
    the gateway's reference. Outside a request (the reconciler, a test calling
    the service directly) nothing is bound, since no request's end would
    unbind it (api/request_id.py)."""
    if request_id() is not None:
        bind(**fields)


def request_id() -> str | None:
    """The id of the request being served (api/request_id.py binds it), for
    the calls made on its behalf; None outside a request."""
    request_id: str | None = _bound.get().get("requestId")
    return request_id


def payment_fields(payment: Payment) -> Fields:
    """The ids a line about a payment carries."""
    return {"paymentId": str(payment.id), "orderId": str(payment.order_id)}


def refund_fields(refund: Refund) -> Fields:
    """The ids a line about a refund carries."""
    return {"refundId": str(refund.id), "paymentId": str(refund.payment_id), "orderId": str(refund.order_id)}


def event_fields(event: OutboxEvent) -> Fields:
    """The ids a line about an outbox event carries (its key is the orderId)."""
    return {"paymentId": str(event.payment_id), "orderId": event.key, "eventId": str(event.event_id)}


class JsonFormatter(logging.Formatter):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # (second, "YYYY-MM-DDTHH:MM:SS."): lines come many to a second, and
        # formatting the date is most of the cost of the time stamp.
        self._second: tuple[int | None, str] = (None, "")

    def format(self, record: logging.LogRecord) -> str:
        line: Fields = {
            "time": self._time(record.created),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "pid": record.process,
        }
        line.update(_bound.get())
        for key, value in islice(vars(record).items(), _STANDARD_COUNT, None):
            if key not in _RECORD_ATTRIBUTES and not key.startswith("_"):
                line[key] = value
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return _ENCODER.encode(line)

    def _time(self, created: float) -> str:
        """UTC, milliseconds, `Z`; rounded to the microsecond first, as datetime.fromtimestamp does."""
        second = int(created)
        micro = round((created - second) * 1_000_000)
        if micro >= 1_000_000:
            second, micro = second + 1, micro - 1_000_000
        cached_second, prefix = self._second
        if cached_second != second:
            prefix = time.strftime("%Y-%m-%dT%H:%M:%S.", time.gmtime(second))
            self._second = (second, prefix)
        return f"{prefix}{micro // 1000:03d}Z"


def json_handler(stream: IO[str] | None = None) -> logging.Handler:
    handler = logging.StreamHandler(stream or sys.stdout)
    handler.setFormatter(JsonFormatter())
    return handler


def level() -> str:
    return os.environ.get("LOG_LEVEL", "INFO").upper()


def configure_logging() -> None:
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    root.addHandler(json_handler())
    root.setLevel(level())
    # librdkafka repeats connection failures every few seconds while the
    # broker is away; the relay already reports what matters.
    logging.getLogger("librdkafka").setLevel(logging.ERROR)


def gunicorn_logconfig() -> dict[str, Any]:
    """gunicorn's own log lines (start-up, workers, signals) as JSON too.
    Its access log stays quiet: the app logs each request itself, with the
    request id and the route."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": "payment.logs.JsonFormatter"}},
        "handlers": {"stdout": {"class": "logging.StreamHandler", "formatter": "json",
                                "stream": "ext://sys.stdout"}},
        "root": {"level": level(), "handlers": ["stdout"]},
        "loggers": {
            "gunicorn.error": {"level": level(), "handlers": ["stdout"], "propagate": False},
            "gunicorn.access": {"level": "WARNING", "handlers": [], "propagate": False},
        },
    }
