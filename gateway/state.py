"""Where state lives: decision cache, lockout counters and upload bindings, in-process or Redis."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from gateway.cache import DecisionCache, MemoryDecisionCache
from gateway.config import CacheSettings, Settings
from gateway.metrics import Metrics
from gateway.redis_client import connect, describe, uses_redis
from gateway.redis_decisions import RedisDecisions, TieredDecisionCache
from gateway.redis_link import RedisLink
from gateway.redis_stores import RedisLockoutStore, SharedLockoutStore, SharedUploadBindings
from gateway.snapshot import Snapshot
from gateway.stores import LockoutStore, MemoryLockoutStore, MemoryUploadBindings, UploadBindings

log = logging.getLogger("registry_gateway.redis")


class SharedState:
    """The stores the request path uses; Redis-backed when `cache.redis_url` or `cache.sentinel`
    is set, with the in-process stores in front (decisions) or as the fallback (the rest).

    `decision_secret` signs decisions in Redis; derive it from the token key so replicas agree.
    """

    def __init__(self, settings: Settings, metrics: Metrics, decision_secret: bytes) -> None:
        self.cache_settings: CacheSettings = settings.cache
        cache = settings.cache
        self.memory_decisions = MemoryDecisionCache(cache.ttl, cache.max_entries)
        self.memory_lockout = MemoryLockoutStore(settings.auth.lockout)
        self.memory_uploads = MemoryUploadBindings()
        self.decisions: DecisionCache = self.memory_decisions
        self.lockout: LockoutStore = self.memory_lockout
        self.uploads: UploadBindings = self.memory_uploads
        self._fingerprint = ""
        self.link: RedisLink | None = None
        self._redis_decisions: RedisDecisions | None = None
        self._redis_lockout: RedisLockoutStore | None = None
        if uses_redis(cache):
            self.link = RedisLink(metrics, cache.redis_timeout)
            self._redis_decisions = RedisDecisions(self.link, decision_secret, cache.ttl)
            self._redis_lockout = RedisLockoutStore(self.link, settings.auth.lockout)
            self.decisions = TieredDecisionCache(self.memory_decisions, self._redis_decisions)
            self.lockout = SharedLockoutStore(self._redis_lockout, self.memory_lockout)
            self.uploads = SharedUploadBindings(self.link, self.memory_uploads)

    def apply(self, snapshot: Snapshot) -> None:
        """Settings a reload may change (Redis's address and timeout need a restart)."""
        settings = snapshot.settings
        self.memory_lockout.settings = settings.auth.lockout
        self.memory_decisions.ttl = settings.cache.ttl
        self.memory_decisions.max_entries = settings.cache.max_entries
        if snapshot.decision_fingerprint != self._fingerprint:
            # Entries of the old config can never match again; free them now.
            self.memory_decisions.clear()
            self._fingerprint = snapshot.decision_fingerprint
        if self._redis_decisions is not None:
            self._redis_decisions.ttl = settings.cache.ttl
        if self._redis_lockout is not None:
            self._redis_lockout.settings = settings.auth.lockout


@asynccontextmanager
async def open_shared_state(shared: SharedState) -> AsyncIterator[SharedState]:
    """Open the Redis client (if configured) for the app's lifetime; a Redis that is down at
    start is an outage like any other, not a reason to refuse to serve."""
    link = shared.link
    if link is None:
        yield shared
        return
    where = describe(shared.cache_settings)
    async with connect(shared.cache_settings) as client:
        link.client = client
        if await link.ping():
            log.info("shared state in Redis (%s)", where)
        else:
            log.warning("Redis (%s) does not answer; serving in-process until it does", where)
        try:
            yield shared
        finally:
            link.client = None
