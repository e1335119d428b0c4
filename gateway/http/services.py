"""Everything a request handler needs, built once by create_app and stored under one typed key."""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web

from gateway.access.service import AccessService
from gateway.access.uploads import UploadGuard
from gateway.audit import AuditLog
from gateway.identity.cli_tokens import CliTokens
from gateway.identity.oidc_registry import OidcRegistry
from gateway.identity.sso_names import SsoNames
from gateway.metrics import Metrics
from gateway.runtime.reload import ConfigHolder
from gateway.tokens import TokenAuthority
from gateway.upstream.cached import CachedForwarder
from gateway.upstream.catalog import CatalogLister
from gateway.upstream.client import UpstreamClient
from gateway.upstream.forward import Forwarder


@dataclass
class Services:
    holder: ConfigHolder
    tokens: TokenAuthority
    access: AccessService
    uploads: UploadGuard
    upstream: UpstreamClient
    forwarder: Forwarder
    content: CachedForwarder  # the forwarder behind the content cache (/v2/ reads)
    catalog: CatalogLister
    metrics: Metrics
    audit: AuditLog
    realm: str
    oidc: OidcRegistry  # issuers' keys and the SSO client
    cli_tokens: CliTokens
    sso_names: SsoNames

    @property
    def service(self) -> str:
        return self.tokens.service


SERVICES = web.AppKey("services", Services)
