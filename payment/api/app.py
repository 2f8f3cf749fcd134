"""The WSGI application factory: routes, error handlers, nothing global."""

from __future__ import annotations

import falcon

from payment import service
from payment.api import errors
from payment.api.health import LiveResource, ReadyResource
from payment.api.payments import PaymentsResource


def create_app(deps: service.Dependencies, *, ready_checks: dict | None = None,
               max_body_bytes: int = 64 * 1024) -> falcon.App:
    app = falcon.App(media_type=falcon.MEDIA_JSON)
    errors.register(app)
    app.add_route("/payments", PaymentsResource(deps, max_body_bytes=max_body_bytes))
    app.add_route("/health/live", LiveResource())
    app.add_route("/health/ready", ReadyResource(ready_checks or {}))
    return app
