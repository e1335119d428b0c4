"""Single sign-on: the OpenID Connect authorization code flow with PKCE (S256).

    client = SsoClient(IssuerKeys(issuer), client_id=..., client_secret=..., scopes=[...])
    url, pending = await client.begin(redirect_uri)     # keep `pending` in the browser session
    ... the browser comes back to redirect_uri?code=...&state=...
    login = await client.finish(pending, request.query)  # LoginFailed, IssuerUnavailable

``finish`` checks ``state`` (constant time), the RFC 9207 ``iss`` parameter, exchanges the code
with the PKCE verifier at the token endpoint (client_secret_basic, or client_secret_post when
that is all the provider offers), verifies the ID token with the issuer's pinned keys and
checks its ``nonce`` and ``azp``. The identity is ``iss`` + ``sub``; the claims are returned for
the caller to read the username and groups from.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import re
import secrets
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal
from urllib.parse import quote_plus, urlencode

from .oidc_keys import IssuerKeys, check_url
from .oidc_verify import DEFAULT_LEEWAY, TokenRejected, verify_token

log = logging.getLogger("registry_gateway.oidc")

Failure = Literal[
    "expired", "state", "denied", "issuer", "code", "provider", "token_endpoint", "id_token", "nonce"
]
ID_TOKEN_CLAIMS = ("iss", "aud", "exp", "iat", "sub", "nonce")
MAX_PENDING_AGE = 600.0  # seconds a browser may spend at the provider's login page


class LoginFailed(Exception):
    """The sign-in did not complete. ``reason`` is a metric label; ``detail`` the
    TokenRejected reason when the ID token was refused."""

    def __init__(self, reason: Failure, detail: str | None = None) -> None:
        super().__init__(f"single sign-on failed: {reason}" + (f" ({detail})" if detail else ""))
        self.reason: Failure = reason
        self.detail = detail


@dataclass(frozen=True)
class PendingLogin:
    """What the browser session keeps between the redirect and the callback (never logged)."""

    state: str = field(repr=False)
    nonce: str = field(repr=False)
    code_verifier: str = field(repr=False)
    redirect_uri: str
    created_at: float

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PendingLogin:
        """From :meth:`as_dict` output (e.g. a signed session); LoginFailed("state") if damaged."""
        try:
            values = {name: data[name] for name in ("state", "nonce", "code_verifier", "redirect_uri")}
            created_at = float(data["created_at"])
        except (KeyError, TypeError, ValueError):
            raise LoginFailed("state") from None
        if not all(isinstance(value, str) and value for value in values.values()):
            raise LoginFailed("state")
        return cls(created_at=created_at, **values)


@dataclass(frozen=True)
class SsoLogin:
    """A verified sign-in: the identity is (``iss``, ``sub``); ``claims`` are the ID token's."""

    sub: str
    iss: str
    claims: dict[str, Any] = field(repr=False)


def code_challenge(verifier: str) -> str:
    """RFC 7636 S256: BASE64URL(SHA256(verifier)) without padding."""
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


