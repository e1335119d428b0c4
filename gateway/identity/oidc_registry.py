"""The OpenID issuers the running config names, and the SSO client, kept across reloads.

One :class:`IssuerKeys` per (issuer, CA file), all on one aiohttp session owned here: a reload
that keeps an issuer keeps its cached keys (an issuer that is down after a reload still has
them), one that drops it forgets them. The SSO client is made again at each reload, so a new
`client_secret_file` content takes effect. Created by create_app, closed in its cleanup_ctx.
"""

from __future__ import annotations

from pathlib import Path

import aiohttp

from gateway.config.identity_schema import SsoSettings
from gateway.config.schema import Settings
from gateway.identity.oidc_flow import SsoClient
from gateway.identity.oidc_keys import IssuerKeys

IssuerId = tuple[str, str | None]


def named_issuers(settings: Settings) -> set[IssuerId]:
    """Every (issuer, CA file) the config names: federation entries and `sso`."""
    named = {(e.issuer, _path(e.ca_file)) for e in settings.federation}
    if settings.sso is not None:
        named.add((settings.sso.issuer, _path(settings.sso.ca_file)))
    return named


def _path(value: Path | None) -> str | None:
    return str(value) if value is not None else None


class OidcRegistry:
    def __init__(self, *, timeout: float = 5.0) -> None:
        self._timeout = timeout
        self._session: aiohttp.ClientSession | None = None
        self._keys: dict[IssuerId, IssuerKeys] = {}
        self._sso: tuple[SsoSettings, SsoClient] | None = None

    def __repr__(self) -> str:
        return f"<OidcRegistry issuers={len(self._keys)}>"

    def keys(self, issuer: str, ca_file: Path | None) -> IssuerKeys:
        """The keys of `issuer` (made on first use; call from a coroutine: it may open the
        session). ValueError for an issuer URL that is not https (or http to loopback)."""
        ident = (issuer, _path(ca_file))
        found = self._keys.get(ident)
        if found is None:
            if self._session is None:
                self._session = aiohttp.ClientSession()
            found = IssuerKeys(issuer, session=self._session, ca_file=ident[1],
                               timeout=self._timeout)
            self._keys[ident] = found
        return found

    def sso_client(self, sso: SsoSettings) -> SsoClient:
        """The client for `sso`, its secret read from `client_secret_file` on first use after
        a (re)load; OSError when the file cannot be read."""
        if self._sso is not None and self._sso[0] == sso:
            return self._sso[1]
        secret = sso.client_secret_file.read_text(encoding="utf-8").strip()
        client = SsoClient(self.keys(sso.issuer, sso.ca_file), client_id=sso.client_id,
                           client_secret=secret, scopes=sso.scopes)
        self._sso = (sso, client)
        return client

    def configure(self, settings: Settings) -> None:
        """After a reload: forget issuers no longer named, and the SSO client (secret re-read)."""
        named = named_issuers(settings)
        for ident in [i for i in self._keys if i not in named]:
            del self._keys[ident]  # its IssuerKeys uses our session: nothing of its own to close
        self._sso = None

    async def close(self) -> None:
        self._keys.clear()
        self._sso = None
        if self._session is not None:
            await self._session.close()
            self._session = None
