"""Producing an event the request has just committed, for the payment and the
refund flows alike: wait a bounded time for its delivery report, then have
it marked sent. An event not confirmed in time stays in the outbox for the
relay: what it tells is committed either way, and is answered as such."""

from __future__ import annotations

import logging

from payment import logs, representations
from payment.model import OutboxEvent
from payment.ports import Delivery

log = logging.getLogger(__name__)


def publish_committed(event: OutboxEvent, earlier_unsent: bool, *, delivery: Delivery, timeout: float) -> None:
    """Waits at most `timeout` for the report (0: not at all). Never raises:
    committed is committed, and the relay sends what is left under the same
    eventId."""
    if earlier_unsent:
        # An older event of this order still waits in the outbox (the broker
        # was away): the relay sends both, in commit order.
        return
    try:
        confirmed = delivery.send([event], timeout=timeout)
        if not confirmed:
            # Not waited for at all (a webhook's settle): it is marked sent
            # when its report comes, as a late one is.
            if timeout:
                log.warning("event not confirmed in time; left to the outbox relay", extra=logs.event_fields(event))
        elif event.event_type == representations.SUCCEEDED:
            # Nothing but a refund follows a success in its order (the order
            # cannot be paid again), and a refund's event waits for this mark
            # (payment/refunds.py): it can go with the marker's next batch,
            # and the answer need not wait for it.
            delivery.mark_soon(confirmed)
        else:
            # The order's next attempt or refund may follow at once; its event
            # would find this one unsent and wait behind it for the relay.
            # Marked before the answer, then.
            delivery.mark_now(confirmed)
    except Exception:
        log.warning("event not marked sent; left to the outbox relay", extra=logs.event_fields(event))
