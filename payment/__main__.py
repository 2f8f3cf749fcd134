"""Command line for operators: python -m payment COMMAND --help."""

from __future__ import annotations

import argparse
import os
import sys

from payment.config import Config, ConfigError
from payment.startup import fail


def _config() -> Config:
    try:
        return Config.from_env()
    except ConfigError as exc:
        fail(f"configuration error: {exc}")


def cmd_migrate(args: argparse.Namespace) -> None:
    """Apply the schema migrations not yet applied (sql/migrations/, in
    order, one transaction each) and create the topics (or, with
    KAFKA_TOPIC_CREATE=false, check that they exist): the release step, run
    once per deployment before the service starts."""
    import logging

    from payment.logs import configure_logging
    from payment.release import StartupError, prepare

    configure_logging()
    config = _config()
    log_ignored_settings(config)
    try:
        outcome = prepare(config, wait_s=args.wait)
    except StartupError as exc:
        fail(f"start-up failed: {exc}")
    logging.getLogger("payment.migrate").info(
        "schema applied; topics ready", extra={
            "database": config.redacted_database_url(), "schemaVersion": outcome.version,
            # Names only: a value may be a secret, or a path that is nobody's business.
            "kafkaSettings": sorted(config.kafka_settings)})


def log_ignored_settings(config: Config) -> None:
    """One line naming the connection-string keys that have no meaning here
    (their names only: a value could be a secret)."""
    import logging

    if config.db_ignored_keys:
        logging.getLogger("payment.config").info(
            "ConnectionStrings__Default keys accepted and ignored: " + ", ".join(config.db_ignored_keys),
            extra={"ignoredKeys": list(config.db_ignored_keys)})


def cmd_serve(args: argparse.Namespace) -> None:
    """Run the service under gunicorn with gunicorn.conf.py, which runs
    `migrate` once before starting the workers unless MIGRATE_ON_START=false."""
    _config()
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    os.chdir(root)
    os.execvp(sys.executable, [sys.executable, "-m", "gunicorn", "app:app", "-c", "gunicorn.conf.py"])


def cmd_relay(args: argparse.Namespace) -> None:
    """Run the outbox relay alone, without HTTP; it runs the reconciler too."""
    _run_loop("outbox relay", outbox=True)


def cmd_reconcile(args: argparse.Namespace) -> None:
    """Run the reconciler alone: settle overdue pending payments from what
    the gateway knows of them."""
    _run_loop("reconciler", outbox=False)


def _run_loop(name: str, *, outbox: bool) -> None:
    import logging
    import signal

    from payment.bootstrap import LOOP_POOL_MAX, build_loop
    from payment.logs import configure_logging
    from payment.startup import log_start

    configure_logging()
    config = _config()
    log_ignored_settings(config)
    log_start(config, name, dbPoolMin=min(config.db_pool_min, LOOP_POOL_MAX), dbPoolMax=LOOP_POOL_MAX)
    core = build_loop(config, outbox=outbox)
    relay = core.relay
    if relay is None:  # build_loop makes one
        fail(f"start-up failed: no {name} was built")
    signal.signal(signal.SIGTERM, lambda *_: relay.stop(timeout=0))
    logging.getLogger("payment." + name.split()[-1]).info("%s running", name)
    try:
        relay.run()
    except KeyboardInterrupt:
        pass
    finally:
        core.close()


def cmd_healthcheck(args: argparse.Namespace) -> None:
    """Exit 0 when the service on this host answers GET /health/live (with
    --ready, GET /health/ready), else 1: the image's HEALTHCHECK."""
    from urllib.error import URLError
    from urllib.request import urlopen

    path = "/health/ready" if args.ready else "/health/live"
    try:
        with urlopen(f"http://127.0.0.1:{_config().port}{path}", timeout=args.timeout) as response:
            healthy = response.status == 200
    except (URLError, OSError):
        healthy = False
    sys.exit(0 if healthy else 1)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m payment", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    migrate = commands.add_parser("migrate", help=cmd_migrate.__doc__, description=cmd_migrate.__doc__)
    migrate.add_argument("--wait", type=float, default=30.0, help="seconds to wait for each dependency")
    migrate.set_defaults(func=cmd_migrate)
    serve = commands.add_parser("serve", help=cmd_serve.__doc__, description=cmd_serve.__doc__)
    serve.set_defaults(func=cmd_serve)
    relay = commands.add_parser("relay", help=cmd_relay.__doc__, description=cmd_relay.__doc__)
    relay.set_defaults(func=cmd_relay)
    reconcile = commands.add_parser("reconcile", help=cmd_reconcile.__doc__, description=cmd_reconcile.__doc__)
    reconcile.set_defaults(func=cmd_reconcile)
    health = commands.add_parser("healthcheck", help=cmd_healthcheck.__doc__, description=cmd_healthcheck.__doc__)
    health.add_argument("--ready", action="store_true", help="check /health/ready instead of /health/live")
    health.add_argument("--timeout", type=float, default=3.0, help="seconds to wait for the answer")
    health.set_defaults(func=cmd_healthcheck)
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    args.func(args)


if __name__ == "__main__":
    main()
