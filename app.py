"""WSGI entry point: `gunicorn app:app -c gunicorn.conf.py`.

Imported once in each worker, after the fork, so each worker builds its own
database pool, Kafka producer and relay thread (payment/bootstrap.py);
gunicorn.conf.py's worker_exit closes them.
"""

from payment.bootstrap import build_web
from payment.config import Config
from payment.logs import configure_logging

configure_logging()
web = build_web(Config.from_env())
app = web.app
