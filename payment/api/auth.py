"""Optional authorization: a bearer JWT on every /payments request, checked
with PyJWT, and the caller it names put on `req.context.caller`.

Off unless a key is configured (AUTH_JWT_HS256_SECRET, AUTH_JWKS_URL): the
documented deployment sends no token. Then every caller is `ANYONE`, who may
pay for and read every payment, as before. The resources decide what a
caller may see; the service layer never learns about HTTP or tokens.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import Any
from uuid import UUID

import falcon
import jwt

from payment.errors import AuthorizationKeysUnavailable, CustomerMismatch, Forbidden, Unauthenticated
from payment.model import Payment

log = logging.getLogger(__name__)

HS256, RS256 = "HS256", "RS256"
# RFC 6750 section 2.1: `Bearer` (any case), one space, a b64token.
_BEARER = re.compile(r"[Bb][Ee][Aa][Rr][Ee][Rr] +([A-Za-z0-9\-._~+/]+=*)")
# A JWT is three base64url parts; a longer header is not one we issued.
_MAX_TOKEN_CHARS = 8192


@dataclass(frozen=True)
class Caller:
    """Who is asking: `subject` is the token's `sub`; `read_all` comes from
    the service scope, `refund` from the refund scope; `unrestricted` is the
    caller when authorization is off."""

    subject: str | None
    read_all: bool = False
    unrestricted: bool = False
    refund: bool = False

    def owns(self, customer_id: UUID) -> bool:
        if self.unrestricted:
            return True
        try:
            # The GUID in any spelling (case) the issuer chose.
            return UUID(self.subject) == customer_id
        except (TypeError, ValueError):
            return False

    def may_read(self, payment: Payment) -> bool:
        return self.read_all or self.owns(payment.customer_id)

    def check_pays_for(self, customer_id: UUID) -> None:
        """A payment is taken only for the customer the token names, whatever its scopes."""
        if not self.owns(customer_id):
            raise CustomerMismatch()

    def check_refunds(self, scope: str) -> None:
        """Refunding needs the refund scope, whoever the token names; checked
        before anything is read. Which payments it may refund are those it
        may read (`may_read`)."""
        if not (self.unrestricted or self.refund):
            raise Forbidden("refunding", scope)


ANYONE = Caller(subject=None, read_all=True, unrestricted=True, refund=True)


class TokenVerifier:
    """Checks a token's signature (only the configured algorithms), expiry,
    and, when configured, audience and issuer; returns the Caller."""

    def __init__(self, *, hs256_secret: str | None = None, jwks_client: jwt.PyJWKClient | None = None,
                 audience: str | None = None, issuer: str | None = None,
                 service_scope: str, refund_scope: str, leeway: float) -> None:
        if not (hs256_secret or jwks_client):
            raise ValueError("a token verifier needs an HS256 secret or a JWKS client")
        self._hs256_secret = hs256_secret
        self._jwks = jwks_client
        self.algorithms = ([HS256] if hs256_secret else []) + ([RS256] if jwks_client else [])
        self.audience = audience
        self.issuer = issuer
        self.service_scope = service_scope
        self.refund_scope = refund_scope
        self.leeway = leeway

    def verify(self, token: str) -> Caller:
        alg = self._algorithm_of(token)
        try:
            claims = jwt.decode(
                token, self._key_for(token, alg), algorithms=[alg],
                audience=self.audience, issuer=self.issuer, leeway=self.leeway,
                options={
                    "require": ["exp", "sub"] + (["aud"] if self.audience else []) + (["iss"] if self.issuer else []),
                    # Without a configured audience a token's `aud` is not ours to judge.
                    "verify_aud": self.audience is not None,
                    "enforce_minimum_key_length": True,
                },
            )
        except jwt.PyJWTError as error:
            raise Unauthenticated(_reason(error), expired=isinstance(error, jwt.ExpiredSignatureError)) from None
        scopes = _scopes(claims)
        return Caller(subject=claims["sub"], read_all=self.service_scope in scopes,
                      refund=self.refund_scope in scopes)

    def _algorithm_of(self, token: str) -> str:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise Unauthenticated("token is malformed") from None
        alg = header.get("alg")
        # Decided before any key is looked at: `none`, HS256 "signed" with the
        # RS256 public key and the like never reach a verification.
        if not isinstance(alg, str) or alg not in self.algorithms:
            raise Unauthenticated("token algorithm is not accepted")
        return alg

    def _key_for(self, token: str, alg: str) -> str | jwt.PyJWK:
        # Each algorithm is accepted only with its key (__init__).
        if alg == HS256 and self._hs256_secret:
            return self._hs256_secret
        if self._jwks is None:
            raise Unauthenticated("token algorithm is not accepted")
        try:
            # Read through the client's cache; fetched again when it expires.
            self._jwks.get_jwk_set()
        except (jwt.PyJWKClientError, jwt.PyJWKSetError) as error:
            log.warning("authorization keys unavailable: %s", type(error).__name__)
            raise AuthorizationKeysUnavailable() from None
        try:
            return self._jwks.get_signing_key_from_jwt(token)
        except (jwt.PyJWKClientConnectionError, jwt.PyJWKSetError):
            # An unknown kid makes the client fetch again; that fetch failed.
            raise AuthorizationKeysUnavailable() from None
        except jwt.PyJWTError:
            raise Unauthenticated("token signing key is unknown") from None


def _scopes(claims: dict[str, Any]) -> set[str]:
    """OAuth's space-separated `scope` (RFC 8693 4.2), or a list in `scope` or `scp`."""
    found: set[str] = set()
    for name in ("scope", "scp"):
        value = claims.get(name)
        if isinstance(value, str):
            found.update(value.split())
        elif isinstance(value, list):
            found.update(item for item in value if isinstance(item, str))
    return found


