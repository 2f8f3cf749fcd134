"""The request id: taken from X-Request-ID or made, bound to every log line of
the request and returned in the response. The upstream clients pass it on
from the log context (payment/upstream/clients.py)."""

from __future__ import annotations

import re
import uuid

import falcon

from payment import logs

HEADER = logs.REQUEST_ID_HEADER

# An id from outside goes into log lines and upstream headers; anything that
# could break either (control characters, quotes, an unbounded length) is
# replaced rather than passed on.
_ACCEPTABLE = re.compile(r"[A-Za-z0-9._:/+=@-]{1,128}")


def request_id_from(value: str | None) -> str:
    if value and _ACCEPTABLE.fullmatch(value):
        return value
    return uuid.uuid4().hex


class RequestIdMiddleware:
    def process_request(self, req: falcon.Request, resp: falcon.Response) -> None:
        req.context.request_id = request_id_from(req.get_header(HEADER))
        req.context.log_token = logs.bind(requestId=req.context.request_id)

    def process_response(self, req: falcon.Request, resp: falcon.Response, resource: object,
                         req_succeeded: bool) -> None:
        resp.set_header(HEADER, req.context.request_id)
        logs.unbind(req.context.log_token)

