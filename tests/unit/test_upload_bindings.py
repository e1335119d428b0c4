"""Upload bindings (upload id -> owner), in-process and in a real Redis, through an outage."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import pytest
from support import RedisServer

from gateway.config.schema import CacheSettings
from gateway.metrics import Metrics
from gateway.state.redis import CircuitBreaker, RedisLink, connect
from gateway.state.uploads import MemoryUploadBindings, SharedUploadBindings, UploadBindings

UPLOAD = "5f0c6a6e-8a59-4a5b-9d5e-0a1b2c3d4e5f"
OWNER = "alice\x1fteam/app"
Make = Callable[[], UploadBindings]


@asynccontextmanager
async def redis_replicas(server: RedisServer, metrics: Metrics) -> AsyncIterator[Make]:
    async with connect(CacheSettings(redis_url=server.url, redis_timeout=0.5)) as client:

        def make() -> UploadBindings:
            link = RedisLink(metrics, 0.5, CircuitBreaker(base=0.05, cap=0.05))
            link.client = client
            return SharedUploadBindings(link, MemoryUploadBindings())

        yield make


@pytest.fixture(params=["memory", "redis"])
async def make(request: pytest.FixtureRequest) -> AsyncIterator[Make]:
    if request.param == "memory":
        yield MemoryUploadBindings
        return
    async with redis_replicas(request.getfixturevalue("redis_server"), Metrics()) as shared:
        yield shared


async def test_bind_owner_forget(make: Make) -> None:
    bindings = make()
    assert await bindings.owner(UPLOAD) is None
    await bindings.bind(UPLOAD, OWNER)
    assert await bindings.owner(UPLOAD) == OWNER
    await bindings.forget(UPLOAD)
    assert await bindings.owner(UPLOAD) is None


async def test_another_replica_sees_the_binding(redis_server: RedisServer) -> None:
    async with redis_replicas(redis_server, Metrics()) as make:
        one, two = make(), make()
        await one.bind(UPLOAD, OWNER)
        assert await two.owner(UPLOAD) == OWNER
        assert 86000 < redis_server.client().ttl(f"rg:u:{UPLOAD}") <= 86400
        await two.forget(UPLOAD)
        assert redis_server.client().keys("*") == []


async def test_uploads_go_on_through_an_outage(redis_server: RedisServer) -> None:
    metrics = Metrics()
    async with redis_replicas(redis_server, metrics) as make:
        bindings = make()
        await bindings.bind(UPLOAD, OWNER)
        redis_server.stop()
        assert await bindings.owner(UPLOAD) == OWNER  # started before the outage
        await bindings.bind("during", OWNER)
        assert await bindings.owner("during") == OWNER  # started during it
        assert (metrics.registry.get_sample_value(
            "registry_gateway_state_fallbacks_total", {"store": "uploads"}) or 0) >= 2
