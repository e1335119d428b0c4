"""Redis as the shared second level of the decision cache, behind the in-process LRU."""

from __future__ import annotations

import contextlib
import hashlib
import hmac

from gateway.cache import MISS, CachedDecision, DecisionKey, Lookup, MemoryDecisionCache
from gateway.redis_link import RedisLink, RedisUnavailable

STORE = "decisions"
TAG_CHARS = 32


class RedisDecisions:
    """Decisions in Redis, each value with an HMAC of its key and content.

    Whoever can write to Redis could otherwise grant themselves access; with the tag a forged or
    foreign entry (another gateway's key) is just a miss. Replicas share the secret through
    `token.key_file`.
    """

    def __init__(self, link: RedisLink, secret: bytes, ttl: int) -> None:
        self._link = link
        self._secret = secret
        self.ttl = ttl

    def _tag(self, name: str, encoded: str) -> str:
        mac = hmac.new(self._secret, f"{name}\0{encoded}".encode(), hashlib.sha256)
        return mac.hexdigest()[:TAG_CHARS]

    async def get(self, key: DecisionKey) -> CachedDecision | None:
        """The stored decision, None if absent or not ours; RedisUnavailable if Redis failed."""
        name = key.redis_key()
        raw = await self._link.run(STORE, lambda client: client.get(name))
        if not isinstance(raw, str):
            return None
        encoded, _, tag = raw.rpartition(":")
        if not hmac.compare_digest(tag, self._tag(name, encoded)):
            return None
        return CachedDecision.decode(encoded)

    async def put(self, key: DecisionKey, value: CachedDecision) -> None:
        name = key.redis_key()
        encoded = value.encode()
        signed = f"{encoded}:{self._tag(name, encoded)}"
        await self._link.run(STORE, lambda client: client.set(name, signed, ex=self.ttl))


class TieredDecisionCache:
    """The LRU first (a hit never touches Redis), then Redis; a miss fills both levels.

    While Redis fails or the breaker skips it, lookups are `failed` (the caller decides from the
    config and counts an error) and new decisions go to the LRU only.
    """

    def __init__(self, memory: MemoryDecisionCache, shared: RedisDecisions) -> None:
        self.memory = memory
        self.shared = shared

    async def get(self, key: DecisionKey) -> Lookup:
        value = self.memory.get_now(key)
        if value is not None:
            return Lookup(value)
        try:
            value = await self.shared.get(key)
        except RedisUnavailable:
            return Lookup(None, failed=True)
        if value is None:
            return MISS
        self.memory.put_now(key, value)
        return Lookup(value)

    async def put(self, key: DecisionKey, value: CachedDecision) -> None:
        self.memory.put_now(key, value)
        # On failure (counted in state_fallbacks_total) the LRU serves this replica meanwhile.
        with contextlib.suppress(RedisUnavailable):
            await self.shared.put(key, value)