_REASONS = (
    (jwt.ExpiredSignatureError, "token has expired"),
    (jwt.ImmatureSignatureError, "token is not yet valid"),
    (jwt.InvalidAudienceError, "token audience is not accepted"),
    (jwt.InvalidIssuerError, "token issuer is not accepted"),
    (jwt.InvalidAlgorithmError, "token algorithm is not accepted"),
    (jwt.InvalidSignatureError, "token signature is invalid"),
    (jwt.exceptions.InvalidSubjectError, "token subject is not a string"),
    (jwt.InvalidKeyError, "token signing key is not accepted"),
    (jwt.DecodeError, "token is malformed"),
)


def _reason(error: jwt.PyJWTError) -> str:
    # The claim names are ours (the `require` list), never the token's text.
    if isinstance(error, jwt.MissingRequiredClaimError):
        return f"token has no {error.claim} claim"
    for kind, reason in _REASONS:
        if isinstance(error, kind):
            return reason
    return "token is invalid"


def bearer_token(header: str | None) -> str:
    if not header:
        raise Unauthenticated("a bearer token is required", token_sent=False)
    match = _BEARER.fullmatch(header.strip())
    if not match:
        raise Unauthenticated("the Authorization header is not a bearer token")
    if len(match.group(1)) > _MAX_TOKEN_CHARS:
        raise Unauthenticated("token is too long")
    return match.group(1)


class AuthMiddleware:
    """Puts the caller on `req.context.caller` for each resource that asks
    (`auth_required = True`) and has a responder for the method; a resource
    that reads `caller` without it fails closed (500), never open."""

    def __init__(self, verifier: TokenVerifier | None) -> None:
        self.verifier = verifier

    def process_resource(self, req: falcon.Request, resp: falcon.Response, resource: object,
                         params: dict[str, Any]) -> None:
        if not getattr(resource, "auth_required", False):
            return
        if not hasattr(resource, f"on_{req.method.lower()}"):
            return  # Falcon's 405 or OPTIONS answer; nothing is read
        if self.verifier is None:
            req.context.caller = ANYONE
            return
        req.context.caller = self.verifier.verify(bearer_token(req.get_header("Authorization")))
