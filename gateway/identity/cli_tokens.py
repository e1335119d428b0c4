"""CLI passwords: what an SSO user gives `docker login -u NAME --password-stdin`.

A CLI password is self-contained and signed (nothing stored): ``rgcli1_PAYLOAD.MAC``, the
payload base64url JSON of the name, the groups at issue (those the config acts on), `iat`,
`exp` and the identity (a key of `iss` + `sub` and a tag of the provider), the MAC an
HMAC-SHA256 with a secret derived from the gateway's token key and service, so a token key
change ends every CLI password. It is accepted at /token and by Basic on /v2/ (never by
/ui/login: the backend is not mounted there), never grants admin (only local accounts are
admins in decisions), and is refused after `exp`, for a NAME in `disabled_identities`
(AccessService), for one issued before `sso.not_before[NAME]` and whenever the SSO identity
checks of sso_names refuse it. Nothing here logs it, and its repr is the name alone.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import time
from dataclasses import dataclass
from typing import Any

from gateway.identity.failures import AuthFailure
from gateway.identity.sso_names import Binding, SsoNames
from gateway.policy.subject import Subject
from gateway.runtime.snapshot import Snapshot

PREFIX = "rgcli1_"
MAX_TOKEN = 4096
_CLOCK_SKEW = 60  # an `iat` further ahead than this is not one of ours


def b64url(data: bytes) -> str:
    """Unpadded base64url, as tokens and cookies carry it."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def unb64url(text: str) -> bytes | None:
    """The bytes of unpadded base64url, or None when it is not that."""
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        return None


@dataclass(frozen=True, slots=True)
class CliClaims:
    name: str
    groups: frozenset[str]
    issued_at: int
    expires_at: int
    issuer_tag: str
    subject_key: str

    def subject(self) -> Subject:
        binding = Binding(self.issued_at, self.issuer_tag, self.subject_key)
        return Subject(self.name, "sso", self.groups, expires_at=float(self.expires_at),
                       binding=binding.format())


class CliTokens:
    """Issues and reads CLI passwords with one secret (derive it from the token key)."""

    def __init__(self, secret: bytes) -> None:
        self._key = hmac.new(secret, b"registry-gateway cli password v1", hashlib.sha256).digest()

    def __repr__(self) -> str:
        return "<CliTokens>"

    def _mac(self, payload: str) -> str:
        return b64url(hmac.new(self._key, payload.encode("ascii"), hashlib.sha256).digest())

    def issue(self, subject: Subject, ttl: int, now: float | None = None) -> tuple[str, int]:
        """A CLI password for an SSO `subject` (its binding names the identity), and its exp."""
        binding = Binding.parse(subject.binding)
        if subject.kind != "sso" or binding is None:
            raise ValueError("CLI passwords are for SSO identities")
        issued = int(time.time() if now is None else now)
        body = {"v": 1, "name": subject.name, "grp": sorted(subject.groups), "iat": issued,
                "exp": issued + ttl, "ist": binding.issuer_tag, "idk": binding.subject_key}
        payload = b64url(json.dumps(body, separators=(",", ":")).encode())
        return f"{PREFIX}{payload}.{self._mac(payload)}", issued + ttl

    def read(self, token: str, now: float | None = None) -> CliClaims | None:
        """The claims of a valid, unexpired CLI password of ours, else None."""
        if len(token) > MAX_TOKEN or not token.startswith(PREFIX) or not token.isascii():
            return None
        payload, dot, mac = token[len(PREFIX):].partition(".")
        if not dot or not hmac.compare_digest(mac.encode(), self._mac(payload).encode()):
            return None
        raw = unb64url(payload)
        try:
            body: Any = json.loads(raw) if raw is not None else None
        except ValueError:
            return None
        claims = _claims(body)
        current = time.time() if now is None else now
        if claims is None or claims.expires_at <= current \
                or claims.issued_at > current + _CLOCK_SKEW:
            return None
        return claims


def _claims(body: Any) -> CliClaims | None:
    if not isinstance(body, dict) or body.get("v") != 1:
        return None
    name, groups, iat, exp = body.get("name"), body.get("grp"), body.get("iat"), body.get("exp")
    tag, key = body.get("ist"), body.get("idk")
    if not (isinstance(name, str) and isinstance(tag, str) and isinstance(key, str)
            and type(iat) is int and type(exp) is int and isinstance(groups, list)
            and all(isinstance(g, str) for g in groups)):
        return None
    return CliClaims(name, frozenset(groups), iat, exp, tag, key)


class CliPasswords:
    """The PasswordBackend for CLI passwords (mounted at /token and /v2/, not /ui/login)."""

    def __init__(self, tokens: CliTokens, names: SsoNames) -> None:
        self._tokens = tokens
        self._names = names

    def claims(self, snapshot: Snapshot, username: str, password: str) -> bool:
        return snapshot.settings.sso is not None and password.startswith(PREFIX)

    async def verify(self, snapshot: Snapshot, username: str,
                     password: str) -> Subject | AuthFailure:
        claims = self._tokens.read(password)
        if claims is None or claims.name != username:
            return AuthFailure.BAD_TOKEN
        return await self._names.recheck(snapshot, claims.subject())
