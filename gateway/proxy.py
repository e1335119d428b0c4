"""Forward a checked request to the upstream registry, streaming bodies both ways."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from urllib.parse import urlsplit

import aiohttp
from aiohttp import web
from multidict import CIMultiDict
from yarl import URL

from gateway.config import UpstreamSettings
from gateway.errors import API_VERSION_HEADER, registry_error
from gateway.metrics import Metrics

log = logging.getLogger("registry_gateway.proxy")

HOP_BY_HOP = frozenset({
    "connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "proxy-connection",
    "te", "trailer", "trailers", "transfer-encoding", "upgrade",
})
# Never sent upstream: our credentials, the client's idea of where it is, what aiohttp sets itself.
DROP_REQUEST = HOP_BY_HOP | {
    "authorization", "cookie", "host", "forwarded", "x-forwarded-for", "x-forwarded-host",
    "x-forwarded-proto", "x-forwarded-port", "x-real-ip", "expect",
}
DROP_RESPONSE = HOP_BY_HOP | {"www-authenticate", "set-cookie", "server", "date"}
READ_CHUNK = 256 * 1024


@dataclass(frozen=True, slots=True)
class Forwarded:
    """What came back, once the body has been relayed."""

    status: int
    headers: CIMultiDict[str]
    bytes_down: int
    bytes_up: int


class UpstreamError(Exception):
    def __init__(self, kind: str, status: int) -> None:
        super().__init__(kind)
        self.kind = kind
        self.status = status


class Upstream:
    """One shared keep-alive session to the registry behind the gateway."""

    def __init__(self, settings: UpstreamSettings, public_url: str, metrics: Metrics) -> None:
        self.base = settings.url
        self._public_url = public_url
        public = urlsplit(public_url)
        self._forwarded = {"X-Forwarded-Proto": public.scheme, "X-Forwarded-Host": public.netloc}
        self._metrics = metrics
        self._timeout = aiohttp.ClientTimeout(
            total=None, connect=settings.connect_timeout, sock_read=settings.read_timeout
        )
        self._session: aiohttp.ClientSession | None = None

    async def open(self) -> None:
        connector = aiohttp.TCPConnector(limit=256, keepalive_timeout=30, ttl_dns_cache=60)
        self._session = aiohttp.ClientSession(
            connector=connector,
            timeout=self._timeout,
            auto_decompress=False,
            skip_auto_headers=("Accept-Encoding", "User-Agent", "Content-Type"),
            read_bufsize=READ_CHUNK,
        )

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    @property
    def session(self) -> aiohttp.ClientSession:
        assert self._session is not None, "Upstream.open() runs in the app's cleanup context"
        return self._session

    def rewrite_location(self, value: str) -> str:
        if value.startswith(self.base):
            return self._public_url + value[len(self.base):]
        return value

    def _request_headers(self, request: web.Request) -> CIMultiDict[str]:
        headers = CIMultiDict(
            (k, v) for k, v in request.headers.items() if k.lower() not in DROP_REQUEST
        )
        headers.update(self._forwarded)
        return headers

    async def ping(self) -> bool:
        try:
            async with self.session.get(
                URL(self.base + "/v2/", encoded=True), timeout=aiohttp.ClientTimeout(total=2)
            ) as response:
                return response.status < 500
        except (aiohttp.ClientError, TimeoutError):
            return False

    async def get_json(self, path_qs: str) -> tuple[int, object, CIMultiDict[str]]:
        """A small JSON GET (catalog pages, manifests for the UI)."""
        try:
            async with self.session.get(URL(self.base + path_qs, encoded=True),
                                        allow_redirects=False) as response:
                body = await response.json(content_type=None) if response.status < 500 else None
                if response.status >= 500:
                    self._metrics.upstream_errors.labels("status").inc()
                return response.status, body, CIMultiDict(response.headers)
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            raise self._failure(exc) from exc

    def _failure(self, exc: BaseException) -> UpstreamError:
        if isinstance(exc, TimeoutError | asyncio.TimeoutError):
            self._metrics.upstream_errors.labels("timeout").inc()
            return UpstreamError("timeout", 504)
        if isinstance(exc, aiohttp.ClientConnectorError):
            self._metrics.upstream_errors.labels("connect").inc()
            return UpstreamError("connect", 502)
        self._metrics.upstream_errors.labels("protocol").inc()
        return UpstreamError("protocol", 502)

    async def forward(
        self, request: web.Request, path_qs: str
    ) -> tuple[web.StreamResponse, Forwarded | None]:
        """Relay `request` to `path_qs` (the raw, validated path and query) and stream the answer."""
        has_body = request.method in ("POST", "PUT", "PATCH") and request.body_exists
        counter = _ByteCounter(request.content) if has_body else None
        try:
            upstream = await self.session.request(
                request.method,
                URL(self.base + path_qs, encoded=True),
                headers=self._request_headers(request),
                data=counter.chunks() if counter is not None else None,
                allow_redirects=False,
            )
        except (aiohttp.ClientError, TimeoutError) as exc:
            failure = self._failure(exc)
            log.warning("upstream %s failed: %s", request.method, failure.kind)
            return upstream_unavailable(failure), None
        try:
            return await self._relay(request, upstream, counter)
        finally:
            upstream.release()

    async def _relay(
        self, request: web.Request, upstream: aiohttp.ClientResponse, counter: _ByteCounter | None
    ) -> tuple[web.StreamResponse, Forwarded | None]:
        if upstream.status >= 500:
            self._metrics.upstream_errors.labels("status").inc()
        headers = CIMultiDict(
            (k, v) for k, v in upstream.headers.items() if k.lower() not in DROP_RESPONSE
        )
        if "Location" in headers:
            headers["Location"] = self.rewrite_location(headers["Location"])
        headers.update(API_VERSION_HEADER)
        response = web.StreamResponse(status=upstream.status, reason=upstream.reason,
                                      headers=headers)
        await response.prepare(request)
        sent = 0
        if request.method != "HEAD":
            try:
                async for chunk in upstream.content.iter_any():
                    await response.write(chunk)
                    sent += len(chunk)
            except (aiohttp.ClientError, TimeoutError) as exc:
                self._failure(exc)
                log.warning("upstream body broke off after %d bytes", sent)
                # The status is already sent: cutting the connection is the only honest signal.
                if request.transport is not None:
                    request.transport.close()
                return response, None
            await response.write_eof()
        self._metrics.bytes.labels("download").inc(sent)
        received = counter.count if counter is not None else 0
        self._metrics.bytes.labels("upload").inc(received)
        return response, Forwarded(upstream.status, headers, sent, received)


class _ByteCounter:
    """Streams the client's body upstream chunk by chunk (backpressure), counting bytes."""

    def __init__(self, content: aiohttp.StreamReader) -> None:
        self._content = content
        self.count = 0

    async def chunks(self) -> AsyncIterator[bytes]:
        while True:
            chunk = await self._content.readany()
            if not chunk:
                return
            self.count += len(chunk)
            yield chunk


def upstream_unavailable(failure: UpstreamError) -> web.Response:
    message = ("the registry behind the gateway did not answer in time"
               if failure.status == 504 else "the registry behind the gateway is unavailable")
    return registry_error(failure.status, "UNAVAILABLE", message)
