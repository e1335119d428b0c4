"""Signed session cookies and CSRF tokens: stdlib HMAC, nothing stored on the server but revocations.

A session cookie is `payload.mac` where the MAC also covers the account's password hash, so
changing a password ends every session of that account without a server-side store. A session
of an identity that is not a local account (SSO; a directory) carries its kind, its groups at
sign-in, the sign-in time and its binding, which its backend checks again on every page.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from gateway.config.filechecks import MIN_SESSION_SECRET_BYTES
from gateway.identity.cli_tokens import b64url, unb64url
from gateway.policy.subject import Subject
from gateway.state.ttlmap import TTLMap

MAX_COOKIE = 3072  # an identity session carries its groups; browsers keep 4096 bytes at most
_IDENTITY = b"identity session\0"  # MAC material of non-local sessions: never a bcrypt hash
MIN_SECRET_BYTES = MIN_SESSION_SECRET_BYTES


def _raw(text: str) -> bytes:
    """Bytes of untrusted text: compare_digest refuses non-ASCII str, and header values that
    were not UTF-8 arrive with lone surrogates (surrogatepass keeps them distinct)."""
    return text.encode("utf-8", "surrogatepass")


def load_secret(path: Path | None) -> bytes:
    """The configured secret, or a fresh one (sessions then end with the process)."""
    if path is None:
        return secrets.token_bytes(MIN_SECRET_BYTES)
    secret = path.read_bytes().strip()
    if len(secret) < MIN_SECRET_BYTES:
        raise ValueError(f"ui.session_secret_file {str(path)!r}: needs at least "
                         f"{MIN_SECRET_BYTES} bytes, has {len(secret)}")
    return secret


@dataclass(frozen=True, slots=True)
class Session:
    subject: str
    sid: str
    expires: int
    kind: str = ""  # "": a local account; else the identity's kind ("sso", "directory")
    groups: tuple[str, ...] = ()
    issued_at: int = 0
    binding: str = ""

    @property
    def local(self) -> bool:
        return not self.kind


class SessionCodec:
    """Issues and checks session cookies and CSRF tokens with keys derived from one secret."""

    def __init__(self, secret: bytes) -> None:
        self._session_key = hmac.new(secret, b"registry-gateway ui session", hashlib.sha256).digest()
        self._csrf_key = hmac.new(secret, b"registry-gateway ui csrf", hashlib.sha256).digest()
        self._seal_key = AESGCM(hmac.new(secret, b"registry-gateway ui sealed",
                                         hashlib.sha256).digest())

    def _mac(self, payload: str, password_hash: bytes) -> str:
        material = payload.encode("ascii") + b"\0" + password_hash
        return b64url(hmac.new(self._session_key, material, hashlib.sha256).digest())

    def issue(self, subject: str, password_hash: bytes, ttl: int,
              now: float | None = None) -> tuple[str, Session]:
        issued = int(now if now is not None else time.time())
        session = Session(subject, secrets.token_hex(16), issued + ttl)
        body = {"sub": subject, "sid": session.sid, "exp": session.expires}
        payload = b64url(json.dumps(body, separators=(",", ":")).encode())
        return f"{payload}.{self._mac(payload, password_hash)}", session

    def issue_identity(self, subject: Subject, ttl: int,
                       now: float | None = None) -> tuple[str, Session]:
        """A session of a non-local identity (its backend rechecks `binding` on every page)."""
        issued = int(now if now is not None else time.time())
        session = Session(subject.name, secrets.token_hex(16), issued + ttl, subject.kind,
                          tuple(sorted(subject.groups)), issued, subject.binding)
        body = {"sub": subject.name, "sid": session.sid, "exp": session.expires,
                "kind": session.kind, "grp": list(session.groups), "iat": issued,
                "bnd": session.binding}
        payload = b64url(json.dumps(body, separators=(",", ":")).encode())
        return f"{payload}.{self._mac(payload, _IDENTITY + session.kind.encode())}", session

    def verify_identity(self, cookie: str, now: float | None = None) -> Session | None:
        session = self.peek(cookie)
        if session is None or session.local:
            return None
        return self._checked(cookie, session, _IDENTITY + session.kind.encode(), now)

    @staticmethod
    def peek(cookie: str) -> Session | None:
        """The claimed session, unverified: the caller looks up the account, then `verify`s."""
        if len(cookie) > MAX_COOKIE or cookie.count(".") != 1:
            return None
        raw = unb64url(cookie.partition(".")[0])
        try:
            body = json.loads(raw) if raw is not None else None
        except ValueError:
            return None
        if not isinstance(body, dict):
            return None
        sub, sid, exp = body.get("sub"), body.get("sid"), body.get("exp")
        if not (isinstance(sub, str) and isinstance(sid, str) and type(exp) is int):
            return None
        if "kind" not in body:
            return Session(sub, sid, exp)
        kind, groups, iat, bnd = body["kind"], body.get("grp"), body.get("iat"), body.get("bnd")
        if not (isinstance(kind, str) and kind and isinstance(groups, list) and type(iat) is int
                and isinstance(bnd, str) and all(isinstance(g, str) for g in groups)):
            return None
        return Session(sub, sid, exp, kind, tuple(groups), iat, bnd)

    def verify(self, cookie: str, password_hash: bytes, now: float | None = None) -> Session | None:
        session = self.peek(cookie)
        if session is None or not session.local:
            return None
        return self._checked(cookie, session, password_hash, now)

    def _checked(self, cookie: str, session: Session, material: bytes,
                 now: float | None) -> Session | None:
        payload, _, mac = cookie.partition(".")
        if not hmac.compare_digest(_raw(mac), _raw(self._mac(payload, material))):
            return None
        if session.expires <= (now if now is not None else time.time()):
            return None
        return session

    def seal(self, data: dict[str, Any], ttl: int, now: float | None = None) -> str:
        """`data` encrypted and authenticated (AES-GCM) until `ttl` from now: what a browser
        keeps between two requests and must neither read nor change (a pending SSO login)."""
        body = {"d": data, "exp": int(now if now is not None else time.time()) + ttl}
        nonce = secrets.token_bytes(12)
        sealed = self._seal_key.encrypt(nonce, json.dumps(body).encode(), b"sealed")
        return b64url(nonce + sealed)

    def unseal(self, text: str, now: float | None = None) -> dict[str, Any] | None:
        raw = unb64url(text) if 0 < len(text) <= MAX_COOKIE else None
        if raw is None or len(raw) < 28:
            return None
        try:
            body = json.loads(self._seal_key.decrypt(raw[:12], raw[12:], b"sealed"))
        except (InvalidTag, ValueError):
            return None
        if not isinstance(body, dict) or not isinstance(body.get("d"), dict) \
                or type(body.get("exp")) is not int \
                or body["exp"] <= (now if now is not None else time.time()):
            return None
        data: dict[str, Any] = body["d"]
        return data

    def csrf_token(self, csrf_cookie: str, sid: str) -> str:
        """Bound to the browser's CSRF cookie and to the session (none before login)."""
        material = _raw(f"{csrf_cookie}\0{sid}")
        return b64url(hmac.new(self._csrf_key, material, hashlib.sha256).digest())

    def csrf_ok(self, token: str, csrf_cookie: str, sid: str) -> bool:
        if not token or not csrf_cookie:
            return False
        return hmac.compare_digest(_raw(token), _raw(self.csrf_token(csrf_cookie, sid)))


def new_csrf_cookie() -> str:
    return secrets.token_urlsafe(32)


class Revocations:
    """Session ids ended by logout, until they would have expired anyway; bounded, per process."""

    def __init__(self, max_entries: int = 100_000) -> None:
        self._ended: TTLMap[str, bool] = TTLMap(max_entries, time.time)

    def revoke(self, session: Session) -> None:
        self._ended.put_until(session.sid, True, session.expires)

    def revoked(self, session: Session, now: float | None = None) -> bool:
        return self._ended.get(session.sid, now) is not None
