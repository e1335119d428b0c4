"""Verify an OpenID ID token (compact JWS) with an issuer's keys, and match federation claims.

The header's ``alg`` must be the algorithm pinned to the key its ``kid`` names, so ``none``,
HS256 keyed with a public key, or RS256 vs PS256 games never reach a signature check; then
PyJWT checks the signature and ``iss`` (exact), ``aud`` (a string, or a list holding ours),
``exp``, ``nbf`` and ``iat`` with a leeway. Every refusal is one ``TokenRejected`` whose
``reason`` is a low-cardinality label for metrics; ``IssuerUnavailable`` (from the key source)
passes through, since an issuer that is down is a 503, not a 401.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from typing import Any, Literal, Protocol

import jwt
from jwt.exceptions import InvalidJTIError, InvalidSubjectError

from .oidc_keys import VerificationKey

Reason = Literal[
    "expired", "audience", "issuer", "signature", "algorithm", "unknown_key", "claims", "malformed"
]
DEFAULT_LEEWAY = 60.0
DEFAULT_REQUIRED = ("iss", "aud", "exp", "iat", "sub")
MAX_TOKEN_BYTES = 16 * 1024
_TIME_CLAIMS = ("exp", "nbf", "iat")

# The first matching PyJWT exception decides the reason (subclasses before their bases).
_REASONS: tuple[tuple[type[jwt.PyJWTError], Reason], ...] = (
    (jwt.ExpiredSignatureError, "expired"),
    (jwt.ImmatureSignatureError, "expired"),  # nbf or iat in the future: outside its window
    (jwt.InvalidAudienceError, "audience"),
    (jwt.InvalidIssuerError, "issuer"),
    (jwt.MissingRequiredClaimError, "claims"),
    (InvalidSubjectError, "claims"),
    (InvalidJTIError, "claims"),
    (jwt.InvalidSignatureError, "signature"),
    (jwt.InvalidAlgorithmError, "algorithm"),
    (jwt.InvalidKeyError, "algorithm"),
)


class TokenRejected(Exception):
    """The token is not accepted; ``reason`` says why in one word (never the token itself)."""

    def __init__(self, reason: Reason) -> None:
        super().__init__(f"token rejected: {reason}")
        self.reason: Reason = reason


class KeySource(Protocol):
    """Where keys come from: :class:`~gateway.identity.oidc_keys.IssuerKeys`, or a test's own."""

    @property
    def issuer(self) -> str: ...

    async def lookup(self, kid: str | None) -> tuple[VerificationKey, ...]: ...


def unverified_header(token: str) -> dict[str, Any]:
    """The JOSE header of a compact JWS (not JWE), or TokenRejected("malformed")."""
    if not isinstance(token, str) or len(token) > MAX_TOKEN_BYTES or token.count(".") != 2:
        raise TokenRejected("malformed")
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError:
        raise TokenRejected("malformed") from None
    if "crit" in header:  # no extension is understood here, so none may be critical
        raise TokenRejected("malformed")
    if not isinstance(header.get("alg"), str) or not isinstance(header.get("kid", ""), str):
        raise TokenRejected("malformed")
    return header


async def verify_token(
    token: str,
    keys: KeySource,
    *,
    audience: str,
    required: Collection[str] = DEFAULT_REQUIRED,
    leeway: float = DEFAULT_LEEWAY,
) -> dict[str, Any]:
    """The verified claims of ``token`` from ``keys.issuer`` for ``audience``.

    Raises TokenRejected, or IssuerUnavailable when the keys cannot be had at all.
    """
    header = unverified_header(token)
    alg = header["alg"]
    if alg.lower() == "none":
        raise TokenRejected("algorithm")
    candidates = await keys.lookup(header.get("kid"))
    if not candidates:
        raise TokenRejected("unknown_key")
    key = next((k for k in candidates if k.alg == alg), None)
    if key is None:  # the kid exists, but pinned to another algorithm
        raise TokenRejected("algorithm")
    required = tuple(dict.fromkeys(("iss", "aud", "exp", *required)))
    try:
        claims: dict[str, Any] = jwt.decode(
            token, key.jwk, algorithms=[key.alg], audience=audience, issuer=keys.issuer,
            leeway=leeway, options={"require": list(required), "strict_aud": False},
        )
    except jwt.PyJWTError as exc:
        raise TokenRejected(_reason(exc)) from None
    for name in _TIME_CLAIMS:  # PyJWT takes int("123") and True; a token must carry numbers
        value = claims.get(name)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)):
            raise TokenRejected("malformed")
    if any(claims.get(name) is None for name in required):
        raise TokenRejected("claims")
    if "sub" in required and (not isinstance(claims["sub"], str) or not claims["sub"]):
        raise TokenRejected("claims")
    return claims


def _reason(exc: jwt.PyJWTError) -> Reason:
    for kind, reason in _REASONS:
        if isinstance(exc, kind):
            return reason
    return "malformed"


def claims_match(expected: Mapping[str, str], claims: Mapping[str, Any]) -> bool:
    """Every ``expected`` entry equals the claim as an exact string, or, when the value holds
    ``*``, matches it as a glob whose ``*`` never crosses ``/``. A missing or non-string claim
    never matches; an empty ``expected`` matches nothing (an entry must pin something)."""
    if not expected:
        return False
    for name, pattern in expected.items():
        value = claims.get(name)
        if not isinstance(value, str) or not isinstance(pattern, str):
            return False
        if "*" in pattern:
            # Only `*` is special (not `?` or `[...]`, which a ref may contain literally).
            regex = "[^/]*".join(re.escape(part) for part in pattern.split("*"))
            if re.fullmatch(regex, value) is None:
                return False
        elif value != pattern:
            return False
    return True
