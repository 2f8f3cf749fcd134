"""Stripe behind the gateway port: one PaymentIntent per payment.

  prepare  creates the intent (not confirmed: no money moves) and returns its
           id, which the service stores on the payment before charging.
  charge   retrieves the intent; one already settled answers as it settled,
           otherwise it is confirmed once. A decline is a result; anything
           that leaves the outcome unknown raises GatewayUnreachable.
  lookup   says what Stripe knows of the intent, and cancels one that was
           never confirmed, so that a confirm still on its way fails.

Every call that may create or move something carries an idempotency key
derived from the payment id (`gateway.idempotency_key`). Stripe replays the
first answer for 24 hours; the adapter does not rely on that alone: `charge`
reads the intent's state before confirming, so a repeated charge never
confirms twice even against a server that ignores the keys (localstripe).

The transaction id of a Stripe payment is its PaymentIntent id (`pi_...`):
known before the charge, the same in `charge` and `lookup`, and what refunds
and the dashboard are keyed by (the intent's latest charge is found from it).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from decimal import Decimal
from typing import Any, ParamSpec, TypeVar

import stripe
from stripe.params import PaymentIntentCreateParams, PaymentIntentUpdateParams

from payment.currencies import MINOR_UNITS
from payment.gateways import stripe_declines
from payment.gateways.port import NEVER_CHARGED, UNKNOWN, GatewayUnreachable, Lookup, idempotency_key
from payment.model import ChargeResult, Payment

log = logging.getLogger(__name__)

P = ParamSpec("P")
R = TypeVar("R")

# Metadata key set on an intent this adapter declined and cancelled itself
# (3-D Secure), so that a later charge or lookup gives the same answer.
DECLINE_MARK = "declineCode"
CANCELABLE = ("requires_payment_method", "requires_confirmation", "requires_action")

# The SDK logs every response body at DEBUG, and an intent's body holds its
# client_secret: those lines stay out of the service's logs.
logging.getLogger("stripe").setLevel(logging.WARNING)


class StripeGateway:
    is_simulated = False

    def __init__(self, api_key: str, *, api_base: str, payment_method: str, timeout: float,
                 max_network_retries: int = 0) -> None:
        if not api_key:
            raise ValueError("a Stripe API key is needed")
        self.api_base = api_base
        self.payment_method = payment_method
        self.timeout = timeout
        # One client per adapter, never the SDK's global api_key. The SDK's
        # retries are off by default: a failed call leaves the payment pending
        # and the reconciler asks again, rather than a request waiting longer.
        self._client = stripe.StripeClient(
            api_key,
            base_addresses={"api": api_base},
            max_network_retries=max_network_retries,
            http_client=stripe.RequestsClient(timeout=timeout),
        )
        self._intents = self._client.v1.payment_intents

    def __repr__(self) -> str:
        return f"StripeGateway(api_base={self.api_base!r}, payment_method={self.payment_method!r})"

    # -- the port ---------------------------------------------------------

    def prepare(self, payment: Payment) -> str:
        if payment.gateway_reference:
            return payment.gateway_reference
        intent = self._call("create", self._intents.create, self._create_params(payment),
                            options={"idempotency_key": idempotency_key(payment, "create")})
        return intent.id

    def charge(self, payment: Payment) -> ChargeResult:
        if not payment.gateway_reference:
            # Confirming needs the intent's id stored first (the service's rule).
            raise GatewayUnreachable("no PaymentIntent is stored for this payment")
        intent = self._retrieve(payment.gateway_reference)
        if intent.status == "requires_confirmation":
            confirmed = self._confirm(payment, intent)
            if isinstance(confirmed, ChargeResult):
                return confirmed
            intent = confirmed
        return self._charge_result(payment, intent)

    def lookup(self, payment: Payment) -> Lookup:
        if not payment.gateway_reference:
            # The process stopped between creating the intent and storing its
            # id: the service never confirms an intent it has not stored, so
            # no money moved. The intent, if any, is cancelled for tidiness.
            self._cancel_unrecorded(payment)
            return NEVER_CHARGED
        try:
            return self._lookup(payment, self._retrieve(payment.gateway_reference))
        except GatewayUnreachable as error:
            log.warning("Stripe lookup: outcome unknown (%s)", error, extra=_fields(payment))
            return UNKNOWN

    # -- the steps --------------------------------------------------------

    def _create_params(self, payment: Payment) -> PaymentIntentCreateParams:
        return {
            "amount": minor_units(payment.amount, payment.currency),
            "currency": payment.currency.lower(),
            "payment_method": self.payment_method,
            # Cards only (Stripe's wallets are cards too): with automatic
            # payment methods a confirm would need a return URL for redirects.
            # The SDK's types no longer list this parameter: its pinned API
            # version (2026-10-28.endive) takes allowed_payment_method_types
            # instead, which localstripe, the tests' Stripe, does not know.
            "payment_method_types": ["card"],  # type: ignore[typeddict-unknown-key]
            "confirm": False,
            "metadata": {"orderId": str(payment.order_id), "paymentId": str(payment.id)},
        }

    def _confirm(self, payment: Payment, intent: stripe.PaymentIntent) -> stripe.PaymentIntent | ChargeResult:
        """The confirmed intent, or the decline as a ChargeResult."""
        try:
            return self._intents.confirm(
                intent.id, options={"idempotency_key": idempotency_key(payment, "confirm")})
        except stripe.CardError as error:
            return self._declined(payment, _decline_code(error.error))
        except stripe.InvalidRequestError:
            # The intent left requires_confirmation meanwhile (confirmed by a
            # concurrent charge, or cancelled by the reconciler): its state now
            # tells the outcome.
            return self._retrieve(intent.id)
        except stripe.StripeError as error:
            raise _unreachable("confirm", error) from error

    def _charge_result(self, payment: Payment, intent: stripe.PaymentIntent) -> ChargeResult:
        found = _settled(intent)
        if found is NEVER_CHARGED:
            return stripe_declines.interrupted()
        if found is not None and found.result is not None:
            return found.result
        if intent.status == "requires_action":
            return self._refuse_authentication(payment, intent)
        # processing, requires_capture, or unconfirmed after a lost race:
        # the reconciler asks again later.
        raise GatewayUnreachable(f"the PaymentIntent is {intent.status}")

    def _lookup(self, payment: Payment, intent: stripe.PaymentIntent, *, may_cancel: bool = True) -> Lookup:
        found = _settled(intent)
        if found is not None:
            return found
        if intent.status == "requires_action":
            return Lookup.of(self._refuse_authentication(payment, intent))
        if intent.status in ("requires_payment_method", "requires_confirmation") and may_cancel:
            return self._void(payment, intent)
        return UNKNOWN  # processing: Stripe has not decided yet

    def _void(self, payment: Payment, intent: stripe.PaymentIntent) -> Lookup:
        """Cancel an intent never confirmed: a confirm still on its way now fails."""
        try:
            canceled = self._intents.cancel(intent.id)
        except stripe.InvalidRequestError:
            # It moved on between the read and the cancel (a confirm got there first).
            return self._lookup(payment, self._retrieve(intent.id), may_cancel=False)
        except stripe.StripeError as error:
            raise _unreachable("cancel", error) from error
        return NEVER_CHARGED if canceled.status == "canceled" else UNKNOWN

    def _refuse_authentication(self, payment: Payment, intent: stripe.PaymentIntent) -> ChargeResult:
        """3-D Secure asked for: declined, and the intent cancelled. The customer
        would have to authenticate in their browser with the intent's client
        secret, which this service never hands out; so it could never complete.
        The mark in its metadata makes a later charge or lookup say the same."""
        params: PaymentIntentUpdateParams = {"metadata": {DECLINE_MARK: "authentication_required"}}
        self._call("update", self._intents.update, intent.id, params)
        self._call("cancel", self._intents.cancel, intent.id)
        return self._declined(payment, "authentication_required")

    def _declined(self, payment: Payment, code: str | None) -> ChargeResult:
        result = stripe_declines.decline(code)
        # The code as Stripe sent it (a disguised "stolen_card" included) is
        # for the operators, not the customer.
        log.info("Stripe declined the charge", extra={**_fields(payment), "stripeCode": code,
                                                      "errorCode": result.error_code})
        return result

    def _cancel_unrecorded(self, payment: Payment) -> None:
        """Best effort: the create call again with the same idempotency key
        answers the intent it created (for 24 hours on Stripe; localstripe
        makes a new one), which is then cancelled."""
        try:
            intent = self._intents.create(self._create_params(payment),
                                          options={"idempotency_key": idempotency_key(payment, "create")})
            if intent.status in CANCELABLE:
                self._intents.cancel(intent.id)
        except stripe.StripeError as error:
            log.info("Stripe: no unrecorded PaymentIntent cancelled (%s)", type(error).__name__,
                     extra=_fields(payment))

    def _retrieve(self, reference: str) -> stripe.PaymentIntent:
        return self._call("retrieve", self._intents.retrieve, reference)

    @staticmethod
    def _call(operation: str, method: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return method(*args, **kwargs)
        except stripe.StripeError as error:
            raise _unreachable(operation, error) from error


def minor_units(amount: Decimal, currency: str) -> int:
    """The amount in the currency's minor units, exactly (150.00 USD -> 15000)."""
    scaled = Decimal(amount).scaleb(MINOR_UNITS[currency.upper()])
    if scaled != scaled.to_integral_value():
        raise ValueError(f"{amount} has more decimals than {currency} allows")
    return int(scaled)


