"""TLS (optionally mTLS) and authentication for the test registry: distribution's own htpasswd or
token auth, so tests can put a protected registry behind the gateway, or ask distribution 2.8.2
itself what it answers (protocol parity).

    certs = make_certificates(tmp / "certs")
    security = RegistrySecurity(tls=certs, client_cert=issue_client_certificate(certs, tmp / "c"),
                                require_client_cert=True,
                                htpasswd=HtpasswdAuth.create(tmp / "htpasswd", "up", "up-secret"))
    upstream = start_registry(tmp / "registry", security=security)

    auth = TokenAuth.create(tmp / "token", service="registry.test")   # a key and its certificate
    upstream = start_registry(tmp / "r", security=RegistrySecurity(token=auth))
    token = auth.mint([{"type": "repository", "name": "a/b", "actions": ["pull"]}])
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import http.client
import secrets
import ssl
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import bcrypt
import jwt
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from .tls import ClientCertificate, TestCertificates


@dataclass(frozen=True)
class HtpasswdAuth:
    """distribution's `auth: htpasswd` (bcrypt lines only), with one account the tests know."""

    path: Path
    username: str
    password: str = field(repr=False)
    realm: str = "test-registry"

    @classmethod
    def create(cls, path: Path, username: str, password: str) -> HtpasswdAuth:
        path.parent.mkdir(parents=True, exist_ok=True)
        hashed = bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=4)).decode()
        path.write_text(f"{username}:{hashed}\n")
        return cls(path, username, password)

    def header(self) -> dict[str, str]:
        raw = base64.b64encode(f"{self.username}:{self.password}".encode()).decode()
        return {"Authorization": f"Basic {raw}"}


def libtrust_kid(public_key: ec.EllipticCurvePublicKey) -> str:
    """docker/libtrust's key id, which D282 looks a token's `kid` up by among trusted keys."""
    der = public_key.public_bytes(serialization.Encoding.DER,
                                  serialization.PublicFormat.SubjectPublicKeyInfo)
    b32 = base64.b32encode(hashlib.sha256(der).digest()[:30]).decode().rstrip("=")
    return ":".join(b32[i:i + 4] for i in range(0, len(b32), 4))


@dataclass(frozen=True)
class TokenAuth:
    """distribution's `auth: token`: a signing key, its certificate (the rootcertbundle), and
    `mint` for tokens the registry accepts. `realm` only appears in challenges: tests mint tokens
    themselves and never need a token server to answer there."""

    bundle: Path
    key: ec.EllipticCurvePrivateKey = field(repr=False)
    service: str = "registry.test"
    issuer: str = "test-token-issuer"
    realm: str = "http://127.0.0.1:9/token"

    @classmethod
    def create(cls, directory: Path, service: str = "registry.test",
               issuer: str = "test-token-issuer",
               realm: str = "http://127.0.0.1:9/token") -> TokenAuth:
        directory.mkdir(parents=True, exist_ok=True)
        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)])
        now = datetime.datetime.now(datetime.UTC)
        cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
                .public_key(key.public_key()).serial_number(x509.random_serial_number())
                .not_valid_before(now - datetime.timedelta(minutes=5))
                .not_valid_after(now + datetime.timedelta(days=1))
                .sign(key, hashes.SHA256()))
        bundle = directory / "token-bundle.crt"
        bundle.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        return cls(bundle, key, service, issuer, realm)

    def mint(self, access: list[dict[str, Any]], subject: str = "tester", ttl: int = 300) -> str:
        now = int(time.time())
        claims = {"iss": self.issuer, "sub": subject, "aud": self.service, "exp": now + ttl,
                  "nbf": now - 5, "iat": now, "jti": secrets.token_hex(8), "access": access}
        return jwt.encode(claims, self.key, algorithm="ES256",
                          headers={"kid": libtrust_kid(self.key.public_key())})

    def bearer(self, *scopes: tuple[str, list[str]]) -> dict[str, str]:
        """An Authorization header for (repository, actions) pairs."""
        access = [{"type": "repository", "name": n, "actions": a} for n, a in scopes]
        return {"Authorization": f"Bearer {self.mint(access)}"}


@dataclass(frozen=True)
class RegistrySecurity:
    """What `start_registry(security=...)` adds to the registry's config."""

    tls: TestCertificates | None = None
    require_client_cert: bool = False  # clientcas: the CA of `tls`
    client_cert: ClientCertificate | None = None  # what the tests (and readiness probe) present
    htpasswd: HtpasswdAuth | None = None
    token: TokenAuth | None = None

    @property
    def scheme(self) -> str:
        return "https" if self.tls is not None else "http"

    def http_yaml(self) -> str:
        """Lines to nest under `http:` (two-space indent)."""
        if self.tls is None:
            return ""
        lines = ["  tls:", f"    certificate: {self.tls.server_cert}", f"    key: {self.tls.server_key}"]
        if self.require_client_cert:
            lines += ["    clientcas:", f"      - {self.tls.ca_cert}"]
        return "\n".join(lines) + "\n"

    def auth_yaml(self) -> str:
        if self.htpasswd is not None:
            return (f"auth:\n  htpasswd:\n    realm: {self.htpasswd.realm}\n"
                    f"    path: {self.htpasswd.path}\n")
        if self.token is not None:
            t = self.token
            return (f"auth:\n  token:\n    realm: {t.realm}\n    service: {t.service}\n"
                    f"    issuer: {t.issuer}\n    rootcertbundle: {t.bundle}\n")
        return ""

    def ssl_context(self, with_client_cert: bool = True) -> ssl.SSLContext | None:
        if self.tls is None:
            return None
        context = ssl.create_default_context(cafile=str(self.tls.ca_cert))
        if with_client_cert and self.client_cert is not None:
            context.load_cert_chain(str(self.client_cert.cert), str(self.client_cert.key))
        return context

    def headers(self) -> dict[str, str]:
        """Credentials for the tests' own requests straight at the registry (htpasswd only)."""
        return self.htpasswd.header() if self.htpasswd is not None else {}

    def connection(self, port: int, timeout: float = 10.0,
                   with_client_cert: bool = True) -> http.client.HTTPConnection:
        context = self.ssl_context(with_client_cert)
        if context is not None:
            return http.client.HTTPSConnection("127.0.0.1", port, timeout=timeout,
                                               context=context)
        return http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
