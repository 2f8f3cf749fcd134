"""Stripe behind the gateway port: one PaymentIntent per payment.

  check_request  refuses what Stripe could never charge here: paypal, and a
                 request without a paymentToken when no test PaymentMethod
                 is configured.
  prepare        creates the intent for the customer's PaymentMethod (the
                 request's paymentToken, else STRIPE_PAYMENT_METHOD), not
                 confirmed, so no money moves, and returns its id, which the
                 service stores on the payment before charging. A create
                 refused for the payment itself is a decline.
  charge         retrieves the intent; one already settled answers as it
                 settled, otherwise it is confirmed once. A decline is a
                 result; an intent awaiting capture is captured; one still
                 `processing` raises GatewayPending; anything that leaves
                 the outcome unknown raises GatewayUnreachable.
  lookup         says what Stripe knows of the intent, and cancels one that
                 was never confirmed, so that a confirm still on its way fails.
  refund, lookup_refund
                 Stripe Refunds of the intent (payment/gateways/stripe_refunds.py).

Every call that may create or move something carries an idempotency key
derived from the payment id (`gateway.idempotency_key`). Stripe replays the
first answer for 24 hours; the adapter does not rely on that alone: `charge`
reads the intent's state before confirming, so a repeated charge never
confirms twice even against a server that ignores the keys (localstripe).

The transaction id of a Stripe payment is its PaymentIntent id (`pi_...`):
known before the charge, the same in `charge` and `lookup`, and what refunds
and the dashboard are keyed by (the intent's latest charge is found from it).

Every failed call is recorded in `health` (payment/gateways/stripe_health.py):
counted by kind, an alarm for a key that Stripe refuses, and /health/ready.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any, ParamSpec, TypeVar

import stripe
from stripe.params import PaymentIntentCreateParams, PaymentIntentListParams, PaymentIntentUpdateParams

from payment.currencies import MINOR_UNITS
from payment.errors import InvalidRequest
from payment.gateways import stripe_declines
from payment.gateways.port import (
    NEVER_CHARGED,
    UNKNOWN,
    Found,
    GatewayPending,
    GatewayUnreachable,
    Lookup,
    RefundLookup,
    idempotency_key,
)
from payment.gateways.stripe_health import ErrorCounter, GatewayHealth
from payment.gateways.stripe_refunds import StripeRefunds
from payment.model import ChargeResult, Payment, PaymentRequest, Refund, RefundResult

log = logging.getLogger(__name__)

P = ParamSpec("P")
R = TypeVar("R")
# A Stripe object, or one of an event's objects as parsed JSON.
Intent = stripe.StripeObject | dict[str, Any]

# Metadata key set on an intent this adapter declined and cancelled itself
# (3-D Secure), so that a later charge or lookup gives the same answer.
DECLINE_MARK = "declineCode"
# The request's payment methods that reach Stripe as card PaymentMethods
# (Apple Pay and Google Pay are cards to Stripe); paypal is not one.
CARD_METHODS = ("credit_card", "debit_card", "apple_pay", "google_pay")
# An empty Search answer proves nothing about an intent younger than this:
# Stripe's search index lags behind writes (typically by under a minute).
SEARCH_FRESHNESS_S = 120.0
# Listing intents, newest first, goes back to the payment's creation less
# this (clocks differ), and through at most this many pages of 100.
CLOCK_SKEW_S = 3600.0
MAX_LIST_PAGES = 10

# The SDK logs every response body at DEBUG, and an intent's body holds its
# client_secret: those lines stay out of the service's logs.
logging.getLogger("stripe").setLevel(logging.WARNING)


class StripeGateway:
    is_simulated = False

    def __init__(self, api_key: str, *, api_base: str, payment_method: str | None, timeout: float,
                 max_network_retries: int = 0, metrics: ErrorCounter | None = None) -> None:
        if not api_key:
            raise ValueError("a Stripe API key is needed")
        self.api_base = api_base
        # Charged when a request brings no paymentToken (a test PaymentMethod:
        # the configuration refuses one with a live key).
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
        self.health = GatewayHealth(metrics=metrics, probe=self._probe)
        self._refunds = StripeRefunds(self._client, self.health)

    def __repr__(self) -> str:
        return f"StripeGateway(api_base={self.api_base!r}, payment_method={self.payment_method!r})"

    # -- the port ---------------------------------------------------------

    def check_request(self, request: PaymentRequest) -> None:
        if request.payment_method not in CARD_METHODS:
            raise InvalidRequest(f"Invalid request: paymentMethod {request.payment_method} is not supported "
                                 "by the stripe gateway")
        if request.payment_token is None and self.payment_method is None:
            raise InvalidRequest("Invalid request: paymentToken is required")

    def prepare(self, payment: Payment) -> str | ChargeResult:
        if payment.gateway_reference:
            return payment.gateway_reference
        try:
            intent = self._call_expecting((stripe.CardError, stripe.InvalidRequestError), "create",
                                          self._intents.create, self._create_params(payment),
                                          options={"idempotency_key": idempotency_key(payment, "create")})
        except stripe.CardError as error:
            return self._declined(payment, _decline_code(error.error))
        except stripe.InvalidRequestError as error:
            return self._refused(payment, error)
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
        try:
            if not payment.gateway_reference:
                return self._lookup_unrecorded(payment)
            intent = self._retrieve_if_any(payment.gateway_reference)
            if intent is None:
                # The stored id names no intent: none was ever confirmed for it.
                log.warning("Stripe has no PaymentIntent by the stored id: never charged", extra=_fields(payment))
                return NEVER_CHARGED
            return self._lookup(payment, intent)
        except GatewayUnreachable as error:
            log.warning("Stripe lookup: outcome unknown (%s)", error, extra=_fields(payment))
            return UNKNOWN

    def refund(self, payment: Payment, refund: Refund) -> RefundResult:
        return self._refunds.refund(payment, refund, amount_minor=minor_units(refund.amount, refund.currency))

    def lookup_refund(self, payment: Payment, refund: Refund) -> RefundLookup:
        return self._refunds.lookup_refund(payment, refund)

    # -- the steps --------------------------------------------------------

    def _create_params(self, payment: Payment) -> PaymentIntentCreateParams:
        method = payment.payment_token or self.payment_method
        if method is None:
            # check_request refused such a request before it became a payment.
            raise GatewayUnreachable("no payment method to charge")
        return {
            "amount": minor_units(payment.amount, payment.currency),
            "currency": payment.currency.lower(),
            "payment_method": method,
            # Cards only (Stripe's wallets are cards too): with automatic
            # payment methods a confirm would need a return URL for redirects.
            # The SDK's pinned API version (2026-10-28.endive) refuses the
            # older payment_method_types (payment_method_types_no_longer_supported).
            "allowed_payment_method_types": ["card"],
            # Stated, not left to the account's default: an intent confirmed
            # here is charged at once, never left waiting for a capture.
            "capture_method": "automatic",
            "confirm": False,
            "metadata": {"orderId": str(payment.order_id), "paymentId": str(payment.id)},
        }

    def _confirm(self, payment: Payment, intent: stripe.PaymentIntent) -> stripe.PaymentIntent | ChargeResult:
        """The confirmed intent, or the decline as a ChargeResult."""
        try:
            return self._call_expecting((stripe.CardError, stripe.InvalidRequestError), "confirm",
                                        self._intents.confirm, intent.id,
                                        options={"idempotency_key": idempotency_key(payment, "confirm")})
        except stripe.CardError as error:
            return self._declined(payment, _decline_code(error.error))
        except stripe.InvalidRequestError:
            # The intent left requires_confirmation meanwhile (confirmed by a
            # concurrent charge, or cancelled by the reconciler): its state now
            # tells the outcome.
            return self._retrieve(intent.id)

    def _charge_result(self, payment: Payment, intent: stripe.PaymentIntent) -> ChargeResult:
        if intent.status == "requires_capture":
            intent = self._capture(payment, intent)
        found = _settled(intent)
        if found is NEVER_CHARGED:
            return stripe_declines.interrupted()
        if found is not None and found.result is not None:
            return found.result
        if intent.status == "requires_action":
            return self._refuse_authentication(payment, intent)
        if intent.status == "processing":
            # Stripe has the charge and has not decided: its webhook, or the
            # reconciler later, settles the payment.
            raise GatewayPending("the PaymentIntent is processing")
        # Unconfirmed after a lost race, or a capture that did not happen:
        # the reconciler asks again later.
        raise GatewayUnreachable(f"the PaymentIntent is {intent.status}")

    def _lookup(self, payment: Payment, intent: stripe.PaymentIntent, *, may_cancel: bool = True) -> Lookup:
        if intent.status == "requires_capture":
            intent = self._capture(payment, intent)
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
            canceled = self._call_expecting((stripe.InvalidRequestError,), "cancel", self._intents.cancel, intent.id)
        except stripe.InvalidRequestError:
            # It moved on between the read and the cancel (a confirm got there first).
            return self._lookup(payment, self._retrieve(intent.id), may_cancel=False)
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

    def _retrieve(self, reference: str) -> stripe.PaymentIntent:
        return self._call("retrieve", self._intents.retrieve, reference)

    def _call(self, operation: str, method: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> R:
        """One call to Stripe, recorded in `health`; any error leaves as
        GatewayUnreachable, naming the operation."""
        return self._call_expecting((), operation, method, *args, **kwargs)

    def _call_expecting(self, expect: tuple[type[stripe.StripeError], ...], operation: str,
                        method: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> R:
        """One call to Stripe, recorded in `health`. An error of a kind in
        `expect` is an answer the caller reads (a decline, an intent not
        found) and leaves as it is; any other leaves as GatewayUnreachable."""
        try:
            answer = method(*args, **kwargs)
        except expect:
            self.health.succeeded()  # Stripe answered, and took the key
            raise
        except stripe.StripeError as error:
            self.health.failed(error)
            raise _unreachable(operation, error) from error
        self.health.succeeded()
        return answer

    def _probe(self) -> None:
        """The cheapest read the service's own key must be allowed: one intent listed."""
        self._call("probe", self._intents.list, {"limit": 1})

    # -- a create refused, an intent awaiting capture, an intent not found --

    def _refused(self, payment: Payment, error: stripe.InvalidRequestError) -> ChargeResult:
        """A create Stripe refused: a decline when the payment itself will
        not do (its amount, currency or payment method), nothing having been
        made; else the service's own request is wrong, the outcome unknown."""
        code = stripe_declines.refusal_code(error.code, getattr(error, "param", None), error.http_status)
        if code is None:
            self.health.failed(error)
            raise _unreachable("create", error) from error
        log.info("Stripe refused the payment", extra={**_fields(payment), "stripeCode": code})
        return stripe_declines.refused(code)

    def _capture(self, payment: Payment, intent: stripe.PaymentIntent) -> stripe.PaymentIntent:
        """An intent authorised and awaiting its capture (an account or a
        caller that asked for manual capture): captured, once, so that it
        neither waits for ever nor lapses; the intent as it now is."""
        try:
            return self._call_expecting((stripe.InvalidRequestError,), "capture", self._intents.capture, intent.id,
                                        options={"idempotency_key": idempotency_key(payment, "capture")})
        except stripe.InvalidRequestError:
            # Captured by a concurrent call, or cancelled (the authorisation
            # lapsed): its state now tells.
            return self._retrieve(intent.id)

    def _retrieve_if_any(self, reference: str) -> stripe.PaymentIntent | None:
        """The intent, or None when Stripe has none by that id."""
        try:
            return self._call_expecting((stripe.InvalidRequestError,), "retrieve", self._intents.retrieve, reference)
        except stripe.InvalidRequestError as error:
            if _is_missing(error):
                return None
            self.health.failed(error)
            raise _unreachable("retrieve", error) from error

    # -- a payment whose intent id was never stored --------------------------

    def _lookup_unrecorded(self, payment: Payment) -> Lookup:
        """The process stopped between creating the intent and storing its
        id (or the create's answer was lost). The service never confirms an
        intent it has not stored, so none was charged; what Stripe has for
        the payment is found by its metadata and cancelled. NEVER_CHARGED
        only when the search could tell: otherwise UNKNOWN, asked again."""
        intents = self._intents_for(payment)
        if intents is None:
            log.warning("Stripe cannot list the intents of a payment with no stored intent id",
                        extra=_fields(payment))
            return UNKNOWN
        answers = [self._lookup(payment, intent) for intent in intents]
        for found in (Found.CHARGED, Found.UNKNOWN, Found.DECLINED):
            for answer in answers:
                if answer.found is found:
                    return answer
        return NEVER_CHARGED

    def _intents_for(self, payment: Payment) -> list[stripe.PaymentIntent] | None:
        """Every intent whose metadata names the payment, by the Search API;
        by the list where there is no search (localstripe) or where it may
        not have indexed the intent yet. None: too many intents to tell."""
        query = f"metadata['paymentId']:'{payment.id}'"
        try:
            found = self._call_expecting((stripe.InvalidRequestError,), "search", self._intents.search,
                                         {"query": query, "limit": 100})
        except stripe.InvalidRequestError:
            return self._listed(payment)
        if found.data or _age_s(payment) >= SEARCH_FRESHNESS_S:
            return list(found.data)
        return self._listed(payment)

    def _listed(self, payment: Payment) -> list[stripe.PaymentIntent] | None:
        """The payment's intents from the list, newest first, back to its
        creation; None past MAX_LIST_PAGES."""
        since = payment.created_at.timestamp() - CLOCK_SKEW_S
        mine: list[stripe.PaymentIntent] = []
        params: PaymentIntentListParams = {"limit": 100}
        for _ in range(MAX_LIST_PAGES):
            page = self._call("list", self._intents.list, params)
            mine += [intent for intent in page.data
                     if _get(_get(intent, "metadata"), "paymentId") == str(payment.id)]
            if not page.has_more or (page.data and page.data[-1].created < since):
                return mine
            params = {"limit": 100, "starting_after": page.data[-1].id}
        return None


