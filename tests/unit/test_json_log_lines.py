"""The JSON line JsonFormatter makes of a log record: its keys, its time
stamp (kept per second between lines), the bound and `extra=` fields."""

from __future__ import annotations

import json
import logging
import sys

from payment import logs
from payment.logs import JsonFormatter

# 2026-03-04T15:30:02Z
SECOND = 1772638202


def record(created: float, message: str = "request", level: int = logging.INFO, exc_info=None, **extra):
    made = logging.getLogger("payment.access").makeRecord(
        "payment.access", level, __file__, 1, message, (), exc_info, extra=extra or None)
    made.created = created
    return made


def line(formatter: JsonFormatter, made: logging.LogRecord) -> dict:
    return json.loads(formatter.format(made))


def test_a_line_holds_the_record_the_bound_fields_and_the_extras_in_that_order():
    token = logs.bind(requestId="req-1", orderId="7c9e6679-7425-40de-944b-e07fc1f90ae7")
    try:
        text = JsonFormatter().format(record(SECOND + 0.125, status=200, durationMs=1.5))
    finally:
        logs.unbind(token)
    assert list(json.loads(text).items()) == [
        ("time", "2026-03-04T15:30:02.125Z"), ("level", "INFO"), ("logger", "payment.access"),
        ("message", "request"), ("pid", logging.LogRecord("", 0, "", 0, "", None, None).process),
        ("requestId", "req-1"), ("orderId", "7c9e6679-7425-40de-944b-e07fc1f90ae7"),
        ("status", 200), ("durationMs", 1.5)]


def test_the_time_follows_each_new_second_and_day():
    formatter = JsonFormatter()
    times = [line(formatter, record(created))["time"] for created in (
        SECOND + 0.5, SECOND + 0.999, SECOND + 1.0, SECOND + 0.001, SECOND + 86400.25)]
    assert times == ["2026-03-04T15:30:02.500Z", "2026-03-04T15:30:02.999Z", "2026-03-04T15:30:03.000Z",
                     "2026-03-04T15:30:02.001Z", "2026-03-05T15:30:02.250Z"]


def test_the_time_is_rounded_to_the_microsecond_first_as_datetime_has_it():
    formatter = JsonFormatter()
    assert line(formatter, record(SECOND + 0.9999996))["time"] == "2026-03-04T15:30:03.000Z"
    assert line(formatter, record(SECOND + 0.1234994))["time"] == "2026-03-04T15:30:02.123Z"


def test_only_extras_are_added_not_what_another_formatter_left_on_the_record():
    made = record(SECOND, paymentId="p-1")
    logging.Formatter("%(asctime)s %(message)s").format(made)  # sets record.message and record.asctime
    made._private = "hidden"
    keys = set(line(JsonFormatter(), made))
    assert keys == {"time", "level", "logger", "message", "pid", "paymentId"}


def test_values_json_cannot_hold_are_written_as_text_and_unicode_as_is():
    text = JsonFormatter().format(record(SECOND, detail=object, name_="Zürich"))
    assert "Zürich" in text and json.loads(text)["detail"] == str(object)


def test_an_exception_is_its_traceback():
    try:
        raise ValueError("boom")
    except ValueError:
        made = record(SECOND, "failed", logging.ERROR, exc_info=sys.exc_info())
    written = line(JsonFormatter(), made)
    assert written["level"] == "ERROR" and written["exception"].endswith("ValueError: boom")
