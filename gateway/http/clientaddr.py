"""Who is calling and over what: client address (X-Forwarded-For only from trusted proxies)."""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

from aiohttp import web

from gateway.config.schema import Network, ServerSettings

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def _parse_ip(text: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(text.strip())
    except ValueError:
        return None


def _trusted(address: IPAddress | None, proxies: Sequence[Network]) -> bool:
    return address is not None and any(address in network for network in proxies)


def peer_address(request: web.Request) -> IPAddress | None:
    return _parse_ip(request.remote or "")


def client_address(request: web.Request, server: ServerSettings) -> str:
    """The first address, walking X-Forwarded-For from the right, that is not a trusted proxy."""
    peer = peer_address(request)
    if not _trusted(peer, server.trusted_proxies):
        return str(peer) if peer is not None else "unknown"
    hops = [h for h in request.headers.get("X-Forwarded-For", "").split(",") if h.strip()]
    for hop in reversed(hops):
        address = _parse_ip(hop)
        if address is None:
            break
        if not _trusted(address, server.trusted_proxies):
            return str(address)
    return str(peer)


def is_secure(request: web.Request, server: ServerSettings) -> bool:
    if request.secure:
        return True
    proto = request.headers.get("X-Forwarded-Proto", "").split(",")[0].strip().lower()
    return proto == "https" and _trusted(peer_address(request), server.trusted_proxies)


def basic_credentials_allowed(request: web.Request, server: ServerSettings) -> bool:
    """Passwords travel only over TLS, on loopback, or where the operator explicitly allows it."""
    if server.allow_insecure_basic or is_secure(request, server):
        return True
    client = _parse_ip(client_address(request, server))
    return client is not None and client.is_loopback