def minor_units(amount: Decimal, currency: str) -> int:
    """The amount in the currency's minor units, exactly (150.00 USD -> 15000)."""
    scaled = Decimal(amount).scaleb(MINOR_UNITS[currency.upper()])
    if scaled != scaled.to_integral_value():
        raise ValueError(f"{amount} has more decimals than {currency} allows")
    return int(scaled)


def _settled(intent: Intent) -> Lookup | None:
    """What an intent's state says for good, or None while it says nothing
    final. `intent`: a Stripe object, or an event's intent as parsed JSON."""
    status = _get(intent, "status")
    if status == "succeeded":
        return Lookup.of(_success(intent))
    if status == "canceled":
        mark = _get(_get(intent, "metadata"), DECLINE_MARK)
        return Lookup.of(stripe_declines.decline(mark)) if mark else NEVER_CHARGED
    error = _get(intent, "last_payment_error")
    if status == "requires_payment_method" and error:
        return Lookup.of(stripe_declines.decline(_decline_code(error)))
    return None


def settled_in_event(intent: dict[str, Any]) -> Lookup | None:
    """What a webhook event's intent (its state when the event was made)
    says for good; None while nothing is final. Never calls Stripe."""
    return _settled(intent)


def transaction_id(intent_id: str) -> str:
    """The contract's `txn_<letters and digits>` form of a PaymentIntent id
    (`pi_3Mtw…` -> `txn_3Mtw…`): the event schema, shared with consumers,
    holds transaction ids to it. The intent id itself is on the payment
    (`gateway_reference`)."""
    return "txn_" + intent_id.removeprefix("pi_").replace("_", "")


