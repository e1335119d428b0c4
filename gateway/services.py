"""Everything a request handler needs, built once by create_app and stored under one typed key."""

from __future__ import annotations

from dataclasses import dataclass

from aiohttp import web

from gateway.access import AccessControl
from gateway.audit import AuditLog
from gateway.catalog import CatalogLister
from gateway.metrics import Metrics
from gateway.proxy import Upstream
from gateway.reload import ConfigHolder
from gateway.stores import UploadBindings
from gateway.tokens import TokenAuthority


@dataclass
class Services:
    holder: ConfigHolder
    tokens: TokenAuthority
    access: AccessControl
    upstream: Upstream
    catalog: CatalogLister
    uploads: UploadBindings
    metrics: Metrics
    audit: AuditLog
    realm: str

    @property
    def service(self) -> str:
        return self.tokens.service


SERVICES = web.AppKey("services", Services)
