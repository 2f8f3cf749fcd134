"""WSGI entry point: `gunicorn app:app -c gunicorn.conf.py`.

Imported once in each worker, after the fork, so each worker builds its own
database pool, Kafka producer and relay thread.
"""

from payment.config import Config
from payment.logs import configure_logging
from payment.runtime import build

configure_logging()
runtime = build(Config.from_env())
app = runtime.app
