"""The upstream registry client: one keep-alive session, health pings and small capped reads."""

from __future__ import annotations

import asyncio
import json
import ssl
from typing import Any

import aiohttp
from multidict import CIMultiDict
from yarl import URL

from gateway.config.schema import UpstreamSettings
from gateway.metrics import Metrics

API_VERSION_HEADER = {"Docker-Distribution-API-Version": "registry/2.0"}
READ_CHUNK = 256 * 1024
POOL_SIZE = 256


def _ssl_context(settings: UpstreamSettings) -> ssl.SSLContext | bool:
    """Verification against `ca_file` (else the system's CAs), with a client certificate."""
    if settings.ca_file is None and settings.client_cert is None:
        return True
    context = ssl.create_default_context(
        cafile=str(settings.ca_file) if settings.ca_file is not None else None)
    if settings.client_cert is not None and settings.client_key is not None:
        context.load_cert_chain(str(settings.client_cert), str(settings.client_key))
    return context


class UpstreamError(Exception):
    """The upstream did not answer usably: `status` is the 502 or 504 the client gets."""

    def __init__(self, kind: str, status: int) -> None:
        super().__init__(kind)
        self.kind = kind
        self.status = status


class UpstreamClient:
    """The one shared session to the registry behind the gateway (opened in cleanup_ctx)."""

    def __init__(self, settings: UpstreamSettings, metrics: Metrics) -> None:
        self.base = settings.url
        self.settings = settings
        self.metrics = metrics
        self._timeout = aiohttp.ClientTimeout(
            total=None, connect=settings.connect_timeout, sock_read=settings.read_timeout
        )
        self._session: aiohttp.ClientSession | None = None
        self._ssl = _ssl_context(settings)
        # The gateway's own credential for the registry: on every upstream request (the
        # client's Authorization never goes upstream), never to clients, never logged.
        self.auth_headers: dict[str, str] = {}
        if settings.username is not None and settings.password_file is not None:
            password = settings.password_file.read_text(encoding="utf-8").rstrip("\r\n")
            self.auth_headers["Authorization"] = aiohttp.BasicAuth(
                settings.username, password).encode()

    def __repr__(self) -> str:
        return f"UpstreamClient({self.base!r})"

    async def open(self) -> None:
        connector = aiohttp.TCPConnector(limit=POOL_SIZE, keepalive_timeout=30, ttl_dns_cache=60,
                                         ssl=self._ssl)
        self._session = aiohttp.ClientSession(
            headers=self.auth_headers,
            connector=connector,
            timeout=self._timeout,
            auto_decompress=False,
            skip_auto_headers=("Accept-Encoding", "User-Agent", "Content-Type"),
            read_bufsize=READ_CHUNK,
            # Cookies the upstream sets are nobody's: never kept, never sent for another client.
            cookie_jar=aiohttp.DummyCookieJar(),
        )

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    @property
    def session(self) -> aiohttp.ClientSession:
        assert self._session is not None, "UpstreamClient.open() runs in the app's cleanup context"
        return self._session

    def url(self, path_qs: str) -> URL:
        """The raw, validated path and query, never re-normalised (protocol.md §4.6)."""
        return URL(self.base + path_qs, encoded=True)

    def failure(self, exc: BaseException) -> UpstreamError:
        """Classify and count a failed exchange."""
        if isinstance(exc, TimeoutError | asyncio.TimeoutError):
            self.metrics.upstream_errors.labels("timeout").inc()
            return UpstreamError("timeout", 504)
        if isinstance(exc, aiohttp.ClientConnectorError):
            self.metrics.upstream_errors.labels("connect").inc()
            return UpstreamError("connect", 502)
        self.metrics.upstream_errors.labels("protocol").inc()
        return UpstreamError("protocol", 502)

    async def ping(self) -> bool:
        try:
            async with self.session.get(self.url("/v2/"),
                                        timeout=aiohttp.ClientTimeout(total=2)) as response:
                return response.status < 500
        except (aiohttp.ClientError, TimeoutError):
            return False

    async def get_json(self, path_qs: str) -> tuple[int, object, CIMultiDict[str]]:
        """A small JSON GET (catalog pages, tag lists); UpstreamError when it fails."""
        try:
            async with self.session.get(self.url(path_qs), allow_redirects=False) as response:
                body = await response.json(content_type=None) if response.status < 500 else None
                if response.status >= 500:
                    self.metrics.upstream_errors.labels("status").inc()
                return response.status, body, CIMultiDict(response.headers)
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            raise self.failure(exc) from exc

    async def get_capped_json(self, path: str, accept: str | None,
                              limit: int) -> tuple[int, Any, str, str]:
        """(status, JSON body or None, content type, digest header) of a GET read to `limit`."""
        headers = {"Accept": accept} if accept else {}
        try:
            async with self.session.get(self.url(path), headers=headers,
                                        allow_redirects=False) as response:
                length = response.content_length
                if response.status != 200 or (length is not None and length > limit):
                    return response.status, None, "", ""
                raw = await _read_capped(response, limit)
                if raw is None:
                    return response.status, None, "", ""
                content_type = response.headers.get("Content-Type", "").split(";")[0].strip()
                return (response.status, json.loads(raw), content_type,
                        response.headers.get("Docker-Content-Digest", ""))
        except ValueError:
            return 502, None, "", ""
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise self.failure(exc) from exc


async def _read_capped(response: aiohttp.ClientResponse, limit: int) -> bytes | None:
    raw = bytearray()
    while len(raw) <= limit:
        chunk = await response.content.read(limit + 1 - len(raw))
        if not chunk:
            return bytes(raw)
        raw += chunk
    return None
