"""The content cache: manifests and small blobs by (repository, kind, digest), and tag -> digest.

One concept, as decisions.py: the protocol, the in-process form (bounded by bytes), Redis as a
shared second level (an HMAC per entry, the body re-hashed on every read), and the fallback.

Invalidation across replicas is a generation key per repository in Redis, not pub/sub. A
manifest PUT or DELETE (or a blob DELETE) through any replica writes a new random generation
before its answer leaves; every lookup reads the repository's generation (batched with the
lookups that arrive with it: generations.py), and an in-process entry (a digest or a tag) counts
only under the generation it was filled under. So a lookup that starts after an invalidation
finished never sees what it invalidated, on any replica, and a fill racing an invalidation (read
before, stored after) is stale at its first lookup. Pub/sub would be one fewer round trip per
hit, but its delivery is asynchronous (a replica may answer before it has read the message) and
lost while a subscriber reconnects, so "at once" would not hold. While Redis is down, tags are
not resolved at all and digests are served per process (content by digest does not change; a
delete through another replica is then seen within `ttl`). A tag one replica learnt is shared
through Redis too (signed, under its generation, expiring after `tag_ttl`), so the replicas ask
the upstream once per tag per `tag_ttl`, not once each.
"""

from __future__ import annotations

import contextlib
import hashlib
import secrets
import sys
from dataclasses import dataclass, field
from typing import NamedTuple, Protocol

from gateway.config.schema import ContentCacheSettings
from gateway.state.content_memory import MemoryContent
from gateway.state.content_redis import RedisContent
from gateway.state.redis import RedisLink, RedisUnavailable

# The contract's bound for blobs held in memory (by Content-Length, reads capped).
BLOB_LIMIT = 64 * 1024
# Beyond this many repositories with a local generation, all are forgotten at once (a new
# epoch): every entry is then stale, which is only a miss.
MAX_LOCAL_GENERATIONS = 100_000
# What an entry costs beyond its body and headers: the entry, its key and generation, the map's
# node, malloc's share. Calibrated by bench/run.py's RSS row (2,300 distinct 32 KiB manifests
# through a replica: RSS grew ~36.1 KB per entry held, its body and header objects ~33.9 KB).
ENTRY_OVERHEAD = 2048


class ContentKey(NamedTuple):
    repository: str
    kind: str  # "manifest" or "blob": a manifest's digest is not a blob of the repository
    digest: str


@dataclass(frozen=True, slots=True)
class ContentEntry:
    """What the registry answered for one digest: its headers in order and the body."""

    media_type: str
    digest: str
    headers: tuple[tuple[str, str], ...]
    body: bytes = field(repr=False)

    @classmethod
    def verified(cls, digest: str, media_type: str, headers: tuple[tuple[str, str], ...],
                 body: bytes) -> ContentEntry | None:
        """The entry, if `body` hashes to `digest` (sha256 only); None for anything else."""
        if not digest.startswith("sha256:"):
            return None
        if not secrets.compare_digest("sha256:" + hashlib.sha256(body).hexdigest(), digest):
            return None
        return cls(media_type, digest, headers, body)

    @property
    def size(self) -> int:
        """Bytes counted against `max_bytes`: the body and header objects as Python holds them,
        plus ENTRY_OVERHEAD, so that `max_bytes` bounds the memory the cache takes."""
        return (sys.getsizeof(self.body) + sys.getsizeof(self.headers)
                + sum(sys.getsizeof(pair) + sys.getsizeof(pair[0]) + sys.getsizeof(pair[1])
                      for pair in self.headers)
                + ENTRY_OVERHEAD)


@dataclass(frozen=True, slots=True)
class View:
    """One repository as a lookup sees it. `generation` None: Redis did not answer, so tags
    are not resolved and in-process digests serve without the cross-replica check."""

    repository: str
    generation: str | None
    failed: bool = False
    shared_tag: tuple[str, str] | None = None  # (tag, digest) another replica learnt


class ContentCache(Protocol):
    async def view(self, repository: str, tag: str | None = None) -> View:
        """The repository's generation; with `tag`, also the replicas' shared answer for it
        when this process has none."""
        ...

    async def get(self, view: View, key: ContentKey,
                  settings: ContentCacheSettings) -> ContentEntry | None: ...

    def tag(self, view: View, tag: str) -> str | None:
        """The digest `tag` pointed to when it was learnt under this generation, if any."""
        ...

    def holds(self, view: View, key: ContentKey) -> bool:
        """Whether this process holds `key` under the view's generation."""
        ...

    async def put(self, view: View, key: ContentKey, entry: ContentEntry,
                  settings: ContentCacheSettings) -> None: ...

    async def put_tag(self, view: View, tag: str, digest: str,
                      settings: ContentCacheSettings) -> None: ...

    async def invalidate(self, repository: str, key: ContentKey | None) -> bool:
        """Forget `key` and every tag of `repository`, on every replica; False if other
        replicas could not be told (Redis down)."""
        ...

    def clear(self) -> None: ...

    @property
    def bytes_held(self) -> int: ...


