"""Manifest and small-blob reads answered from the content cache, after the access check.

Called only for a request the decision allowed, so a hit is never wider than the rules. A miss
goes upstream as ever and, on a 200 whose body hashes to its digest, fills the cache; manifest
PUTs and DELETEs and blob DELETEs invalidate the repository on every replica before their
answer leaves. A hit answers exactly what the registry answered: the same headers in the same
order and the same body; anything the registry answers differently per request (ranges,
conditions other than a manifest's If-None-Match, an Accept that does not list the cached media
type, query strings) is asked upstream.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass

import aiohttp
from aiohttp import web
from multidict import CIMultiDict

from gateway.config.schema import ContentCacheSettings
from gateway.metrics import CONTENT_CACHE_RESULTS, Metrics
from gateway.policy.names import RoutedPath
from gateway.state.content import BLOB_LIMIT, ContentCache, ContentEntry, ContentKey, View
from gateway.state.ttlmap import TTLMap
from gateway.upstream.client import API_VERSION_HEADER
from gateway.upstream.forward import Forwarded, Forwarder

log = logging.getLogger("registry_gateway.content")

LIST_TYPE = "application/vnd.docker.distribution.manifest.list.v2+json"
INDEX_TYPE = "application/vnd.oci.image.index.v1+json"
MANIFEST_TYPES = frozenset({"application/vnd.docker.distribution.manifest.v2+json", LIST_TYPE,
                            "application/vnd.oci.image.manifest.v1+json", INDEX_TYPE})
ALL_TYPES = ", ".join(sorted(MANIFEST_TYPES))
# Answer headers a hit can replay; an answer with any other header is not cached.
REPLAYABLE = frozenset({"content-type", "content-length", "docker-content-digest", "etag",
                        "docker-distribution-api-version", "accept-ranges", "cache-control"})
# The registry answers these per request (ranges, conditions): always asked.
CONDITIONAL = ("Range", "If-Range", "If-Match", "If-Modified-Since", "If-Unmodified-Since")
DIGEST = re.compile(r"sha256:[a-f0-9]{64}", re.ASCII)
_TCHAR = r"[A-Za-z0-9!#$&'*^_`|~.+-]+"
MEDIA_TYPE = re.compile(rf"{_TCHAR}/{_TCHAR}", re.ASCII)
PARAMETERS = re.compile(rf'(\s*;\s*{_TCHAR}=({_TCHAR}|"[^"\\]*"))*\s*', re.ASCII)
LARGE_BLOBS = 10_000  # blobs known to be over the limit: not looked up again for `ttl`


def accepted_types(values: list[str]) -> frozenset[str]:
    """The media types an Accept header lists, as distribution reads them (comma-separated,
    parameters ignored, lower-cased); a part it might read otherwise is left out."""
    found = set()
    for value in values:
        for part in value.split(","):
            media, sep, parameters = part.partition(";")
            media = media.strip().lower()
            if MEDIA_TYPE.fullmatch(media) and (not sep or PARAMETERS.fullmatch(sep + parameters)):
                found.add(media)
    return frozenset(found)


def etag_matches(values: list[str], digest: str) -> bool:
    """distribution's etagMatch: any If-None-Match value equal to the digest, quoted or not."""
    return any(value in (digest, f'"{digest}"') for value in values)


@dataclass(frozen=True, slots=True)
class Read:
    """A GET or HEAD of a manifest or blob. `eligible` False: asked upstream, counted bypass."""

    kind: str  # "manifest" or "blob"
    repository: str
    tag: str | None
    digest: str | None
    accepted: frozenset[str]
    eligible: bool


