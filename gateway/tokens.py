"""ES256 JWTs in the distribution token format, and self-contained refresh tokens."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import jwt

from gateway.keys import SigningKey
from gateway.policy.actions import ACTIONS, Action
from gateway.policy.names import valid_name
from gateway.policy.scope import RepositoryScope
from gateway.policy.subject import EXTERNAL_KINDS, ExternalKind, Subject
from gateway.state.ttlmap import TTLMap

LEEWAY_SECONDS = 60
ACCESS_TYPE = "JWT"
REFRESH_TYPE = "refresh+jwt"
_REQUIRED = ["exp", "nbf", "iat", "iss", "aud", "sub", "jti"]
VERIFIED_TOKENS = 10_000  # bound on remembered access tokens (about 1 KB each)
_HEADER_FIELDS = frozenset({"alg", "typ", "kid"})


class TokenError(Exception):
    """The token is not one of ours, or not valid now; the message never includes the token."""


@dataclass(frozen=True, slots=True)
class AccessClaims:
    subject: str  # "" for anonymous
    kind: ExternalKind | None  # None: a local account (looked up in the running config)
    groups: frozenset[str]
    expires_at: float
    access: Mapping[str, frozenset[Action]]


@dataclass(frozen=True, slots=True)
class RefreshClaims:
    subject: str
    credential_tag: str
    kind: ExternalKind | None = None  # None: a local account
    groups: frozenset[str] = frozenset()
    binding: str = ""  # what the identity's backend checks again at each refresh
    expires_at: float = 0.0


@dataclass(frozen=True, slots=True)
class IssuedToken:
    token: str = field(repr=False)
    expires_in: int
    issued_at: str


def rfc3339(timestamp: float) -> str:
    return datetime.fromtimestamp(int(timestamp), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class TokenAuthority:
    """Issues and verifies tokens for one service with one keyring."""

    def __init__(self, key: SigningKey, service: str, issuer: str, ttl: int, refresh_ttl: int):
        self._key = key
        self._public_keys = {key.kid: key.private_key.public_key()}
        self.service = service
        self.issuer = issuer
        self.ttl = ttl
        self.refresh_ttl = refresh_ttl
        self._credential_secret = key.secret(b"registry-gateway refresh credential tag")
        self._verified: TTLMap[str, AccessClaims] = TTLMap(VERIFIED_TOKENS, time.time)

    @property
    def kid(self) -> str:
        return self._key.kid

    def _claims(self, subject: str, now: float, ttl: int) -> dict[str, Any]:
        return {
            "iss": self.issuer,
            "sub": subject,
            "aud": self.service,
            "exp": int(now) + ttl,
            "nbf": int(now) - 1,
            "iat": int(now),
            "jti": secrets.token_urlsafe(18),
        }

    def _sign(self, claims: dict[str, Any], typ: str) -> str:
        headers = {"typ": typ, "kid": self._key.kid}
        return jwt.encode(claims, self._key.private_key, algorithm="ES256", headers=headers)

    def issue_access(self, subject: Subject | None, granted: Sequence[RepositoryScope],
                     catalog: bool, ttl: int | None = None) -> IssuedToken:
        """An access token; `ttl` shortens it (an identity that must be checked again sooner)."""
        now = time.time()
        ttl = self.ttl if ttl is None else min(ttl, self.ttl)
        if subject is not None and subject.expires_at is not None:
            # Never past the credential's own end (an ID token, a CLI password): within the
            # leeway that end may be a few seconds ago, and so may this token's exp.
            ttl = min(ttl, int(subject.expires_at) - int(now))
        access: list[dict[str, Any]] = [
            {"type": "repository", "name": s.name,
             "actions": [a for a in ACTIONS if a in s.actions]}
            for s in granted
        ]
        if catalog:
            access.append({"type": "registry", "name": "catalog", "actions": ["*"]})
        claims = self._claims(subject.name if subject else "", now, ttl) | {"access": access}
        if subject is not None and not subject.local:
            claims |= {"kind": subject.kind, "groups": sorted(subject.groups)}
        return IssuedToken(self._sign(claims, ACCESS_TYPE), max(ttl, 0), rfc3339(now))

    def credential_tag(self, subject: str, password_hash: bytes) -> str:
        """Binds a refresh token to the account's current password: a new password revokes it."""
        mac = hmac.new(self._credential_secret, subject.encode() + b"\0" + password_hash,
                       hashlib.sha256)
        return mac.hexdigest()[:32]

    def issue_refresh(self, subject: str, password_hash: bytes) -> str:
        claims = self._claims(subject, time.time(), self.refresh_ttl)
        claims["cred"] = self.credential_tag(subject, password_hash)
        return self._sign(claims, REFRESH_TYPE)

    def issue_identity_refresh(self, subject: Subject) -> str | None:
        """A refresh token for a non-local identity whose backend can check it again (it has a
        binding), ending with its credential; None for workloads, which never get one."""
        if subject.local or subject.kind == "workload" or not subject.binding:
            return None
        now = time.time()
        ttl = self.refresh_ttl
        if subject.expires_at is not None:
            ttl = min(ttl, int(subject.expires_at) - int(now))
        if ttl <= 0:
            return None
        claims = self._claims(subject.name, now, ttl)
        claims |= {"kind": subject.kind, "groups": sorted(subject.groups), "bnd": subject.binding,
                   "cred": self.credential_tag(subject.name, subject.binding.encode())}
        return self._sign(claims, REFRESH_TYPE)

    def _decode(self, token: str, typ: str) -> dict[str, Any]:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise TokenError("malformed token") from exc
        # The header only picks a key of ours by kid. We never sign anything else into it, so
        # jwk, jku, x5c, x5u, crit or b64 mean the token is not ours (and PyJWT never sees them).
        if not set(header) <= _HEADER_FIELDS or header.get("alg") != "ES256":
            raise TokenError("unexpected token header")
        kid = header.get("kid")
        key = self._public_keys.get(kid) if isinstance(kid, str) else None
        if key is None:
            raise TokenError("unknown signing key")
        if header.get("typ") != typ:
            raise TokenError("wrong token type")
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key,
                algorithms=["ES256"],
                audience=self.service,
                issuer=self.issuer,
                leeway=LEEWAY_SECONDS,
                options={"require": _REQUIRED, "verify_sub": False},
            )
        except jwt.PyJWTError as exc:
            raise TokenError(f"invalid token: {type(exc).__name__}") from exc
        if not isinstance(claims.get("sub"), str) or not isinstance(claims.get("jti"), str) \
                or not claims["jti"]:
            raise TokenError("invalid token: bad sub or jti")
        if not isinstance(claims.get("aud"), str):
            raise TokenError("invalid token: audience must be a string")
        return claims

    def verify_access(self, token: str) -> AccessClaims:
        # Clients send the same token on every request until it expires. The exact same string
        # verified before gives the same answer until exp (+ leeway), as signature, key, audience
        # and issuer cannot change: skip the ECDSA check and the parsing for it.
        known = self._verified.get(token)
        if known is not None:
            return known
        claims = self._decode(token, ACCESS_TYPE)
        verified = AccessClaims(
            subject=claims["sub"],
            kind=_kind(claims.get("kind")),
            groups=_groups(claims.get("groups")),
            expires_at=float(claims["exp"]),
            access=_parse_access(claims.get("access")),
        )
        self._verified.put_until(token, verified, int(verified.expires_at) + LEEWAY_SECONDS)
        return verified

    def verify_refresh(self, token: str) -> RefreshClaims:
        claims = self._decode(token, REFRESH_TYPE)
        tag = claims.get("cred")
        if not claims["sub"] or not isinstance(tag, str):
            raise TokenError("invalid refresh token")
        kind = _kind(claims.get("kind"))
        binding = claims.get("bnd", "")
        if kind is not None and (not isinstance(binding, str) or not binding):
            raise TokenError("invalid refresh token: no binding")
        return RefreshClaims(claims["sub"], tag, kind, _groups(claims.get("groups")),
                             binding if kind is not None else "", float(claims["exp"]))


