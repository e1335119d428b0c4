"""Small reads from the upstream registry for the pages: tag lists, manifests, image configs.

Every body read here is JSON with a size cap; blobs other than an image config are never read.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass, field
from typing import Any

from gateway.http.services import Services
from gateway.policy.names import DIGEST, TAG
from gateway.upstream.client import UpstreamError

OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
INDEX_TYPES = frozenset({OCI_INDEX, DOCKER_LIST})
MANIFEST_ACCEPT = ", ".join((OCI_INDEX, DOCKER_LIST, OCI_MANIFEST, DOCKER_MANIFEST))
MAX_MANIFEST_BYTES = 4 * 1024 * 1024
MAX_CONFIG_BYTES = 256 * 1024
MAX_PLATFORMS = 16
UPSTREAM_CONCURRENCY = 8


@dataclass(frozen=True, slots=True)
class Platform:
    os: str
    architecture: str
    variant: str = ""
    size: int | None = None
    digest: str = ""

    @property
    def label(self) -> str:
        return "/".join(p for p in (self.os, self.architecture, self.variant) if p)


@dataclass(frozen=True, slots=True)
class TagDetails:
    tag: str
    digest: str = ""
    media_type: str = ""
    size: int | None = None  # compressed: config + layers; None for an index
    platforms: tuple[Platform, ...] = field(default=())
    problem: str = ""

    @property
    def is_index(self) -> bool:
        return self.media_type in INDEX_TYPES


def _tag_key(tag: str) -> tuple[int, list[tuple[int, int | str]]]:
    parts: list[tuple[int, int | str]] = [
        (1, int(p)) if p.isdigit() else (0, p) for p in re.split(r"(\d+)", tag) if p
    ]
    return (1 if tag == "latest" else 0, parts)


def sort_tags(tags: list[str]) -> list[str]:
    """`latest` first, then newest-looking versions first (1.10 before 1.9)."""
    return sorted(tags, key=_tag_key, reverse=True)


async def list_tags(services: Services, name: str) -> list[str] | None:
    """The repository's valid tags, sorted; None when the registry does not know it."""
    status, body, _ = await services.upstream.get_json(f"/v2/{name}/tags/list")
    if status == 404:
        return None
    if status != 200 or not isinstance(body, dict):
        raise UpstreamError("tags", 502)
    tags = body.get("tags") or []
    return sort_tags([t for t in tags if isinstance(t, str) and TAG.fullmatch(t)])


async def _get_json(services: Services, path: str, accept: str | None,
                    limit: int) -> tuple[int, Any, str, str]:
    return await services.upstream.get_capped_json(path, accept, limit)


def _size(manifest: dict[str, Any]) -> int | None:
    parts = [manifest.get("config"), *(manifest.get("layers") or [])]
    sizes = [p.get("size") for p in parts if isinstance(p, dict)]
    if not sizes or not all(type(s) is int for s in sizes):
        return None
    return sum(int(s) for s in sizes if s is not None)


def _index_platforms(index: dict[str, Any]) -> list[tuple[Platform, str]]:
    """(platform, child digest) of each image in an index; attestations are left out."""
    found = []
    for entry in index.get("manifests") or []:
        if not isinstance(entry, dict):
            continue
        platform = entry.get("platform") or {}
        annotations = entry.get("annotations") or {}
        digest = entry.get("digest", "")
        if (not isinstance(platform, dict) or not isinstance(digest, str)
                or "vnd.docker.reference.type" in annotations
                or platform.get("os") == "unknown"):
            continue
        found.append((Platform(str(platform.get("os", "")), str(platform.get("architecture", "")),
                               str(platform.get("variant", "")), digest=digest), digest))
    return found[:MAX_PLATFORMS]


class TagReader:
    """Details of tags of one repository, at most UPSTREAM_CONCURRENCY upstream reads at once."""

    def __init__(self, services: Services, name: str) -> None:
        self._services = services
        self._name = name
        self._limit = asyncio.Semaphore(UPSTREAM_CONCURRENCY)

    async def _manifest(self, reference: str) -> tuple[int, Any, str, str]:
        async with self._limit:
            return await _get_json(self._services, f"/v2/{self._name}/manifests/{reference}",
                                   MANIFEST_ACCEPT, MAX_MANIFEST_BYTES)

    async def _config_platform(self, manifest: dict[str, Any]) -> Platform | None:
        config = manifest.get("config")
        if not isinstance(config, dict):
            return None
        digest, size = config.get("digest"), config.get("size")
        if not (isinstance(digest, str) and DIGEST.fullmatch(digest)
                and type(size) is int and size <= MAX_CONFIG_BYTES):
            return None
        async with self._limit:
            status, body, _, _ = await _get_json(self._services, f"/v2/{self._name}/blobs/{digest}",
                                                 None, MAX_CONFIG_BYTES)
        if status != 200 or not isinstance(body, dict) or "architecture" not in body:
            return None
        return Platform(str(body.get("os", "")), str(body.get("architecture", "")),
                        str(body.get("variant", "")), _size(manifest))

    async def _child(self, platform: Platform, digest: str) -> Platform:
        if not DIGEST.fullmatch(digest):
            return platform
        status, body, _, _ = await self._manifest(digest)
        size = _size(body) if status == 200 and isinstance(body, dict) else None
        return Platform(platform.os, platform.architecture, platform.variant, size, digest)

    async def details(self, tag: str) -> TagDetails:
        status, body, content_type, digest = await self._manifest(tag)
        if status != 200 or not isinstance(body, dict):
            return TagDetails(tag, problem="manifest not readable")
        media_type = str(body.get("mediaType") or content_type)
        if media_type in INDEX_TYPES:
            children = await asyncio.gather(
                *(self._child(p, d) for p, d in _index_platforms(body)))
            return TagDetails(tag, digest, media_type, None, tuple(children))
        platform = await self._config_platform(body)
        return TagDetails(tag, digest, media_type, _size(body),
                          (platform,) if platform else ())

    async def all_details(self, tags: list[str]) -> list[TagDetails]:
        return list(await asyncio.gather(*(self.details(tag) for tag in tags)))