class SsoClient:
    """One OpenID client (``client_id``/``client_secret``) of the provider behind ``keys``."""

    def __init__(
        self,
        keys: IssuerKeys,
        *,
        client_id: str,
        client_secret: str,
        scopes: Sequence[str] = ("openid",),
        leeway: float = DEFAULT_LEEWAY,
        max_pending_age: float = MAX_PENDING_AGE,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.keys = keys
        self.client_id = client_id
        self._client_secret = client_secret
        self.scopes = tuple(dict.fromkeys(("openid", *scopes)))
        self._leeway, self._max_pending_age, self._clock = leeway, max_pending_age, clock

    def __repr__(self) -> str:  # never the client secret
        return f"<SsoClient {self.keys.issuer} client_id={self.client_id!r}>"

    async def begin(self, redirect_uri: str) -> tuple[str, PendingLogin]:
        """The provider URL to send the browser to, and what to keep until the callback."""
        endpoint = await self._endpoint("authorization_endpoint")
        pending = PendingLogin(
            state=secrets.token_urlsafe(32), nonce=secrets.token_urlsafe(32),
            code_verifier=secrets.token_urlsafe(64), redirect_uri=redirect_uri,
            created_at=self._clock(),
        )
        query = urlencode({
            "response_type": "code", "client_id": self.client_id, "redirect_uri": redirect_uri,
            "scope": " ".join(self.scopes), "state": pending.state, "nonce": pending.nonce,
            "code_challenge": code_challenge(pending.code_verifier), "code_challenge_method": "S256",
        })
        return f"{endpoint}{'&' if '?' in endpoint else '?'}{query}", pending

    async def finish(self, pending: PendingLogin, params: Mapping[str, str]) -> SsoLogin:
        """Complete the sign-in from the callback's query ``params``."""
        if not 0 <= self._clock() - pending.created_at <= self._max_pending_age:
            raise LoginFailed("expired")
        if not hmac.compare_digest(str(params.get("state", "")).encode(), pending.state.encode()):
            raise LoginFailed("state")
        if "error" in params:
            raise LoginFailed("denied" if params["error"] == "access_denied" else "provider")
        metadata = await self.keys.metadata()
        iss = params.get("iss")
        if (iss is None and metadata.get("authorization_response_iss_parameter_supported") is True) or (
            iss is not None and iss != self.keys.issuer
        ):
            raise LoginFailed("issuer")  # RFC 9207: a mix-up attack, or another provider
        code = params.get("code")
        if not isinstance(code, str) or not code:
            raise LoginFailed("code")
        id_token = await self._exchange(code, pending)
        return await self._verify(id_token, pending)

    async def _endpoint(self, name: str) -> str:
        value = (await self.keys.metadata()).get(name)
        try:
            return check_url(value if isinstance(value, str) else "")
        except ValueError:
            log.warning("OpenID provider %s: %s missing or not https", self.keys.issuer, name)
            raise LoginFailed("provider") from None

    async def _exchange(self, code: str, pending: PendingLogin) -> str:
        endpoint = await self._endpoint("token_endpoint")
        form = {"grant_type": "authorization_code", "code": code,
                "redirect_uri": pending.redirect_uri, "code_verifier": pending.code_verifier}
        headers: dict[str, str] = {}
        method = await self._auth_method()
        if method == "client_secret_basic":  # RFC 6749 2.3.1: each part form-encoded first
            pair = f"{quote_plus(self.client_id)}:{quote_plus(self._client_secret)}"
            headers["Authorization"] = "Basic " + base64.b64encode(pair.encode()).decode("ascii")
        else:
            form.update(client_id=self.client_id, client_secret=self._client_secret)
        status, answer = await self.keys.http.request_json("POST", endpoint, data=form, headers=headers)
        id_token = answer.get("id_token") if isinstance(answer, dict) else None
        if status != 200 or not isinstance(id_token, str):
            error = answer.get("error") if isinstance(answer, dict) else None
            shown = error if isinstance(error, str) and re.fullmatch(r"[a-z_]{1,40}", error) else "-"
            log.warning("OpenID provider %s: token endpoint answered %s (error %s)",
                        self.keys.issuer, status, shown)
            raise LoginFailed("token_endpoint")
        return id_token

    async def _auth_method(self) -> str:
        # OpenID Discovery: an absent list means client_secret_basic only.
        offered = (await self.keys.metadata()).get("token_endpoint_auth_methods_supported")
        offered = offered if isinstance(offered, list) else ["client_secret_basic"]
        for method in ("client_secret_basic", "client_secret_post"):
            if method in offered:
                return method
        log.warning("OpenID provider %s offers neither client_secret_basic nor _post", self.keys.issuer)
        raise LoginFailed("provider")

    async def _verify(self, id_token: str, pending: PendingLogin) -> SsoLogin:
        try:
            claims = await verify_token(
                id_token, self.keys, audience=self.client_id, required=ID_TOKEN_CLAIMS, leeway=self._leeway
            )
        except TokenRejected as exc:
            raise LoginFailed("id_token", exc.reason) from None
        nonce = claims.get("nonce")
        if not isinstance(nonce, str) or not hmac.compare_digest(nonce.encode(), pending.nonce.encode()):
            raise LoginFailed("nonce")
        aud, azp = claims.get("aud"), claims.get("azp")
        if (azp is not None or (isinstance(aud, list) and len(aud) > 1)) and azp != self.client_id:
            raise LoginFailed("id_token", "audience")  # OpenID Core 3.1.3.7, steps 4 and 5
        return SsoLogin(sub=claims["sub"], iss=claims["iss"], claims=claims)
