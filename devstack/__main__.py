"""Development commands: `python -m devstack` is `make run`; `python -m
devstack sandbox` runs the sandbox ordering and reservation service alone."""

from __future__ import annotations

import argparse


def cmd_run(args: argparse.Namespace) -> None:
    """Start PostgreSQL, the broker and the sandbox where none is configured,
    then the service on :5004. Ctrl-C stops everything it started."""
    from devstack import run_dev

    run_dev(data_dir=args.data_dir)


def cmd_sandbox(args: argparse.Namespace) -> None:
    """Run the sandbox ordering and reservation service."""
    from devstack.sandbox import serve

    try:
        serve(args.host, args.port, args.latency_ms)
    except KeyboardInterrupt:
        pass


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m devstack", description=__doc__)
    parser.add_argument("--data-dir", default=".devstack", help="where the local PostgreSQL keeps its data")
    parser.set_defaults(func=cmd_run)
    commands = parser.add_subparsers(dest="command")
    sandbox = commands.add_parser("sandbox", help=cmd_sandbox.__doc__, description=cmd_sandbox.__doc__)
    sandbox.add_argument("--host", default="127.0.0.1", help="address to listen on (0.0.0.0 in a container)")
    sandbox.add_argument("--port", type=int, default=5005, help="port to listen on")
    sandbox.add_argument("--latency-ms", type=int, default=0,
                         help="answer every order and reservation this much later (PUT /_latency changes it)")
    sandbox.set_defaults(func=cmd_sandbox)
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    args.func(args)


if __name__ == "__main__":
    main()
