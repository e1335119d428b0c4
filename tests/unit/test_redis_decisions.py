"""The Redis level of the decision cache against a real redis-server: layout, integrity, outages."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import pytest
from support import RedisServer

from gateway.config.schema import CacheSettings
from gateway.metrics import Metrics
from gateway.state.decisions import (
    CachedDecision,
    DecisionKey,
    Lookup,
    MemoryDecisionCache,
    RedisDecisions,
    TieredDecisionCache,
)
from gateway.state.redis import CircuitBreaker, RedisLink, connect

SECRET = b"s" * 32
ALLOW = CachedDecision(True, 0)
KEY = DecisionKey("f1", "alice", "team/app", "pull")
TIMEOUT = 0.05  # the default, where the timeout is what a test is about
RELAXED = 0.5  # elsewhere: a busy test machine must not look like an outage
SETTINGS = CacheSettings(ttl=60, max_entries=1000)  # what each call passes, as the decider does


@dataclass
class Replica:
    cache: TieredDecisionCache
    link: RedisLink
    metrics: Metrics

    async def get(self, key: DecisionKey) -> Lookup:
        return await self.cache.get(key, SETTINGS)

    async def put(self, key: DecisionKey, value: CachedDecision) -> None:
        await self.cache.put(key, value, SETTINGS)

    def fallbacks(self) -> float:
        value = self.metrics.registry.get_sample_value(
            "registry_gateway_state_fallbacks_total", {"store": "decisions"})
        return value or 0.0


ReplicaFactory = Callable[..., Replica]


@pytest.fixture
async def replica(redis_server: RedisServer) -> AsyncIterator[ReplicaFactory]:
    """Builds caches on one shared client, as separate gateway processes would see one Redis."""
    settings = CacheSettings(redis_url=redis_server.url, ttl=60, redis_timeout=RELAXED)
    async with connect(settings) as client:

        def make(secret: bytes = SECRET, breaker: CircuitBreaker | None = None) -> Replica:
            metrics = Metrics()
            link = RedisLink(metrics, RELAXED, breaker or CircuitBreaker(base=0.2, cap=0.4))
            link.client = client
            memory = MemoryDecisionCache(SETTINGS.max_entries)
            return Replica(TieredDecisionCache(memory, RedisDecisions(link, secret)),
                           link, metrics)

        yield make


async def test_a_put_lands_in_redis_signed_with_the_ttl(
        replica: ReplicaFactory, redis_server: RedisServer) -> None:
    await replica().put(KEY, ALLOW)
    raw = redis_server.client()
    assert raw.keys("*") == [KEY.redis_key()]
    value = raw.get(KEY.redis_key())
    assert value is not None and value.startswith("1:0:") and len(value) == 4 + 32
    assert 55 <= raw.ttl(KEY.redis_key()) <= 60


async def test_another_replica_reads_it_from_redis(replica: ReplicaFactory) -> None:
    await replica().put(KEY, ALLOW)
    other = replica()
    assert (await other.get(KEY)).value == ALLOW
    assert other.cache.memory.entries.get(KEY) == ALLOW  # now served from its own LRU


async def test_forged_or_foreign_entries_are_misses(
        replica: ReplicaFactory, redis_server: RedisServer) -> None:
    raw = redis_server.client()
    deny = DecisionKey("f1", "mallory", "team/app", "pull")
    await replica().put(deny, CachedDecision(False, 0))
    forged = raw.get(deny.redis_key()).replace("0:0:", "1:0:", 1)
    raw.set(deny.redis_key(), forged)
    raw.set(DecisionKey("f1", "eve", "team/app", "pull").redis_key(), "1:0")
    fresh = replica()
    assert (await fresh.get(deny)).value is None
    assert (await fresh.get(DecisionKey("f1", "eve", "team/app", "pull"))).value is None
    await replica(secret=b"other" * 8).put(KEY, ALLOW)
    assert (await replica().get(KEY)).value is None
    assert fresh.fallbacks() == 0


async def test_a_memory_hit_never_touches_redis(
        replica: ReplicaFactory, redis_server: RedisServer) -> None:
    cache = replica()
    await cache.put(KEY, ALLOW)
    redis_server.stop()
    lookup = await cache.get(KEY)
    assert lookup.value == ALLOW and not lookup.failed
    assert cache.fallbacks() == 0


async def test_redis_down_fails_fast_and_the_breaker_skips_it(
        replica: ReplicaFactory, redis_server: RedisServer) -> None:
    cache = replica()
    redis_server.stop()
    started = time.monotonic()
    lookup = await cache.get(KEY)
    assert lookup.value is None and lookup.failed
    await cache.put(KEY, ALLOW)  # goes to the LRU only
    assert (await cache.get(KEY)).value == ALLOW
    assert time.monotonic() - started < 0.5
    assert cache.fallbacks() == 2  # the get that failed, then the put the breaker skipped
    # Back up: after the backoff the next call probes, succeeds, and Redis is used again.
    redis_server.start()
    other = DecisionKey("f1", "bob", "team/app", "pull")
    deadline = time.monotonic() + 5
    while (await cache.get(other)).failed:
        assert time.monotonic() < deadline, "Redis was not used again"
        await asyncio.sleep(0.05)
    await cache.put(other, ALLOW)
    assert redis_server.client().exists(other.redis_key())


async def test_a_hanging_redis_costs_at_most_the_deadline(redis_server: RedisServer) -> None:
    settings = CacheSettings(redis_url=redis_server.url, redis_timeout=TIMEOUT)
    async with connect(settings) as client:
        link = RedisLink(Metrics(), TIMEOUT, CircuitBreaker(base=5, cap=5))
        link.client = client
        cache = TieredDecisionCache(MemoryDecisionCache(1000), RedisDecisions(link, SECRET))
        await cache.put(KEY, ALLOW, SETTINGS)  # a pooled connection exists
        pid = redis_server.process.pid
        assert pid is not None
        os.kill(pid, signal.SIGSTOP)
        try:
            started = time.monotonic()
            lookup = await cache.get(DecisionKey("f1", "bob", "team/app", "pull"), SETTINGS)
            elapsed = time.monotonic() - started
            assert lookup.failed
            assert elapsed < TIMEOUT * 4 + 0.1, elapsed
            # The breaker is open now: the next lookups do not wait at all.
            started = time.monotonic()
            for _ in range(20):
                assert (await cache.get(DecisionKey("f1", "carol", "x", "pull"), SETTINGS)).failed
            assert time.monotonic() - started < 0.05
        finally:
            os.kill(pid, signal.SIGCONT)
