"""The content cache's in-process form: entries bounded by bytes, tags bounded by count.

Every entry and tag remembers the generation it was filled under (see content.py); a lookup
under another generation drops it. A lookup with generation None (Redis did not answer) takes
entries under any generation, and no tags.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Generic, NamedTuple, TypeVar

from gateway.state.ttlmap import TTLMap

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")
MAX_TAGS = 100_000


class _Held(NamedTuple, Generic[V]):
    deadline: float
    generation: str | None
    size: int
    value: V


class MemoryContent(Generic[K, V]):
    """Least recently used entries go first once `max_bytes` (reloadable) is exceeded."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._entries: OrderedDict[K, _Held[V]] = OrderedDict()
        self._tags: TTLMap[tuple[str, str], tuple[str, str]] = TTLMap(MAX_TAGS, clock)
        self.bytes = 0

    def get(self, key: K, generation: str | None) -> V | None:
        held = self._entries.get(key)
        if held is None:
            return None
        if held.deadline <= self._clock() or (generation is not None
                                              and held.generation != generation):
            self.drop(key)
            return None
        self._entries.move_to_end(key)
        return held.value

    def put(self, key: K, value: V, size: int, generation: str | None, ttl: float,
            max_bytes: int) -> None:
        self.drop(key)
        if size > max_bytes:
            self._evict(max_bytes)  # a smaller bound after a reload applies at once
            return
        self._entries[key] = _Held(self._clock() + ttl, generation, size, value)
        self.bytes += size
        self._evict(max_bytes)

    def _evict(self, max_bytes: int) -> None:
        while self.bytes > max_bytes and self._entries:
            _, held = self._entries.popitem(last=False)
            self.bytes -= held.size

    def drop(self, key: K) -> None:
        held = self._entries.pop(key, None)
        if held is not None:
            self.bytes -= held.size

    def tag(self, repository: str, tag: str, generation: str) -> str | None:
        found = self._tags.get((repository, tag))
        if found is None:
            return None
        if found[0] != generation:
            self._tags.pop((repository, tag))
            return None
        return found[1]

    def has_tag(self, repository: str, tag: str) -> bool:
        """Whether a tag is held, under any generation."""
        return (repository, tag) in self._tags

    def put_tag(self, repository: str, tag: str, digest: str, generation: str,
                ttl: float) -> None:
        self._tags.put((repository, tag), (generation, digest), ttl)

    def clear_tags(self) -> None:
        self._tags.clear()

    def clear(self) -> None:
        self._entries.clear()
        self._tags.clear()
        self.bytes = 0

    def __len__(self) -> int:
        return len(self._entries)
