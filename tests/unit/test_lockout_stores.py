"""Lockout counters, in-process and in a real Redis: one behaviour, shared by replicas, outage-proof.

The settings come with every call (from the request's snapshot), as the access service passes them.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import pytest
from support import RedisServer

from gateway.config.schema import CacheSettings, LockoutSettings
from gateway.metrics import Metrics
from gateway.state.lockout import (
    LockoutStore,
    MemoryLockoutStore,
    RedisLockoutStore,
    SharedLockoutStore,
    lockout_keys,
)
from gateway.state.redis import CircuitBreaker, RedisLink, connect

SETTINGS = LockoutSettings(max_failures=3, window=60, cooldown=10, max_cooldown=25)
ALICE = "alice\x1f10.0.0.1"


async def fail(store: LockoutStore, key: str, count: int, tag: str = "",
               settings: LockoutSettings = SETTINGS) -> list[int | None]:
    return [await store.record_failure(key, f"attempt-{tag}{i}", settings) for i in range(count)]


Make = Callable[[], LockoutStore]


@asynccontextmanager
async def redis_replicas(server: RedisServer) -> AsyncIterator[Make]:
    """`make()` builds one replica's store; all of them share `server`."""
    async with connect(CacheSettings(redis_url=server.url, redis_timeout=1.0)) as client:

        def make() -> LockoutStore:
            link = RedisLink(Metrics(), 1.0)
            link.client = client
            return SharedLockoutStore(RedisLockoutStore(link), MemoryLockoutStore())

        yield make


@pytest.fixture(params=["memory", "redis"])
async def make(request: pytest.FixtureRequest) -> AsyncIterator[Make]:
    if request.param == "memory":
        yield MemoryLockoutStore
        return
    async with redis_replicas(request.getfixturevalue("redis_server")) as make_shared:
        yield make_shared


async def test_the_nth_failure_locks_for_the_cooldown(make: Make) -> None:
    store = make()
    assert await fail(store, ALICE, 2) == [None, None]
    assert await store.locked_for(ALICE) is None
    assert await store.record_failure(ALICE, "attempt-last", SETTINGS) == 10
    assert await store.locked_for(ALICE) == 10


async def test_one_attempt_counts_once(make: Make) -> None:
    store = make()
    for _ in range(5):
        assert await store.record_failure(ALICE, "the-same-attempt", SETTINGS) is None
    assert await store.locked_for(ALICE) is None


async def test_other_usernames_and_addresses_are_unaffected(make: Make) -> None:
    store = make()
    await fail(store, ALICE, 3)
    assert await store.locked_for(ALICE) is not None
    assert await store.locked_for("bob\x1f10.0.0.1") is None
    assert await store.locked_for("alice\x1f10.0.0.2") is None


async def test_the_cooldown_doubles_on_repeat_up_to_the_cap(make: Make) -> None:
    store = make()
    cooldowns = []
    for round_ in range(3):
        results = await fail(store, ALICE, 3, tag=f"r{round_}-")
        cooldowns.append(results[-1])
    assert cooldowns == [10, 20, 25]


async def test_failures_older_than_the_window_do_not_count(make: Make) -> None:
    store = make()
    settings = LockoutSettings(max_failures=2, window=1, cooldown=10)
    assert await store.record_failure(ALICE, "a", settings) is None
    await asyncio.sleep(1.1)
    assert await store.record_failure(ALICE, "b", settings) is None
    assert await store.record_failure(ALICE, "c", settings) == 10


async def test_replicas_share_counters_through_redis(redis_server: RedisServer) -> None:
    async with redis_replicas(redis_server) as make:
        one, two = make(), make()
        await one.record_failure(ALICE, "a", SETTINGS)
        await two.record_failure(ALICE, "a", SETTINGS)  # the same attempt, on the other replica
        await two.record_failure(ALICE, "b", SETTINGS)
        assert await one.locked_for(ALICE) is None
        assert await one.record_failure(ALICE, "c", SETTINGS) == 10
        assert await two.locked_for(ALICE) == 10


async def test_redis_keys_name_neither_user_nor_address(redis_server: RedisServer) -> None:
    async with connect(CacheSettings(redis_url=redis_server.url)) as client:
        link = RedisLink(Metrics(), 1.0)
        link.client = client
        store = RedisLockoutStore(link)
        await store.record_failure(ALICE, "a", SETTINGS)
        await store.record_failure(ALICE, "b", SETTINGS)
    keys = redis_server.client().keys("*")
    assert keys == [lockout_keys(ALICE)[0]]
    assert "alice" not in keys[0] and "10.0.0.1" not in keys[0]
    # One hash tag: a Cluster keeps the keys of one counter in one slot for the script.
    assert len({key.split("}")[0] for key in lockout_keys(ALICE)}) == 1
    assert 55 <= redis_server.client().ttl(keys[0]) <= 60


async def test_redis_down_counts_in_process_and_the_lock_outlives_the_outage(
        redis_server: RedisServer) -> None:
    metrics = Metrics()
    async with connect(CacheSettings(redis_url=redis_server.url, redis_timeout=0.5)) as client:
        link = RedisLink(metrics, 0.5, CircuitBreaker(base=0.1, cap=0.1))
        link.client = client
        store = SharedLockoutStore(RedisLockoutStore(link), MemoryLockoutStore())
        redis_server.stop()
        assert await fail(store, ALICE, 3) == [None, None, 10]
        assert await store.locked_for(ALICE) == 10
        assert metrics.registry.get_sample_value(
            "registry_gateway_state_fallbacks_total", {"store": "lockout"}) == 3
        redis_server.start()
        await asyncio.sleep(0.15)
        assert await store.locked_for(ALICE) == 10  # held by this process's own store
        assert await store.locked_for("bob\x1f10.0.0.1") is None
        assert await store.record_failure("bob\x1f10.0.0.1", "x", SETTINGS) is None
    assert redis_server.client().keys("*") == [lockout_keys("bob\x1f10.0.0.1")[0]]
