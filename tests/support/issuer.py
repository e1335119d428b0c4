"""A federation issuer shaped like GitHub Actions' (token.actions.githubusercontent.com), in-process.

A threaded stdlib HTTP server on a free loopback port serves discovery and a JWKS of keys made
here, and :meth:`FederationIssuer.mint` signs ID tokens with them::

    issuer = start_issuer()
    token = issuer.mint({"aud": "gateway.test"})              # GitHub-shaped claims, RS256
    token = issuer.mint({"aud": "x"}, key="ec")               # ES256
    issuer.stop(); issuer.start()                             # an outage, same port
    issuer.jwks_fetches                                       # how often /jwks was served

Knobs for adversarial tests: :meth:`rotate`, :meth:`add_jwk` (a key without ``alg``, an OKP key,
an RSA key labelled HS256 ...), ``redirect_jwks``/``redirect_discovery`` (answer 302 there),
``discovery_overrides`` (a wrong ``issuer`` ...), ``delay`` (a slow issuer), and
:func:`unsigned_token` / :func:`hs256_with_public_key` for forged tokens.
"""

from __future__ import annotations

import base64
import errno
import hashlib
import hmac
import json
import secrets
import ssl
import sys
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from .procs import free_port

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey


@dataclass
class IssuerKey:
    """A signing key of the issuer: ``kid``, ``alg`` and its public ``jwk`` as published."""

    kind: str
    kid: str
    alg: str
    private_key: PrivateKey
    jwk: dict[str, Any]

    def public_pem(self) -> bytes:
        pem, spki = serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        return self.private_key.public_key().public_bytes(pem, spki)


def make_key(kind: str = "rsa", *, kid: str | None = None, publish_alg: bool = True) -> IssuerKey:
    """A fresh RSA-2048 (RS256) or EC P-256 (ES256) key; ``publish_alg=False`` omits ``alg``."""
    kid = kid or f"{kind}-{secrets.token_hex(4)}"
    private: PrivateKey
    if kind == "rsa":
        private, alg = rsa.generate_private_key(public_exponent=65537, key_size=2048), "RS256"
        jwk = json.loads(RSAAlgorithm.to_jwk(private.public_key()))
    elif kind == "ec":
        private, alg = ec.generate_private_key(ec.SECP256R1()), "ES256"
        jwk = json.loads(ECAlgorithm.to_jwk(private.public_key()))
    else:
        raise ValueError(f"unknown key kind {kind!r}")
    jwk.update(kid=kid, use="sig")
    if publish_alg:
        jwk["alg"] = alg
    return IssuerKey(kind, kid, alg, private, jwk)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _segment(obj: dict[str, Any]) -> str:
    return _b64(json.dumps(obj, separators=(",", ":")).encode())


def unsigned_token(claims: dict[str, Any], headers: dict[str, Any] | None = None) -> str:
    """An ``alg: none`` token (empty signature), as an attacker would send it."""
    return f"{_segment({'alg': 'none', 'typ': 'JWT', **(headers or {})})}.{_segment(claims)}."


