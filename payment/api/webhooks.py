"""POST /webhooks/stripe: Stripe's reports of the PaymentIntents' outcomes.

Routed only when STRIPE_WEBHOOK_SECRET is set (elsewhere a 404, as any
unknown path). The signature is the request's authorization: the bearer
token check (api/auth.py) does not apply, and nothing is read before the
signature is checked. A delivery that is not signed by one of the secrets,
or was signed more than five minutes ago, is a 400 in the envelope and
changes nothing. Any verified event is answered 200 at once: what it
reports of a pending payment of this service is settled inline (a lookup
and one statement; the event is produced without waiting for the broker),
anything else is ignored. Stripe itself is never called here.

Each event id is acted on once (bc_payment.webhook_events): a repeated
delivery is answered 200 and changes nothing. An event whose settling
failed on the way (the database away: a 503) is forgotten again, so that
Stripe's next delivery is acted on. The body is never logged.
"""

from __future__ import annotations

import json
import logging
from typing import NoReturn

import falcon

from payment import service
from payment.api.responses import write
from payment.errors import WEBHOOK_SIGNATURE, BodyTooLarge, InvalidRequest, PaymentError
from payment.gateways import stripe_webhook
from payment.metrics import Metrics

log = logging.getLogger(__name__)

# A PaymentIntent event is a few kilobytes; this leaves room for large metadata.
MAX_BODY_BYTES = 512 * 1024


class StripeWebhookResource:
    # No `auth_required`: the signature is this route's authorization.

    def __init__(self, deps: service.Dependencies, *, secrets: tuple[str, ...], metrics: Metrics):
        if not secrets:
            raise ValueError("a webhook endpoint needs its signing secret")
        self.deps = deps
        self._secrets = secrets
        self.metrics = metrics

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        event = self._verified(req)
        result = self._act_on(event)
        self.metrics.webhook(result)
        write(resp, 200, {"received": True, "result": result})

    def _verified(self, req: falcon.Request) -> object:
        """The event, once its signature holds; else a 400 (413 for a body too large)."""
        body = req.bounded_stream.read(MAX_BODY_BYTES + 1)
        if len(body) > MAX_BODY_BYTES:
            self.metrics.webhook("refused")
            raise BodyTooLarge(f"Invalid webhook: body is larger than {MAX_BODY_BYTES // 1024} KiB")
        try:
            payload = body.decode("utf-8")
        except UnicodeDecodeError:
            self._refuse("body is not UTF-8")
        problem = stripe_webhook.signature_problem(payload, req.get_header("Stripe-Signature"), self._secrets)
        if problem is not None:
            self._refuse(problem)
        try:
            return json.loads(payload)
        except ValueError:
            self._refuse("body is not JSON")

    def _refuse(self, why: str) -> NoReturn:
        self.metrics.webhook("refused")
        log.warning("webhook refused: %s", why)
        raise InvalidRequest(f"Invalid webhook: {why}", WEBHOOK_SIGNATURE)

    def _act_on(self, event: object) -> str:
        report = stripe_webhook.report_of(event)
        if report is None:
            return "ignored"
        fields = {"eventId": report.event_id, "eventType": report.event_type, "paymentId": str(report.payment_id)}
        if not self.deps.store.remember_webhook_event(report.event_id):
            return "duplicate"
        try:
            result = service.settle_reported(report.payment_id, report.intent_id,
                                             report.found.result or service.INTERRUPTED, self.deps)
        except PaymentError:
            self._forget(report.event_id)
            raise
        log.info("webhook event: %s", result, extra=fields)
        return result

    def _forget(self, event_id: str) -> None:
        """Best effort: with the database away this fails too, and the
        reconciler settles the payment instead."""
        try:
            self.deps.store.forget_webhook_event(event_id)
        except PaymentError:
            log.warning("webhook event left recorded though not acted on", extra={"eventId": event_id})
