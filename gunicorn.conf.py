# gunicorn settings for the payment service. Read by `gunicorn app:app -c gunicorn.conf.py`.
# Every value can be overridden from the environment (GUNICORN_CMD_ARGS, or the
# variables read below).
import os
import sys

from payment.config import Config, ConfigError
from payment.logs import gunicorn_logconfig
from payment.server.cpus import usable_cpus
from payment.startup import fail, log_start

# Port: PORT, or the port of ASPNETCORE_URLS (http://+:5004), default 5004.
try:
    _config = Config.from_env()
except ConfigError as _exc:
    fail(f"configuration error: {_exc}")
bind = f"0.0.0.0:{_config.port}"

# Workers are processes; each has threads because a payment mostly waits
# (ordering service, database, broker acknowledgement), not computes. One
# worker per core: more only add GIL and scheduler contention on a small box
# that also runs the database and broker (docs/performance.md). "Core" means
# one this process may use: its CPU affinity and its container's CPU quota,
# not the host's count (payment/server/cpus.py). Eight threads match DB_POOL_MAX's
# default of eight connections per worker. GUNICORN_THREADS is read by the
# configuration (worker_threads), and each worker keeps as many upstream
# connections per host open between calls (payment/bootstrap.py).
workers = int(os.environ.get("WEB_CONCURRENCY") or usable_cpus())
threads = _config.worker_threads

# gunicorn's gthread worker, except that the event loop reads each request
# whole (headers within HTTP_HEADER_TIMEOUT_S, body within HTTP_BODY_TIMEOUT_S,
# else 408) before a thread serves it: nothing is in front of the service to
# buffer requests, and a slow or stalled client must not hold a thread.
worker_class = "payment.server.read_ahead_worker.ReadAheadWorker"

# A request's own budget is a few seconds (upstream, database and Kafka
# timeouts); 30 s means a worker is stuck, not slow.
timeout = 30
# On SIGTERM, requests in flight get this long to finish.
graceful_timeout = 20
# Idle kept-alive connections wait in the worker's event loop, not in a thread.
keepalive = 5

# The app is imported in each worker after the fork, never in the master:
# pools, producers and threads do not survive fork().
preload_app = False

# One JSON object per line, gunicorn's own lines included. Requests are
# logged by the app (payment/api/telemetry.py), with their request id.
errorlog = "-"
logconfig_dict = gunicorn_logconfig()

# gunicorn's runtime control socket sits at one fixed path per user, which two
# instances on one host would fight over; the service is driven by signals.
control_socket_disable = True


def on_starting(server):
    _fresh_metrics_dir()
    # gunicorn has set up its (JSON) logging by now: one line says what this
    # instance is, before anything else happens.
    log_start(_config, "payment service", workers=server.cfg.workers, threads=threads)
    # Once per start, before any worker: schema migrations and topics, unless
    # a release step has done both (MIGRATE_ON_START=false, docker-compose.yml).
    # In a child process, so that no Kafka client of the master's is inherited
    # by the workers.
    if not _config.migrate_on_start:
        return
    import subprocess

    result = subprocess.run([sys.executable, "-m", "payment", "migrate"])
    if result.returncode != 0:
        sys.exit(result.returncode)


_own_metrics_dir = None


def _fresh_metrics_dir():
    # Workers write their metrics to files here (payment/metrics.py); values
    # left by an earlier run would be added to this one's, so each start
    # gets an empty directory. Set before any worker imports prometheus_client,
    # which reads the variable once, at import.
    import glob
    import tempfile

    global _own_metrics_dir
    directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if directory:
        os.makedirs(directory, exist_ok=True)
        for path in glob.glob(os.path.join(directory, "*.db")):
            os.remove(path)
    else:
        _own_metrics_dir = os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="payment-metrics-")


def child_exit(server, worker):
    # A dead worker's gauges (its pool) leave the sums; its counters stay.
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)


def on_exit(server):
    import shutil

    if _own_metrics_dir:
        shutil.rmtree(_own_metrics_dir, ignore_errors=True)


def post_worker_init(worker):
    # The worker's own answers (408, 413, 431, before the app reads a
    # request) are counted in the app's metrics (payment/server/read_ahead_worker.py).
    app_module = sys.modules.get("app")
    if app_module is not None and hasattr(worker, "metrics"):
        worker.metrics = app_module.web.core.metrics


def worker_exit(server, worker):
    # Stop the relay, flush the producer (events already committed), write
    # the marks of the events confirmed, and close the pool: Core.close's
    # order (payment/bootstrap.py).
    app_module = sys.modules.get("app")
    if app_module is not None:
        app_module.web.close()
