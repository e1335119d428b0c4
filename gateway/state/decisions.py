"""Cached decisions: the protocol, the in-process LRU, Redis as a shared second level, fallback.

Keys carry the fingerprint of what decides access, so entries never need invalidating: a
reload that changes rules or accounts makes new keys, and old entries age out of the LRU.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import NamedTuple, Protocol

from gateway.config.schema import CacheSettings
from gateway.state.redis import RedisLink, RedisUnavailable
from gateway.state.signed import ValueSigner
from gateway.state.ttlmap import TTLMap

STORE = "decisions"


class DecisionKey(NamedTuple):
    """A tuple, so hashing and comparing it on the hot path happen in C."""

    fingerprint: str
    subject: str  # Subject.cache_key(); "" for anonymous
    repository: str
    action: str

    def redis_key(self) -> str:
        # '\x1f' cannot occur in a fingerprint, subject key, repository name or action.
        return "rg:d:" + "\x1f".join((self.fingerprint, self.subject, self.repository, self.action))


@dataclass(frozen=True, slots=True)
class CachedDecision:
    allowed: bool
    rule_index: int | None  # None: no rule matched

    def encode(self) -> str:
        return f"{int(self.allowed)}:{'' if self.rule_index is None else self.rule_index}"

    @classmethod
    def decode(cls, value: str) -> CachedDecision | None:
        allowed, sep, index = value.partition(":")
        if not sep or allowed not in ("0", "1") or (index and not index.isdigit()):
            return None
        return cls(allowed == "1", int(index) if index else None)


@dataclass(frozen=True, slots=True)
class Lookup:
    """A cache answer. `failed`: a shared level could not answer, so the caller decides from the
    config (a miss that is counted as an error)."""

    value: CachedDecision | None
    failed: bool = False


MISS = Lookup(None)


class DecisionCache(Protocol):
    async def get(self, key: DecisionKey, settings: CacheSettings) -> Lookup: ...

    async def put(self, key: DecisionKey, value: CachedDecision, settings: CacheSettings) -> None:
        """Keep `value` for `settings.ttl`, bounded by `settings.max_entries` in process."""
        ...


class MemoryDecisionCache:
    """A bounded LRU with a TTL per entry."""

    def __init__(self, max_entries: int) -> None:
        self.entries: TTLMap[DecisionKey, CachedDecision] = TTLMap(max_entries)

    async def get(self, key: DecisionKey, settings: CacheSettings) -> Lookup:
        value = self.entries.get(key)
        return MISS if value is None else Lookup(value)

    async def put(self, key: DecisionKey, value: CachedDecision, settings: CacheSettings) -> None:
        self.entries.put(key, value, settings.ttl, settings.max_entries)

    def __len__(self) -> int:
        return len(self.entries)


class RedisDecisions:
    """Decisions in Redis, each value with an HMAC of its key and content.

    Whoever can write to Redis could otherwise grant themselves access; with the tag a forged or
    foreign entry (another gateway's key) is just a miss. Replicas share the secret through
    `token.key_file`.
    """

    def __init__(self, link: RedisLink, secret: bytes) -> None:
        self._link = link
        self._signer = ValueSigner(secret)

    async def get(self, key: DecisionKey) -> CachedDecision | None:
        """The stored decision, None if absent or not ours; RedisUnavailable if Redis failed."""
        name = key.redis_key()
        raw = await self._link.run(STORE, lambda client: client.get(name))
        encoded = self._signer.open(name, raw)
        return None if encoded is None else CachedDecision.decode(encoded)

    async def put(self, key: DecisionKey, value: CachedDecision, ttl: int) -> None:
        name = key.redis_key()
        signed = self._signer.sign(name, value.encode())
        await self._link.run(STORE, lambda client: client.set(name, signed, ex=ttl))


class TieredDecisionCache:
    """The LRU first (a hit never touches Redis), then Redis; a miss fills both levels.

    While Redis fails or the breaker skips it, lookups are `failed` (the caller decides from the
    config and counts an error) and new decisions go to the LRU only.
    """

    def __init__(self, memory: MemoryDecisionCache, shared: RedisDecisions) -> None:
        self.memory = memory
        self.shared = shared

    async def get(self, key: DecisionKey, settings: CacheSettings) -> Lookup:
        value = self.memory.entries.get(key)
        if value is not None:
            return Lookup(value)
        try:
            value = await self.shared.get(key)
        except RedisUnavailable:
            return Lookup(None, failed=True)
        if value is None:
            return MISS
        # The shared entry's own TTL is unknown here; the LRU keeps it no longer than a fresh one.
        self.memory.entries.put(key, value, settings.ttl, settings.max_entries)
        return Lookup(value)

    async def put(self, key: DecisionKey, value: CachedDecision, settings: CacheSettings) -> None:
        await self.memory.put(key, value, settings)
        # On failure (counted in state_fallbacks_total) the LRU serves this replica meanwhile.
        with contextlib.suppress(RedisUnavailable):
            await self.shared.put(key, value, settings.ttl)
