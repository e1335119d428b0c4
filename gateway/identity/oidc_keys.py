"""The signing keys of an OpenID issuer: discovery, JWKS, caching, one algorithm pinned per key.

``IssuerKeys(issuer)`` reads ``issuer + /.well-known/openid-configuration`` (whose ``issuer`` must
be the configured one) and the document's ``jwks_uri``. Keys are refreshed after
``refresh_after`` and dropped after ``max_age`` (24 h) without a successful fetch; an unknown
``kid`` triggers at most one refetch per ``refetch_interval`` (60 s), however many arrive, so a
flood of made-up kids cannot turn the gateway into a load generator against the issuer. All I/O
is aiohttp with redirects refused and https required except to a loopback host.
"""

from __future__ import annotations

import asyncio
import json
import logging
import ssl
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from jwt import PyJWK, PyJWKError, PyJWTError

from gateway.config.identity_checks import is_loopback_host

log = logging.getLogger("registry_gateway.oidc")

MAX_DOCUMENT_BYTES = 256 * 1024  # discovery documents and key sets are a few KiB
MIN_RSA_BITS = 2048
RSA_ALGS = frozenset({"RS256", "RS384", "RS512", "PS256", "PS384", "PS512"})
EC_CURVE_ALGS = {"P-256": "ES256", "P-384": "ES384", "P-521": "ES512"}


class IssuerUnavailable(Exception):
    """The issuer's keys cannot be had (down, slow, a redirect, a bad document) and none are
    cached that may still be used. ``reason`` is short and low-cardinality."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"OpenID issuer unavailable: {reason}")
        self.reason = reason


def check_url(url: str) -> str:
    """``url`` unchanged if it is ``https://HOST...`` or ``http://LOOPBACK...``, else ValueError."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        raise ValueError(f"not a valid URL: {url!r}") from None
    if parts.username is not None or parts.password is not None:
        raise ValueError("a URL must not contain user info")  # nor show it: it may be a password
    if not host or parts.fragment:
        raise ValueError(f"not a valid URL (a host and no fragment): {url!r}")
    if parts.scheme == "https" or (parts.scheme == "http" and is_loopback_host(host)):
        return url
    raise ValueError(f"must be https:// (http:// only to a loopback address): {url!r}")


@dataclass(frozen=True)
class VerificationKey:
    """One usable public key: its ``kid`` (None if the JWK has none) and its pinned ``alg``."""

    kid: str | None
    alg: str
    jwk: PyJWK = field(repr=False, compare=False)


def pinned_alg(jwk: Mapping[str, Any]) -> str | None:
    """The one algorithm a JWK may verify: its ``alg``, else RS256 for RSA and the curve's ES
    algorithm for EC; None (refused) for any other key type or a mismatched ``alg``."""
    kty, alg = jwk.get("kty"), jwk.get("alg")
    if kty == "RSA":
        if alg is None:
            return "RS256"
        return alg if alg in RSA_ALGS else None
    if kty == "EC":
        curve_alg = EC_CURVE_ALGS.get(str(jwk.get("crv")))
        return curve_alg if alg in (None, curve_alg) else None
    return None


def parse_jwks(document: Any) -> tuple[VerificationKey, ...]:
    """The signature keys of a JWK set that may be used; others are skipped (ValueError if the
    document is not a key set at all)."""
    if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
        raise ValueError("not a JWK set")
    return tuple(key for key in map(_usable_key, document["keys"]) if key is not None)


def _usable_key(jwk: Any) -> VerificationKey | None:
    if not isinstance(jwk, dict) or jwk.get("use", "sig") != "sig":
        return None
    ops = jwk.get("key_ops")
    kid = jwk.get("kid")
    alg = pinned_alg(jwk)
    if (ops is not None and (not isinstance(ops, list) or "verify" not in ops)) or alg is None:
        return None
    if kid is not None and not isinstance(kid, str):
        return None
    try:
        parsed = PyJWK(jwk, algorithm=alg)
    except (PyJWKError, PyJWTError, ValueError, TypeError):
        return None
    if jwk["kty"] == "RSA" and getattr(parsed.key, "key_size", 0) < MIN_RSA_BITS:
        return None
    return VerificationKey(kid, alg, parsed)