def hs256_with_public_key(claims: dict[str, Any], key: IssuerKey) -> str:
    """An HS256 token whose HMAC secret is the issuer's public key (PEM): the alg-confusion attack."""
    signing_input = f"{_segment({'alg': 'HS256', 'typ': 'JWT', 'kid': key.kid})}.{_segment(claims)}"
    mac = hmac.new(key.public_pem(), signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{_b64(mac)}"


class FederationIssuer:
    """The issuer at ``url`` (``http://127.0.0.1:PORT`` plus ``path``); see the module docstring."""

    def __init__(self, port: int, *, path: str = "", tls: ssl.SSLContext | None = None) -> None:
        self.port = port
        self.path = path.rstrip("/")
        self.tls = tls
        self.keys: list[IssuerKey] = [make_key("rsa"), make_key("ec")]
        self.extra_jwks: list[dict[str, Any]] = []
        self.discovery_overrides: dict[str, Any] = {}
        self.redirect_jwks: str | None = None
        self.redirect_discovery: str | None = None
        self.delay = 0.0
        self.jwks_fetches = 0
        self.discovery_fetches = 0
        self.lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    def __repr__(self) -> str:
        return f"<FederationIssuer {self.url} running={self.running}>"

    @property
    def url(self) -> str:
        scheme = "https" if self.tls else "http"
        return f"{scheme}://127.0.0.1:{self.port}{self.path}"

    issuer = url

    @property
    def jwks_uri(self) -> str:
        return f"{self.url}/jwks"

    @property
    def running(self) -> bool:
        return self._server is not None

    def key(self, which: str | IssuerKey = "rsa") -> IssuerKey:
        """``"rsa"``/``"ec"``: the newest key of that kind; or a kid; or an IssuerKey as is."""
        if isinstance(which, IssuerKey):
            return which
        for key in reversed(self.keys):
            if which in (key.kid, key.kind):
                return key
        raise KeyError(which)

    def github_claims(self, **overrides: Any) -> dict[str, Any]:
        """Claims as GitHub Actions puts them in a job's ID token (push to main of acme/app)."""
        now = int(time.time())
        claims: dict[str, Any] = {
            "jti": secrets.token_hex(8), "sub": "repo:acme/app:ref:refs/heads/main",
            "aud": "gateway.test", "ref": "refs/heads/main", "sha": "0" * 40,
            "repository": "acme/app", "repository_owner": "acme", "repository_owner_id": "1234567",
            "repository_id": "7654321", "repository_visibility": "private", "run_id": "42",
            "run_number": "7", "run_attempt": "1", "actor": "octocat", "actor_id": "583231",
            "workflow": "release", "event_name": "push", "ref_type": "branch",
            "job_workflow_ref": "acme/app/.github/workflows/release.yml@refs/heads/main",
            "runner_environment": "github-hosted", "iss": self.url,
            "nbf": now - 5, "iat": now - 5, "exp": now + 300,
        }
        claims.update(overrides)
        return claims

    def mint(
        self,
        claims: dict[str, Any] | None = None,
        *,
        key: str | IssuerKey = "rsa",
        headers: dict[str, Any] | None = None,
        algorithm: str | None = None,
    ) -> str:
        """A token signed by ``key``: :meth:`github_claims` updated with ``claims`` (a value of
        None removes that claim); ``headers`` are added to (or replace) ``typ``/``kid``."""
        signer = self.key(key)
        payload = self.github_claims()
        for name, value in (claims or {}).items():
            if value is None:
                payload.pop(name, None)
            else:
                payload[name] = value
        header = {"typ": "JWT", "kid": signer.kid, **(headers or {})}
        header = {k: v for k, v in header.items() if v is not None}
        return jwt.encode(payload, signer.private_key, algorithm=algorithm or signer.alg, headers=header)

    def rotate(self, kind: str = "rsa") -> IssuerKey:
        """Replace every key of ``kind`` with a new one (old tokens' kids become unknown)."""
        new = make_key(kind)
        with self.lock:
            self.keys = [k for k in self.keys if k.kind != kind] + [new]
        return new

    def add_key(self, key: IssuerKey) -> IssuerKey:
        with self.lock:
            self.keys.append(key)
        return key

    def add_jwk(self, jwk: dict[str, Any]) -> None:
        """Publish a raw JWK as given (no private key here): an OKP key, ``alg: HS256`` ..."""
        with self.lock:
            self.extra_jwks.append(dict(jwk))

    def jwks(self) -> dict[str, Any]:
        with self.lock:
            return {"keys": [k.jwk for k in self.keys] + list(self.extra_jwks)}

    def discovery(self) -> dict[str, Any]:
        doc = {
            "issuer": self.url, "jwks_uri": self.jwks_uri, "response_types_supported": ["id_token"],
            "subject_types_supported": ["public", "pairwise"], "scopes_supported": ["openid"],
            "claims_supported": ["sub", "aud", "exp", "iat", "iss", "jti", "nbf", "ref", "repository"],
            "id_token_signing_alg_values_supported": ["RS256"],
        }
        doc.update(self.discovery_overrides)
        return doc

    def start(self) -> None:
        """Listen (again) on ``port``; the counters and keys are kept."""
        if self._server is not None:
            raise RuntimeError("issuer already running")
        server = _Server(("127.0.0.1", self.port), _handler(self))
        if self.tls is not None:
            server.socket = self.tls.wrap_socket(server.socket, server_side=True)
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop listening: connections are refused until :meth:`start`."""
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
        if self._thread is not None:
            self._thread.join(5.0)
            self._thread = None

    close = stop


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that gave up (a timeout test) is expected; anything else is printed.
        if not isinstance(sys.exc_info()[1], ConnectionError | ssl.SSLError):
            super().handle_error(request, client_address)


def _handler(issuer: FederationIssuer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            if issuer.delay:
                time.sleep(issuer.delay)
            path = self.path.split("?", 1)[0]
            if path == f"{issuer.path}/.well-known/openid-configuration":
                with issuer.lock:
                    issuer.discovery_fetches += 1
                self._answer(issuer.redirect_discovery, issuer.discovery)
            elif path == f"{issuer.path}/jwks":
                with issuer.lock:
                    issuer.jwks_fetches += 1
                self._answer(issuer.redirect_jwks, issuer.jwks)
            else:
                self._send(404, b'{"error":"not found"}')

        def _answer(self, redirect: str | None, document: Any) -> None:
            body = b"" if redirect else json.dumps(document()).encode()
            self._send(302 if redirect else 200, body, location=redirect)

        def _send(self, status: int, body: bytes, location: str | None = None) -> None:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            # No keep-alive: after stop() no old connection may still answer.
            self.send_header("Connection", "close")
            self.close_connection = True
            if location:
                self.send_header("Location", location)
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:  # quiet test output
            pass

    return Handler


def start_issuer(*, path: str = "", tls: ssl.SSLContext | None = None) -> FederationIssuer:
    """Start a :class:`FederationIssuer` on a free loopback port (listening when this returns)."""
    for attempt in range(3):
        issuer = FederationIssuer(free_port(), path=path, tls=tls)
        try:
            issuer.start()
        except OSError as exc:  # the port was taken between free_port() and bind()
            if attempt == 2 or exc.errno != errno.EADDRINUSE:
                raise
            continue
        return issuer
    raise AssertionError("unreachable")
