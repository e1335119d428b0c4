"""The stores the request path uses, built once from the settings read at start.

With `cache.redis_url` or `cache.sentinel`, each store is its Redis form with the in-process one
in front (decisions, remembered identities) or as the fallback (lockout, uploads); without, the
in-process form alone.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

from gateway.config.schema import CacheSettings
from gateway.metrics import Metrics
from gateway.state.decisions import (
    DecisionCache,
    MemoryDecisionCache,
    RedisDecisions,
    TieredDecisionCache,
)
from gateway.state.identities import IdentityKeys, IdentityMemory, MemoryIdentities
from gateway.state.identities_redis import RedisIdentities, SharedIdentities
from gateway.state.lockout import LockoutStore, MemoryLockoutStore, RedisLockoutStore, SharedLockoutStore
from gateway.state.redis import RedisLink, connect, describe, uses_redis
from gateway.state.uploads import MemoryUploadBindings, SharedUploadBindings, UploadBindings

log = logging.getLogger("registry_gateway.redis")


@dataclass(frozen=True)
class Stores:
    decisions: DecisionCache
    lockout: LockoutStore
    uploads: UploadBindings
    identities: IdentityMemory
    link: RedisLink | None  # None: no Redis configured
    cache_settings: CacheSettings


def build_stores(cache: CacheSettings, metrics: Metrics, decision_secret: bytes,
                 identity_secret: bytes) -> Stores:
    """`decision_secret` signs decisions in Redis, `identity_secret` keys and signs remembered
    identities; derive both from the token key so replicas agree."""
    memory_decisions = MemoryDecisionCache(cache.max_entries)
    memory_identities = MemoryIdentities(IdentityKeys(identity_secret))
    if not uses_redis(cache):
        return Stores(memory_decisions, MemoryLockoutStore(), MemoryUploadBindings(),
                      memory_identities, None, cache)
    link = RedisLink(metrics, cache.redis_timeout)
    return Stores(
        decisions=TieredDecisionCache(memory_decisions, RedisDecisions(link, decision_secret)),
        lockout=SharedLockoutStore(RedisLockoutStore(link), MemoryLockoutStore()),
        uploads=SharedUploadBindings(link, MemoryUploadBindings()),
        identities=SharedIdentities(memory_identities, RedisIdentities(link, identity_secret)),
        link=link,
        cache_settings=cache,
    )


@asynccontextmanager
async def open_stores(stores: Stores) -> AsyncIterator[Stores]:
    """Open the Redis client (if configured) for the app's lifetime; a Redis that is down at
    start is an outage like any other, not a reason to refuse to serve."""
    link = stores.link
    if link is None:
        yield stores
        return
    where = describe(stores.cache_settings)
    async with connect(stores.cache_settings) as client:
        link.client = client
        if await link.ping():
            log.info("shared state in Redis (%s)", where)
        else:
            log.warning("Redis (%s) does not answer; serving in-process until it does", where)
        try:
            yield stores
        finally:
            link.client = None