def _settled(intent: stripe.PaymentIntent) -> Lookup | None:
    """What an intent's state says for good, or None while it says nothing final."""
    if intent.status == "succeeded":
        return Lookup.of(_success(intent))
    if intent.status == "canceled":
        mark = _get(_get(intent, "metadata"), DECLINE_MARK)
        return Lookup.of(stripe_declines.decline(mark)) if mark else NEVER_CHARGED
    error = _get(intent, "last_payment_error")
    if intent.status == "requires_payment_method" and error:
        return Lookup.of(stripe_declines.decline(_decline_code(error)))
    return None


def transaction_id(intent_id: str) -> str:
    """The contract's `txn_<letters and digits>` form of a PaymentIntent id
    (`pi_3Mtw…` -> `txn_3Mtw…`): the event schema, shared with consumers,
    holds transaction ids to it. The intent id itself is on the payment
    (`gateway_reference`)."""
    return "txn_" + intent_id.removeprefix("pi_").replace("_", "")


def _success(intent: stripe.PaymentIntent) -> ChargeResult:
    return ChargeResult(succeeded=True, transaction_id=transaction_id(intent.id), simulated_response=None)


def _decline_code(error: stripe.StripeObject | None) -> str | None:
    """Stripe's most precise code: decline_code (insufficient_funds...) when
    the card network gave one, else the error code (card_declined...)."""
    code: str | None = _get(error, "decline_code") or _get(error, "code")
    return code


def _get(obj: stripe.StripeObject | None, key: str) -> Any:
    """A field of a Stripe object (not a dict), None when absent."""
    return obj[key] if obj is not None and key in obj else None


def _unreachable(operation: str, error: stripe.StripeError) -> GatewayUnreachable:
    """The outcome is unknown. The message names the kind of failure, never
    Stripe's text (which may echo request details)."""
    status = f" HTTP {error.http_status}" if error.http_status else ""
    return GatewayUnreachable(f"Stripe {operation} failed: {type(error).__name__}{status}")


def _fields(payment: Payment) -> dict[str, str | None]:
    return {"paymentId": str(payment.id), "stripePaymentIntent": payment.gateway_reference}