def content_read(request: web.Request, settings: ContentCacheSettings, routed: RoutedPath,
                 path_qs: str) -> Read | None:
    """The read the cache may answer, or None for anything else (or with the cache off)."""
    if (not settings.enabled or request.method not in ("GET", "HEAD")
            or routed.route not in ("manifests", "blobs") or not routed.reference
            or routed.name is None):
        return None
    headers = request.headers
    reference = routed.reference
    digest = reference if DIGEST.fullmatch(reference) else None
    eligible = ("?" not in path_qs and not request.body_exists
                and not any(name in headers for name in CONDITIONAL))
    if routed.route == "blobs":
        eligible = eligible and digest is not None and "If-None-Match" not in headers
        return Read("blob", routed.name, None, digest, frozenset(), eligible)
    tag = None if digest is not None or ":" in reference else reference
    eligible = eligible and (digest is not None or (tag is not None and settings.tag_ttl > 0))
    return Read("manifest", routed.name, tag, digest,
                accepted_types(headers.getall("Accept", [])), eligible)


class CachedForwarder:
    """The Forwarder with the content cache in front of it, for /v2/ repository routes."""

    def __init__(self, forwarder: Forwarder, cache: ContentCache, metrics: Metrics) -> None:
        self._forwarder = forwarder
        self._cache = cache
        self._results = {result: metrics.content_cache.labels(result)
                         for result in CONTENT_CACHE_RESULTS}
        self._invalidations = metrics.content_invalidations
        self._download = metrics.bytes.labels("download")
        self._large: TTLMap[ContentKey, bool] = TTLMap(LARGE_BLOBS)
        metrics.content_bytes.set_function(lambda: cache.bytes_held)

    async def forward(self, request: web.Request, settings: ContentCacheSettings,
                      routed: RoutedPath, path_qs: str) -> Forwarded:
        """Answer `request` (already allowed) from the cache or the upstream; UpstreamError as
        Forwarder.forward raises it."""
        read = content_read(request, settings, routed, path_qs)
        if read is not None:
            return await self._read(request, settings, read, path_qs)
        if not settings.enabled and self._cache.bytes_held:
            self._cache.clear()  # turned off by a reload: hold nothing
        try:
            return await self._forwarder.forward(request, path_qs)
        finally:
            await self._invalidate_after(request.method, routed)

    async def _read(self, request: web.Request, settings: ContentCacheSettings, read: Read,
                    path_qs: str) -> Forwarded:
        if not read.eligible or (read.digest is not None and read.kind == "blob"
                                 and self._large.get(self._key(read, read.digest))):
            self._results["bypass"].inc()
            return await self._forwarder.forward(request, path_qs)
        view = await self._cache.view(read.repository, read.tag if settings.redis else None)
        digest = read.digest or (self._cache.tag(view, read.tag) if read.tag else None)
        entry = await self._cache.get(view, self._key(read, digest), settings) if digest else None
        if entry is not None:
            answer = self._answer(request, read, entry)
            if answer is not None:
                self._results["hit"].inc()
                return answer
            self._results["bypass"].inc()  # cached, but not in a type this client accepts
            return await self._forwarder.forward(request, path_qs)
        self._results["error" if view.failed else "miss"].inc()
        forwarded = await self._forwarder.forward(request, path_qs)
        await self._learn(request, settings, read, view, forwarded)
        return forwarded

    @staticmethod
    def _key(read: Read, digest: str) -> ContentKey:
        return ContentKey(read.repository, read.kind, digest)

    def _answer(self, request: web.Request, read: Read, entry: ContentEntry) -> Forwarded | None:
        if read.kind == "manifest":
            # distribution compares the ETag before it looks at Accept (and answers only this).
            if etag_matches(request.headers.getall("If-None-Match", []), entry.digest):
                headers = CIMultiDict(API_VERSION_HEADER)
                return Forwarded(web.Response(status=304, headers=headers), 304, headers, 0, 0)
            if entry.media_type not in read.accepted:
                return None
        headers = CIMultiDict(entry.headers)
        body = entry.body if request.method == "GET" else None
        sent = len(body) if body is not None else 0
        self._download.inc(sent)
        return Forwarded(web.Response(status=200, headers=headers, body=body), 200, headers,
                         sent, 0)

    async def _learn(self, request: web.Request, settings: ContentCacheSettings, read: Read,
                     view: View, forwarded: Forwarded) -> None:
        headers = forwarded.headers
        if forwarded.status != 200 or not forwarded.complete:
            return
        digest = headers.get("Docker-Content-Digest", "")
        if read.kind == "blob" and _length(headers) > BLOB_LIMIT and read.digest:
            self._large.put(self._key(read, read.digest), True, settings.ttl)
            return
        media_type = headers.get("Content-Type", "")
        if (not DIGEST.fullmatch(digest) or read.digest not in (None, digest)
                or any(name.lower() not in REPLAYABLE for name in headers)
                or (read.kind == "manifest" and media_type not in MANIFEST_TYPES)):
            return
        if request.method == "GET" and not await self._fill(settings, read, view, forwarded,
                                                            digest, media_type):
            return
        if read.tag and view.generation is not None and settings.tag_ttl > 0:
            await self._learn_tag(read, read.tag, view, digest, media_type, settings)

    async def _learn_tag(self, read: Read, tag: str, view: View, digest: str, media_type: str,
                         settings: ContentCacheSettings) -> None:
        """A by-tag answer is the tag's own manifest unless distribution rewrote a manifest list
        for a client that does not accept lists (lists and indexes are never a rewrite). For such
        a client, ask the upstream what the tag names, every manifest type accepted."""
        if media_type not in (LIST_TYPE, INDEX_TYPE) and LIST_TYPE not in read.accepted \
                and await self._tag_target(read.repository, tag) != digest:
            return
        await self._cache.put_tag(view, tag, digest, settings)

    async def _tag_target(self, repository: str, tag: str) -> str | None:
        client = self._forwarder.client
        path = f"/v2/{repository}/manifests/{tag}"  # both validated by the route parser
        try:
            async with client.session.head(client.url(path), headers={"Accept": ALL_TYPES},
                                           allow_redirects=False) as response:
                return (response.headers.get("Docker-Content-Digest")
                        if response.status == 200 else None)
        except (aiohttp.ClientError, TimeoutError):
            return None  # not learnt; the answer itself was relayed already

    async def _fill(self, settings: ContentCacheSettings, read: Read, view: View,
                    forwarded: Forwarded, digest: str, media_type: str) -> bool:
        response = forwarded.response
        body = response.body if isinstance(response, web.Response) else None
        if not isinstance(body, bytes) or len(body) > BLOB_LIMIT \
                or _length(forwarded.headers) != len(body):
            return False
        key = self._key(read, digest)
        if self._cache.holds(view, key):
            return True  # a tag not learnt brings the same manifest again: keep what is held
        entry = ContentEntry.verified(digest, media_type, tuple(forwarded.headers.items()), body)
        if entry is None:
            log.warning("the upstream's %s for %s does not hash to its digest; not cached",
                        read.kind, read.repository)
            return False
        await self._cache.put(view, key, entry, settings)
        return True

    async def _invalidate_after(self, method: str, routed: RoutedPath) -> None:
        """After a manifest PUT or DELETE or a blob DELETE, whatever the answer (the upstream
        may have applied it even when it failed to say so)."""
        if routed.name is None or not (
                (routed.route == "manifests" and method in ("PUT", "DELETE"))
                or (routed.route == "blobs" and method == "DELETE" and routed.reference)):
            return
        reference = routed.reference or ""
        kind = "manifest" if routed.route == "manifests" else "blob"
        key = ContentKey(routed.name, kind, reference) if DIGEST.fullmatch(reference) else None
        await self._cache.invalidate(routed.name, key)
        self._invalidations.inc()


def _length(headers: CIMultiDict[str]) -> int:
    value = headers.get("Content-Length", "")
    return int(value) if value.isdigit() else -1
