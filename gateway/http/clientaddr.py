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


def _client(peer: IPAddress | None, request: web.Request,
            server: ServerSettings) -> IPAddress | None:
    """The first address, walking X-Forwarded-For from the right, that is not a trusted proxy."""
    if not _trusted(peer, server.trusted_proxies):
        return peer
    hops = [h for h in request.headers.get("X-Forwarded-For", "").split(",") if h.strip()]
    for hop in reversed(hops):
        address = _parse_ip(hop)
        if address is None:
            break
        if not _trusted(address, server.trusted_proxies):
            return address
    return peer


def client_address(request: web.Request, server: ServerSettings) -> str:
    return origin(request, server)[0]


def _forwarded_https(request: web.Request, peer: IPAddress | None,
                     server: ServerSettings) -> bool:
    proto = request.headers.get("X-Forwarded-Proto", "").split(",")[0].strip().lower()
    return proto == "https" and _trusted(peer, server.trusted_proxies)


def is_secure(request: web.Request, server: ServerSettings) -> bool:
    return request.secure or _forwarded_https(request, peer_address(request), server)


def basic_credentials_allowed(request: web.Request, server: ServerSettings) -> bool:
    """Passwords travel only over TLS, on loopback, or where the operator explicitly allows it."""
    return origin(request, server)[1]


def origin(request: web.Request, server: ServerSettings) -> tuple[str, bool]:
    """(client address, whether passwords may travel) with the peer parsed once: every request
    asks both."""
    peer = peer_address(request)
    client = _client(peer, request, server)
    allowed = (server.allow_insecure_basic or request.secure
               or _forwarded_https(request, peer, server)
               or (client is not None and client.is_loopback))
    return (str(client) if client is not None else "unknown"), allowed
