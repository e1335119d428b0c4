"""Forward a checked request to the upstream registry, streaming bodies both ways."""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

import aiohttp
from aiohttp import web
from multidict import CIMultiDict

from gateway.upstream import zerocopy
from gateway.upstream.client import API_VERSION_HEADER, UpstreamClient
from gateway.upstream.repairs import unsatisfiable_range

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
# Bodies up to this size (manifests, errors, upload answers) are read whole and sent with their
# headers in one write; anything larger streams. Bounded, so no blob is ever held in memory.
SMALL_BODY = 64 * 1024
RANGE = re.compile(r"bytes=(\d{0,18})-(\d{0,18})", re.ASCII)
BLOB_GET = re.compile(r"/v2/.+/blobs/sha256:[a-f0-9]{64}", re.ASCII)


def usable_range(values: list[str]) -> bool:
    """One single byte range of a shape distribution serves (`bytes=a-b`, `a-`, `-n`)."""
    match = RANGE.fullmatch(values[0]) if len(values) == 1 else None
    if match is None:
        return False
    first, last = match.group(1), match.group(2)
    if not (first and last):
        return bool(first or last)
    return int(first) <= int(last)


@dataclass(frozen=True, slots=True)
class Forwarded:
    """What came back, once the body has been relayed; `response` is what the client gets."""

    response: web.StreamResponse
    status: int
    headers: CIMultiDict[str]
    bytes_down: int
    bytes_up: int
    complete: bool = True  # False: the body broke off after the status was sent