def _kind(value: object) -> ExternalKind | None:
    if value is None:
        return None
    kind = next((k for k in EXTERNAL_KINDS if k == value), None)
    if kind is None:
        raise TokenError("invalid token: unknown identity kind")
    return kind


def _groups(value: object) -> frozenset[str]:
    if value is None:
        return frozenset()
    if not isinstance(value, list) or not all(isinstance(g, str) for g in value):
        raise TokenError("invalid token: groups must be a list of strings")
    return frozenset(value)


def _parse_access(value: object) -> dict[str, frozenset[Action]]:
    """The `access` claim, shape checked; any malformed entry rejects the whole token."""
    if not isinstance(value, list):
        raise TokenError("invalid token: access must be a list")
    access: dict[str, frozenset[Action]] = {}
    for entry in value:
        if not isinstance(entry, dict):
            raise TokenError("invalid token: access entries must be objects")
        rtype, name, actions = entry.get("type"), entry.get("name"), entry.get("actions")
        if not isinstance(name, str) or not isinstance(actions, list) or not all(
            isinstance(a, str) for a in actions
        ):
            raise TokenError("invalid token: malformed access entry")
        if rtype == "registry" and name == "catalog":
            continue
        if rtype != "repository" or not valid_name(name):
            raise TokenError("invalid token: unknown access entry")
        access[name] = access.get(name, frozenset()) | frozenset(
            a for a in ACTIONS if a in actions
        )
    return access
