"""Signed session cookies and CSRF tokens: stdlib HMAC, nothing stored on the server but revocations.

A session cookie is `payload.mac` where the MAC also covers the account's password hash, so
changing a password ends every session of that account without a server-side store.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import secrets
import time
from dataclasses import dataclass
from pathlib import Path

from gateway.config.filechecks import MIN_SESSION_SECRET_BYTES
from gateway.state.ttlmap import TTLMap

MAX_COOKIE = 1024
MIN_SECRET_BYTES = MIN_SESSION_SECRET_BYTES


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes | None:
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        return None


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


class SessionCodec:
    """Issues and checks session cookies and CSRF tokens with keys derived from one secret."""

    def __init__(self, secret: bytes) -> None:
        self._session_key = hmac.new(secret, b"registry-gateway ui session", hashlib.sha256).digest()
        self._csrf_key = hmac.new(secret, b"registry-gateway ui csrf", hashlib.sha256).digest()

    def _mac(self, payload: str, password_hash: bytes) -> str:
        material = payload.encode("ascii") + b"\0" + password_hash
        return _b64(hmac.new(self._session_key, material, hashlib.sha256).digest())

    def issue(self, subject: str, password_hash: bytes, ttl: int,
              now: float | None = None) -> tuple[str, Session]:
        issued = int(now if now is not None else time.time())
        session = Session(subject, secrets.token_hex(16), issued + ttl)
        body = {"sub": subject, "sid": session.sid, "exp": session.expires}
        payload = _b64(json.dumps(body, separators=(",", ":")).encode())
        return f"{payload}.{self._mac(payload, password_hash)}", session

    @staticmethod
    def peek(cookie: str) -> Session | None:
        """The claimed session, unverified: the caller looks up the account, then `verify`s."""
        if len(cookie) > MAX_COOKIE or cookie.count(".") != 1:
            return None
        raw = _unb64(cookie.partition(".")[0])
        try:
            body = json.loads(raw) if raw is not None else None
        except ValueError:
            return None
        if not isinstance(body, dict):
            return None
        sub, sid, exp = body.get("sub"), body.get("sid"), body.get("exp")
        if not (isinstance(sub, str) and isinstance(sid, str) and type(exp) is int):
            return None
        return Session(sub, sid, exp)

    def verify(self, cookie: str, password_hash: bytes, now: float | None = None) -> Session | None:
        session = self.peek(cookie)
        if session is None:
            return None
        payload, _, mac = cookie.partition(".")
        if not hmac.compare_digest(mac, self._mac(payload, password_hash)):
            return None
        if session.expires <= (now if now is not None else time.time()):
            return None
        return session

    def csrf_token(self, csrf_cookie: str, sid: str) -> str:
        """Bound to the browser's CSRF cookie and to the session (none before login)."""
        material = f"{csrf_cookie}\0{sid}".encode()
        return _b64(hmac.new(self._csrf_key, material, hashlib.sha256).digest())

    def csrf_ok(self, token: str, csrf_cookie: str, sid: str) -> bool:
        if not token or not csrf_cookie:
            return False
        return hmac.compare_digest(token, self.csrf_token(csrf_cookie, sid))


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