def _success(intent: Intent) -> ChargeResult:
    return ChargeResult(succeeded=True, transaction_id=transaction_id(intent["id"]), simulated_response=None)


def _decline_code(error: Intent | None) -> str | None:
    """Stripe's most precise code: decline_code (insufficient_funds...) when
    the card network gave one, else the error code (card_declined...)."""
    code = _get(error, "decline_code") or _get(error, "code")
    return str(code) if code is not None else None


def _get(obj: Intent | None, key: str) -> Any:
    """A field of a Stripe object (which is not a dict) or of a parsed JSON
    object, None when absent."""
    return obj[key] if obj is not None and key in obj else None


def _is_missing(error: stripe.InvalidRequestError) -> bool:
    """Stripe has no object by the id asked for: resource_missing, or a bare
    404 (localstripe's answer)."""
    return error.code == "resource_missing" or (error.code is None and error.http_status == 404)


def _age_s(payment: Payment) -> float:
    return (datetime.now(timezone.utc) - payment.created_at).total_seconds()


def _unreachable(operation: str, error: stripe.StripeError) -> GatewayUnreachable:
    """The outcome is unknown. The message names the kind of failure, never
    Stripe's text (which may echo request details)."""
    status = f" HTTP {error.http_status}" if error.http_status else ""
    return GatewayUnreachable(f"Stripe {operation} failed: {type(error).__name__}{status}")


def _fields(payment: Payment) -> dict[str, str | None]:
    return {"paymentId": str(payment.id), "stripePaymentIntent": payment.gateway_reference}
