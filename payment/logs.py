"""Logging set-up shared by every entry point."""

from __future__ import annotations

import logging
import os


def configure_logging() -> None:
    logging.basicConfig(
        level=os.environ.get("LOG_LEVEL", "INFO").upper(),
        format="%(asctime)s %(levelname)s %(process)d %(name)s: %(message)s",
    )
    # librdkafka repeats connection failures every few seconds while the
    # broker is away; the relay already reports what matters.
    logging.getLogger("librdkafka").setLevel(logging.ERROR)