class LocalGenerations:
    """Generations of a process without Redis: a counter per repository that never repeats."""

    def __init__(self) -> None:
        self._epoch = 0
        self._next = 0
        self._generations: dict[str, int] = {}

    def current(self, repository: str) -> str:
        number = self._generations.get(repository)
        return f"{self._epoch}" if number is None else f"{self._epoch}.{number}"

    def bump(self, repository: str) -> None:
        if len(self._generations) >= MAX_LOCAL_GENERATIONS:
            self._generations.clear()
            self._epoch += 1
        self._next += 1
        self._generations[repository] = self._next


class TieredContentCache:
    """In-process entries first; Redis (when configured) for generations and shared bodies."""

    def __init__(self, memory: MemoryContent[ContentKey, ContentEntry],
                 shared: RedisContent | None) -> None:
        self.memory = memory
        self.shared = shared
        self._local = LocalGenerations()

    @property
    def bytes_held(self) -> int:
        return self.memory.bytes

    async def view(self, repository: str, tag: str | None = None) -> View:
        if self.shared is None:
            return View(repository, self._local.current(repository))
        if tag is not None and self.memory.has_tag(repository, tag):
            tag = None  # held here (its generation is checked when it is read)
        try:
            generation, digest = await self.shared.generation(repository, tag)
        except RedisUnavailable:
            return View(repository, None, failed=True)
        return View(repository, generation, shared_tag=(tag, digest) if tag and digest else None)

    async def get(self, view: View, key: ContentKey,
                  settings: ContentCacheSettings) -> ContentEntry | None:
        held = self.memory.get(key, view.generation)
        if held is not None:
            return held
        if self.shared is None or view.generation is None or not settings.redis:
            return None
        try:
            found = await self.shared.get(key, view.generation)
        except RedisUnavailable:
            return None
        if found is None:
            return None
        entry = ContentEntry.verified(key.digest, *found)  # re-hashed: Redis is not trusted
        if entry is not None:
            self.memory.put(key, entry, entry.size, view.generation, settings.ttl,
                            settings.max_bytes)
        return entry

    def holds(self, view: View, key: ContentKey) -> bool:
        return self.memory.get(key, view.generation) is not None

    def tag(self, view: View, tag: str) -> str | None:
        if view.generation is None:
            return None
        held = self.memory.tag(view.repository, tag, view.generation)
        if held is None and view.shared_tag is not None and view.shared_tag[0] == tag:
            return view.shared_tag[1]  # signed, of this generation, within tag_ttl (Redis's TTL)
        return held

    async def put(self, view: View, key: ContentKey, entry: ContentEntry,
                  settings: ContentCacheSettings) -> None:
        self.memory.put(key, entry, entry.size, view.generation, settings.ttl,
                        settings.max_bytes)
        if self.shared is not None and view.generation is not None and settings.redis:
            # On failure (counted in state_fallbacks_total) this replica still holds it.
            with contextlib.suppress(RedisUnavailable):
                await self.shared.put(key, (entry.media_type, entry.headers, entry.body),
                                      view.generation, settings.ttl)

    async def put_tag(self, view: View, tag: str, digest: str,
                      settings: ContentCacheSettings) -> None:
        """Learnt from the upstream's answer just now: trusted for `tag_ttl` here and, through
        Redis, by every replica (so the replicas ask the upstream once per tag, not once each)."""
        if view.generation is None or settings.tag_ttl <= 0:
            return
        self.memory.put_tag(view.repository, tag, digest, view.generation, settings.tag_ttl)
        if self.shared is not None and settings.redis:
            with contextlib.suppress(RedisUnavailable):
                await self.shared.put_tag(view.repository, tag, digest, view.generation,
                                          settings.tag_ttl)

    async def invalidate(self, repository: str, key: ContentKey | None) -> bool:
        if key is not None:
            self.memory.drop(key)
        if self.shared is None:
            self._local.bump(repository)
            return True
        try:
            await self.shared.invalidate(repository, key)
        except RedisUnavailable:
            # Other replicas cannot be told; here, no tag learnt before may be trusted again.
            self.memory.clear_tags()
            return False
        return True

    def clear(self) -> None:
        self.memory.clear()


def build_content_cache(link: RedisLink | None, secret: bytes) -> TieredContentCache:
    """`secret` signs entries in Redis; derive it from the token key so replicas agree."""
    return TieredContentCache(MemoryContent[ContentKey, ContentEntry](),
                              RedisContent(link, secret) if link is not None else None)
