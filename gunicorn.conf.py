# gunicorn settings for the payment service. Read by `gunicorn app:app -c gunicorn.conf.py`.
# Every value can be overridden from the environment (GUNICORN_CMD_ARGS, or the
# variables read below).
import multiprocessing
import os
import sys

from payment.config import Config, ConfigError

# Port: PORT, or the port of ASPNETCORE_URLS (http://+:5004), default 5004.
try:
    _config = Config.from_env()
except ConfigError as _exc:
    sys.exit(f"payment-service: configuration error: {_exc}")
bind = f"0.0.0.0:{_config.port}"

# Workers are processes; each has a few threads because a payment mostly waits
# (ordering service, database, broker acknowledgement), not computes.
workers = int(os.environ.get("WEB_CONCURRENCY", multiprocessing.cpu_count() * 2))
worker_class = "gthread"
threads = int(os.environ.get("GUNICORN_THREADS", 4))

# A request's own budget is a few seconds (upstream, database and Kafka
# timeouts); 30 s means a worker is stuck, not slow.
timeout = 30
# On SIGTERM, requests in flight get this long to finish.
graceful_timeout = 20
keepalive = 5

# The app is imported in each worker after the fork, never in the master:
# pools, producers and threads do not survive fork().
preload_app = False

accesslog = "-"
errorlog = "-"

# gunicorn's runtime control socket sits at one fixed path per user, which two
# instances on one host would fight over; the service is driven by signals.
control_socket_disable = True


def on_starting(server):
    # Once per start, before any worker: schema and topics. In a child process,
    # so that no Kafka client of the master's is inherited by the workers.
    import subprocess

    result = subprocess.run([sys.executable, "-m", "payment", "migrate"])
    if result.returncode != 0:
        sys.exit(result.returncode)


def worker_exit(server, worker):
    # Flush the producer (events already committed) and close the pool.
    app_module = sys.modules.get("app")
    if app_module is not None:
        app_module.runtime.close()