class Forwarder:
    def __init__(self, client: UpstreamClient, public_url: str) -> None:
        self.client = client
        upstream = urlsplit(client.base)
        # Blob bodies can be spliced only from a plain-HTTP upstream (see zerocopy.py).
        self._splice_to = ((upstream.hostname or "", upstream.port or 80, upstream.netloc)
                           if upstream.scheme == "http" else None)
        self._public_url = public_url
        public = urlsplit(public_url)
        self._forwarded = {"X-Forwarded-Proto": public.scheme, "X-Forwarded-Host": public.netloc}
        self._metrics = client.metrics
        self._download = client.metrics.bytes.labels("download")  # looked up once, not per request
        self._upload = client.metrics.bytes.labels("upload")

    def rewrite_location(self, value: str) -> str:
        base = self.client.base
        return self._public_url + value[len(base):] if value.startswith(base) else value

    def _request_headers(self, request: web.Request, has_body: bool) -> CIMultiDict[str]:
        # A body on a read is not forwarded (aiohttp drains it, bounded, after the answer), so
        # neither is its length: the registry would wait for bytes that never come.
        drop = DROP_REQUEST if has_body else DROP_REQUEST | {"content-length"}
        headers = CIMultiDict((k, v) for k, v in request.headers.items() if k.lower() not in drop)
        if "Range" in headers and not usable_range(headers.getall("Range")):
            # distribution declares the blob's length, then writes a short error body: a 502.
            # RFC 9110 lets a server ignore a Range it cannot use; the full body is the answer.
            del headers["Range"]
        headers.update(self._forwarded)
        return headers

    def _response_headers(self, items: Iterable[tuple[str, str]]) -> CIMultiDict[str]:
        headers = CIMultiDict((k, v) for k, v in items if k.lower() not in DROP_RESPONSE)
        if "Location" in headers:
            headers["Location"] = self.rewrite_location(headers["Location"])
        headers.update(API_VERSION_HEADER)
        return headers

    async def forward(self, request: web.Request, path_qs: str) -> Forwarded:
        """Relay `request` to `path_qs` (the raw, validated path and query) and stream the answer.

        UpstreamError when the upstream fails before anything was sent to the client.
        """
        if (request.method == "GET" and self._splice_to is not None and not request.body_exists
                and BLOB_GET.fullmatch(path_qs.partition("?")[0])):
            dst = zerocopy.client_fd(request)
            if dst is not None:
                spliced = await self._forward_spliced(request, path_qs, dst)
                if spliced is not None:
                    return spliced
        has_body = request.method in ("POST", "PUT", "PATCH") and request.body_exists
        counter = _ByteCounter(request.content) if has_body else None
        try:
            upstream = await self.client.session.request(
                request.method, self.client.url(path_qs),
                headers=self._request_headers(request, has_body),
                data=counter.chunks() if counter is not None else None,
                allow_redirects=False,
            )
        except (aiohttp.ClientError, TimeoutError) as exc:
            failure = self.client.failure(exc)
            log.warning("upstream %s failed: %s", request.method, failure.kind)
            raise failure from exc
        try:
            return await self._relay(request, upstream, counter)
        finally:
            upstream.release()

    async def _forward_spliced(self, request: web.Request, path_qs: str,
                               dst: int) -> Forwarded | None:
        """A blob GET on a connection of its own, whose body the kernel moves to the client.
        None: take the ordinary path (a GET is safe to repeat)."""
        assert self._splice_to is not None
        host, port, netloc = self._splice_to
        settings = self.client.settings
        try:
            head = await zerocopy.open_get(
                host, port, netloc, path_qs,
                [*self._request_headers(request, False).items(), *self.client.auth_headers.items()],
                settings.connect_timeout, settings.read_timeout)
        except (OSError, TimeoutError):
            return None  # the ordinary path tries again and reports a failure as it always does
        try:
            length = head.content_length
            if head.status == 416:  # its body would not match the length it declares
                return self._result(unsatisfiable_range(length), CIMultiDict(), 0, None)
            headers = self._response_headers(head.headers.items())
            # A small blob is read whole, as an error answer is: one write, and the content
            # cache may keep it (it holds blobs of at most 64 KiB).
            if length is not None and length > SMALL_BODY and head.status in (200, 206):
                return await self._splice(request, head, headers, length, dst)
            if length is not None and length <= SMALL_BODY:
                if head.status >= 500:
                    self._metrics.upstream_errors.labels("status").inc()
                try:
                    body = await head.read_body(length, settings.read_timeout)
                except (OSError, TimeoutError):
                    return None
                response = web.Response(status=head.status, reason=head.reason, headers=headers,
                                        body=body)
                return self._result(response, headers, len(body), None)
            return None  # no length to frame it by: rare enough to ask again the ordinary way
        finally:
            head.close()

    async def _splice(self, request: web.Request, head: zerocopy.UpstreamHead,
                      headers: CIMultiDict[str], length: int, dst: int) -> Forwarded:
        response = web.StreamResponse(status=head.status, reason=head.reason, headers=headers)
        await response.prepare(request)
        self._metrics.spliced.inc()
        sent = 0
        try:
            early = head.early[:length]
            if early:
                await response.write(early)
                sent = len(early)
            await zerocopy.wait_flushed(request)
            sent += await zerocopy.splice_body(head.sock, dst, length - sent,
                                               self.client.settings.read_timeout)
        except zerocopy.BrokenTransfer as broken:
            if broken.reason != "client":
                self._metrics.upstream_errors.labels(
                    "timeout" if broken.reason == "timeout" else "protocol").inc()
            log.warning("blob body broke off (%s) after %d bytes", broken.reason,
                        sent + broken.sent)
        except ConnectionError:  # aiohttp's write found the client gone
            log.warning("blob body broke off (client) after %d bytes", sent)
        else:
            await response.write_eof()
            return self._result(response, headers, sent, None)
        return self._broken(request, response, headers, sent)

    def _broken(self, request: web.Request, response: web.StreamResponse,
                headers: CIMultiDict[str], sent: int) -> Forwarded:
        # The status is already sent: cutting the connection is the only honest signal.
        if request.transport is not None:
            request.transport.close()
        return Forwarded(response, response.status, headers, sent, 0, complete=False)

    async def _relay(self, request: web.Request, upstream: aiohttp.ClientResponse,
                     counter: _ByteCounter | None) -> Forwarded:
        if upstream.status >= 500:
            self._metrics.upstream_errors.labels("status").inc()
        length = upstream.content_length
        if upstream.status == 416 and request.method == "GET":  # see repairs.py
            return self._result(unsatisfiable_range(length), CIMultiDict(), 0, counter)
        headers = self._response_headers(upstream.headers.items())
        if request.method == "HEAD" or (length is not None and length <= SMALL_BODY):
            return await self._relay_small(request, upstream, counter, headers)
        response = web.StreamResponse(status=upstream.status, reason=upstream.reason,
                                      headers=headers)
        await response.prepare(request)
        sent = 0
        try:
            # iter_any joins what arrived since the last write into one: fewer, larger writes.
            # (readchunk, which skips that copy, measured 16% more CPU per GiB: syscalls cost
            # more than the copy. Blob GETs do not come here at all when they can be spliced.)
            async for chunk in upstream.content.iter_any():
                await response.write(chunk)
                sent += len(chunk)
        except (aiohttp.ClientError, TimeoutError) as exc:
            self.client.failure(exc)
            log.warning("upstream body broke off after %d bytes", sent)
            return self._broken(request, response, headers, sent)
        await response.write_eof()
        return self._result(response, headers, sent, counter)

    async def _relay_small(self, request: web.Request, upstream: aiohttp.ClientResponse,
                           counter: _ByteCounter | None,
                           headers: CIMultiDict[str]) -> Forwarded:
        """A bounded body, read whole: headers and body then leave in one write, and an upstream
        that breaks off mid-body still gets an honest 502 (nothing has been sent yet)."""
        body = None
        if request.method != "HEAD":
            try:
                body = await upstream.read()
            except (aiohttp.ClientError, TimeoutError) as exc:
                failure = self.client.failure(exc)
                log.warning("upstream body broke off: %s", failure.kind)
                raise failure from exc
        response = web.Response(status=upstream.status, reason=upstream.reason, headers=headers,
                                body=body)
        return self._result(response, headers, len(body) if body else 0, counter)

    def _result(self, response: web.StreamResponse, headers: CIMultiDict[str], sent: int,
                counter: _ByteCounter | None) -> Forwarded:
        self._download.inc(sent)
        received = counter.count if counter is not None else 0
        self._upload.inc(received)
        return Forwarded(response, response.status, headers, sent, received)


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


