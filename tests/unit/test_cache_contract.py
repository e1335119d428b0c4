"""One contract for every DecisionCache: the in-process LRU, and the LRU in front of a real Redis.

The cache settings come with every call, as the decider passes the request snapshot's.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
from support import RedisServer

from gateway.config.schema import CacheSettings
from gateway.metrics import Metrics
from gateway.state.decisions import (
    CachedDecision,
    DecisionCache,
    DecisionKey,
    Lookup,
    MemoryDecisionCache,
    RedisDecisions,
    TieredDecisionCache,
)
from gateway.state.redis import RedisLink, connect

SECRET = b"s" * 32
ALLOW = CachedDecision(True, 0)
DENY = CachedDecision(False, 3)
NO_RULE = CachedDecision(False, None)
KEY = DecisionKey("f1", "alice", "team/app", "pull")
SETTINGS = CacheSettings(ttl=1, max_entries=1000)  # a TTL of 1 s so expiry is testable


@dataclass
class Made:
    cache: DecisionCache
    metrics: Metrics

    async def get(self, key: DecisionKey) -> Lookup:
        return await self.cache.get(key, SETTINGS)

    async def put(self, key: DecisionKey, value: CachedDecision) -> None:
        await self.cache.put(key, value, SETTINGS)


@pytest.fixture(params=["memory", "redis"])
async def made(request: pytest.FixtureRequest) -> AsyncIterator[Made]:
    """The cache under test, used with SETTINGS."""
    metrics = Metrics()
    memory = MemoryDecisionCache(SETTINGS.max_entries)
    if request.param == "memory":
        yield Made(memory, metrics)
        return
    server: RedisServer = request.getfixturevalue("redis_server")
    settings = SETTINGS.model_copy(update={"redis_url": server.url, "redis_timeout": 1.0})
    async with connect(settings) as client:
        link = RedisLink(metrics, settings.redis_timeout)
        link.client = client
        yield Made(TieredDecisionCache(memory, RedisDecisions(link, SECRET)), metrics)


async def test_an_empty_cache_misses_without_failing(made: Made) -> None:
    lookup = await made.get(KEY)
    assert lookup.value is None
    assert not lookup.failed


@pytest.mark.parametrize("value", [ALLOW, DENY, NO_RULE])
async def test_what_is_put_is_got(made: Made, value: CachedDecision) -> None:
    await made.put(KEY, value)
    lookup = await made.get(KEY)
    assert lookup.value == value
    assert not lookup.failed


async def test_every_field_of_the_key_counts(made: Made) -> None:
    await made.put(KEY, ALLOW)
    others = [
        DecisionKey("f2", "alice", "team/app", "pull"),  # another config
        DecisionKey("f1", "bob", "team/app", "pull"),
        DecisionKey("f1", "", "team/app", "pull"),  # anonymous
        DecisionKey("f1", "alice", "team/app2", "pull"),
        DecisionKey("f1", "alice", "team/app", "push"),
        DecisionKey("f1", "alice\x1fteam", "app", "pull"),  # the separator cannot shift fields
    ]
    for other in others:
        assert (await made.get(other)).value is None, other


async def test_a_later_put_replaces_an_earlier_one(made: Made) -> None:
    await made.put(KEY, ALLOW)
    await made.put(KEY, DENY)
    assert (await made.get(KEY)).value == DENY


async def test_entries_expire_after_the_ttl(made: Made) -> None:
    await made.put(KEY, ALLOW)
    await asyncio.sleep(1.2)
    assert (await made.get(KEY)).value is None


async def test_concurrent_lookups_agree(made: Made) -> None:
    keys = [DecisionKey("f1", "alice", f"team/app{i}", "pull") for i in range(50)]
    await asyncio.gather(*(made.put(k, ALLOW if i % 2 else DENY) for i, k in enumerate(keys)))
    lookups = await asyncio.gather(*(made.get(k) for k in keys))
    assert [lookup.value for lookup in lookups] == [ALLOW if i % 2 else DENY for i in range(50)]


async def test_no_shared_level_failure_is_counted_while_it_works(made: Made) -> None:
    await made.put(KEY, ALLOW)
    await made.get(KEY)
    await made.get(DecisionKey("f1", "bob", "x", "pull"))
    for store in ("decisions", "lockout", "uploads"):
        value = made.metrics.registry.get_sample_value(
            "registry_gateway_state_fallbacks_total", {"store": store})
        assert not value
