"""Real signed tokens for the authorization tests, and a JWKS endpoint served
over HTTP on 127.0.0.1 from a thread."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from devstack.sandbox import EXAMPLE_CUSTOMER_ID

# 48 bytes, over the configuration's 32-byte floor.
HS256_SECRET = "hs256-test-secret-" + "7f3a9c1e5b2d4a6f8e0c1b3d5f7a9c1e"
OTHER_SECRET = "another-secret-nobody-configured-0123456789abcdef"


def claims(sub: str = EXAMPLE_CUSTOMER_ID, expires_in: float = 300, **more) -> dict:
    now = int(time.time())
    return {"sub": sub, "iat": now, "exp": now + expires_in, **more}


def hs256(payload: dict | None = None, secret: str = HS256_SECRET, **headers) -> str:
    return jwt.encode(payload or claims(), secret, algorithm="HS256", headers=headers or None)


def unsigned(payload: dict | None = None, **headers) -> str:
    """`alg: none`, no signature: what a forger sends."""
    return jwt.encode(payload or claims(), None, algorithm="none", headers=headers or None)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def hmac_with(key: bytes, payload: dict | None = None, **headers) -> str:
    """HS256 keyed with arbitrary bytes (PyJWT refuses to encode with a PEM key,
    which is exactly the forgery: an RS256 public key used as the HMAC secret)."""
    header = _b64(json.dumps({"alg": "HS256", "typ": "JWT", **headers}).encode())
    body = _b64(json.dumps(payload or claims()).encode())
    signature = hmac.new(key, f"{header}.{body}".encode(), hashlib.sha256).digest()
    return f"{header}.{body}.{_b64(signature)}"


class RsaKey:
    def __init__(self, kid: str | None = None, key_size: int = 2048):
        self.kid = kid or secrets.token_hex(8)
        self.private = rsa.generate_private_key(public_exponent=65537, key_size=key_size)

    def sign(self, payload: dict | None = None, kid: str | None = None, algorithm: str = "RS256") -> str:
        return jwt.encode(payload or claims(), self.private, algorithm=algorithm,
                          headers={"kid": kid or self.kid})

    def public_pem(self) -> bytes:
        return self.private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)

    def jwk(self) -> dict:
        jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self.private.public_key()))
        return {**jwk, "kid": self.kid, "use": "sig", "alg": "RS256"}


def bearer(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


class JwksServer:
    """GET /jwks.json answers the keys' set. `mode`: "serve", "error" (500),
    "hang" (answers nothing for `hang_s`). `stop()` closes the port: down."""

    def __init__(self, *keys: RsaKey, hang_s: float = 3.0):
        self.keys = list(keys)
        self.mode = "serve"
        self.hang_s = hang_s
        self.fetches = 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                outer.fetches += 1
                if outer.mode == "hang":
                    time.sleep(outer.hang_s)
                if self.path != "/jwks.json" or outer.mode == "error":
                    self.send_response(500 if outer.mode == "error" else 404)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                body = json.dumps({"keys": [key.jwk() for key in outer.keys]}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                try:
                    self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the service gave up waiting (the "hang" mode)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_port}/jwks.json"
        # Polled often: stop() waits up to one poll interval (0.5 s by default).
        self._thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self._thread.start()
        self._stopped = False

    def stop(self) -> None:
        if not self._stopped:
            self._stopped = True
            self.server.shutdown()
            self.server.server_close()
