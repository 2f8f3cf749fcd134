"""Runs localstripe (a stateful fake of the Stripe API) for the tests:
`python -m tests.localstripe_server --port N`.

Changes from its own `localstripe` command: it listens on 127.0.0.1 only
(its command binds every IPv6 and IPv4 interface), and its store lives in
memory only (its command rewrites /tmp/localstripe.pickle on every write, a
file any other localstripe on the machine shares, and reloads it at start).

One addition: Stripe's Search API for PaymentIntents by one metadata value,
`GET /v1/payment_intents/search?query=metadata['key']:'value'`, which
localstripe lacks (it answers the path as an intent id: 404). `POST
/_config/search {"enabled": false}` takes it away again, for the adapter's
fallback to the list.

And one change, to speak the API version the pinned SDK sends
(2026-10-28.endive): a PaymentIntent is created with
`allowed_payment_method_types`, and the older `payment_method_types` is
refused as Stripe refuses it from 2026-09-30.endive on
(`payment_method_types_no_longer_supported`).
"""

import argparse
import re

from aiohttp import web
from localstripe import resources, server
from localstripe.errors import UserError

SEARCH_PATH = "/v1/payment_intents/search"
_QUERY = re.compile(r"metadata\['([^'\\]+)'\]:'([^'\\]*)'")
_search = {"enabled": True}


@web.middleware
async def payment_intent_search(request, handler):
    """Runs after localstripe's own authentication."""
    if request.path != SEARCH_PATH or request.method != "GET" or not _search["enabled"]:
        return await handler(request)
    match = _QUERY.fullmatch(request.query.get("query", "").strip())
    if match is None:
        raise UserError(400, "Only metadata['key']:'value' queries are supported here")
    key, value = match.groups()
    found = [intent._export() for name, intent in resources.store.items()
             if name.startswith("payment_intent:") and (intent.metadata or {}).get(key) == value]
    return server.json_response({"object": "search_result", "url": SEARCH_PATH, "data": found,
                                 "has_more": False, "next_page": None, "total_count": len(found)})


_create_intent = resources.PaymentIntent.__init__


def create_intent_as_the_current_api(self, *args, allowed_payment_method_types=None, **kwargs):
    if kwargs.get("payment_method_types") is not None:
        raise UserError(400, "payment_method_types_no_longer_supported: use allowed_payment_method_types")
    kwargs["payment_method_types"] = allowed_payment_method_types
    _create_intent(self, *args, **kwargs)


async def configure_search(request):
    _search["enabled"] = bool((await request.json()).get("enabled"))
    return web.Response()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    resources.Store.dump_to_disk = lambda self: None
    resources.PaymentIntent.__init__ = create_intent_as_the_current_api
    server.app.middlewares.append(payment_intent_search)
    server.app.router.add_post("/_config/search", configure_search)
    web.run_app(server.app, host=args.host, port=args.port, access_log=None, print=None)


if __name__ == "__main__":
    main()
