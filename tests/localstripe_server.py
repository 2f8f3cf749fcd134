"""Runs localstripe (a stateful fake of the Stripe API) for the tests:
`python -m tests.localstripe_server --port N`.

Two changes from its own `localstripe` command: it listens on 127.0.0.1 only
(its command binds every IPv6 and IPv4 interface), and its store lives in
memory only (its command rewrites /tmp/localstripe.pickle on every write, a
file any other localstripe on the machine shares, and reloads it at start).
"""

import argparse

from aiohttp import web
from localstripe import resources, server


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    resources.Store.dump_to_disk = lambda self: None
    web.run_app(server.app, host=args.host, port=args.port, access_log=None, print=None)


if __name__ == "__main__":
    main()