class IssuerHttp:
    """GET/POST JSON for one issuer: redirects refused, bodies capped, bounded by ``timeout``.

    Uses the given aiohttp session (not closed here) or one of its own (closed by ``close``).
    """

    def __init__(
        self, *, session: aiohttp.ClientSession | None = None, ca_file: str | None = None,
        timeout: float = 5.0,
    ) -> None:
        self._session = session
        self._owns_session = session is None
        self._ssl: ssl.SSLContext | bool = ssl.create_default_context(cafile=ca_file) if ca_file else True
        self._timeout = aiohttp.ClientTimeout(total=timeout)

    async def request_json(
        self, method: str, url: str, *, data: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> tuple[int, Any]:
        """``(status, parsed JSON or None)``; IssuerUnavailable when no answer or a redirect."""
        try:
            check_url(url)
        except ValueError:
            raise IssuerUnavailable("insecure_url") from None
        session = self._session_now()
        try:
            async with session.request(
                method, url, data=data, headers={"Accept": "application/json", **(headers or {})},
                allow_redirects=False, ssl=self._ssl, timeout=self._timeout,
            ) as resp:
                if 300 <= resp.status < 400:
                    raise IssuerUnavailable("redirect")
                body = bytearray()
                async for chunk in resp.content.iter_any():
                    body += chunk
                    if len(body) > MAX_DOCUMENT_BYTES:
                        raise IssuerUnavailable("too_large")
                status = resp.status
        except TimeoutError:
            raise IssuerUnavailable("timeout") from None
        except (aiohttp.ClientError, OSError):
            raise IssuerUnavailable("unreachable") from None
        try:
            return status, json.loads(body)
        except ValueError:
            return status, None

    async def get_json(self, url: str) -> Any:
        status, document = await self.request_json("GET", url)
        if status != 200 or document is None:
            raise IssuerUnavailable("status" if status != 200 else "not_json")
        return document

    async def close(self) -> None:
        if self._owns_session and self._session is not None:
            await self._session.close()
        self._session = None

    def _session_now(self) -> aiohttp.ClientSession:
        if self._session is None:
            if not self._owns_session:
                raise RuntimeError("IssuerHttp used after close()")
            self._session = aiohttp.ClientSession()
        return self._session


class IssuerKeys:
    """Discovery document and usable keys of ``issuer``; see the module docstring."""

    def __init__(
        self,
        issuer: str,
        *,
        session: aiohttp.ClientSession | None = None,
        ca_file: str | None = None,
        timeout: float = 5.0,
        refresh_after: float = 3600.0,
        max_age: float = 86400.0,
        refetch_interval: float = 60.0,
        failure_backoff: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.issuer = check_url(issuer)
        self.http = IssuerHttp(session=session, ca_file=ca_file, timeout=timeout)
        self._discovery_url = issuer.rstrip("/") + "/.well-known/openid-configuration"
        self._refresh_after, self._max_age = refresh_after, max_age
        self._refetch_interval, self._failure_backoff = refetch_interval, failure_backoff
        self._clock = clock
        self._lock = asyncio.Lock()
        self._document: dict[str, Any] | None = None
        self._keys: tuple[VerificationKey, ...] = ()
        self._fetched_at: float | None = None  # last success
        self._attempted_at: float | None = None  # last attempt, success or not
        self._last_failed = False
        self._last_reason = "no_keys"

    def __repr__(self) -> str:
        return f"<IssuerKeys {self.issuer} keys={len(self._keys)}>"

    async def __aenter__(self) -> IssuerKeys:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def close(self) -> None:
        await self.http.close()

    async def metadata(self) -> Mapping[str, Any]:
        """The discovery document (its ``issuer`` checked, its ``jwks_uri`` https or loopback)."""
        await self._refresh(unknown_kid=False)
        self._check_usable()
        assert self._document is not None  # usable implies fetched
        return MappingProxyType(self._document)

    async def lookup(self, kid: str | None) -> tuple[VerificationKey, ...]:
        """The usable keys with this ``kid`` (for no kid: the only key, if there is one key).

        Empty when none match even after the rate-limited refetch; IssuerUnavailable when no
        keys fetched within ``max_age`` exist and the issuer cannot be reached now.
        """
        await self._refresh(unknown_kid=False)
        found = self._find(kid)
        if not found:
            await self._refresh(unknown_kid=True)
            found = self._find(kid)
        return found

    def _find(self, kid: str | None) -> tuple[VerificationKey, ...]:
        self._check_usable()
        if kid is None:
            return self._keys if len(self._keys) == 1 else ()
        return tuple(key for key in self._keys if key.kid == kid)

    def _check_usable(self) -> None:
        if self._fetched_at is None or self._clock() - self._fetched_at >= self._max_age:
            raise IssuerUnavailable(self._last_reason)

    def _due(self, now: float, unknown_kid: bool) -> bool:
        since = now - self._attempted_at if self._attempted_at is not None else float("inf")
        if self._last_failed and since < self._failure_backoff:
            return False
        if self._fetched_at is None or now - self._fetched_at >= self._refresh_after:
            return True
        return unknown_kid and since >= self._refetch_interval

    async def _refresh(self, *, unknown_kid: bool) -> None:
        if not self._due(self._clock(), unknown_kid):
            return
        async with self._lock:
            now = self._clock()
            if not self._due(now, unknown_kid):  # another task fetched while this one waited
                return
            self._attempted_at = now
            try:
                document, keys = await self._fetch()
            except IssuerUnavailable as exc:
                self._last_failed, self._last_reason = True, exc.reason
                log.warning("OpenID issuer %s: keys not refreshed (%s)", self.issuer, exc.reason)
                return
            self._document, self._keys = document, keys
            self._fetched_at, self._last_failed = self._clock(), False

    async def _fetch(self) -> tuple[dict[str, Any], tuple[VerificationKey, ...]]:
        document = await self.http.get_json(self._discovery_url)
        if not isinstance(document, dict) or document.get("issuer") != self.issuer:
            raise IssuerUnavailable("discovery_issuer")
        jwks_uri = document.get("jwks_uri")
        try:
            check_url(jwks_uri if isinstance(jwks_uri, str) else "")
        except ValueError:
            raise IssuerUnavailable("jwks_uri") from None
        try:
            keys = parse_jwks(await self.http.get_json(str(jwks_uri)))
        except ValueError:
            raise IssuerUnavailable("jwks") from None
        if not keys:  # a broken key set: keep the keys we have rather than none
            raise IssuerUnavailable("no_usable_keys")
        return document, keys
