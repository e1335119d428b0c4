"""The content cache's forms: in-process (bytes bound, generations), Redis (a real redis-server:
HMAC, re-hash, generations across replicas) and what happens while Redis is down."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import pytest
from support import RedisServer

from gateway.config.schema import CacheSettings, ContentCacheSettings
from gateway.metrics import Metrics
from gateway.state.content import (
    ContentEntry,
    ContentKey,
    LocalGenerations,
    TieredContentCache,
    build_content_cache,
)
from gateway.state.content_memory import MemoryContent
from gateway.state.content_redis import RedisContent
from gateway.state.generations import EPOCH_KEY
from gateway.state.redis import CircuitBreaker, RedisLink, connect

SECRET = b"c" * 32
SETTINGS = ContentCacheSettings()
RELAXED = 0.5


def entry(body: bytes, media_type: str = "application/vnd.oci.image.manifest.v1+json"
          ) -> ContentEntry:
    digest = "sha256:" + hashlib.sha256(body).hexdigest()
    made = ContentEntry.verified(digest, media_type, (("Content-Type", media_type),), body)
    assert made is not None
    return made


def key(repository: str, value: ContentEntry, kind: str = "manifest") -> ContentKey:
    return ContentKey(repository, kind, value.digest)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_verified_refuses_a_body_that_does_not_hash_to_its_digest() -> None:
    good = entry(b"{}")
    assert ContentEntry.verified(good.digest, "x/y", (), b"{ }") is None
    assert ContentEntry.verified("sha512:" + "0" * 128, "x/y", (), b"{}") is None
    assert ContentEntry.verified(good.digest.upper(), "x/y", (), b"{}") is None
    assert ContentEntry.verified(good.digest, "x/y", (), b"{}") is not None


def test_memory_is_bounded_by_bytes_least_recently_used_first() -> None:
    memory: MemoryContent[str, bytes] = MemoryContent()
    for name in "abc":
        memory.put(name, name.encode(), 400, "g", 60, 1000)
    assert memory.get("a", "g") is None  # 1,200 > 1,000: the oldest went
    assert memory.bytes == 800
    memory.get("b", "g")
    memory.put("d", b"d", 400, "g", 60, 1000)
    assert (memory.get("b", "g"), memory.get("c", "g")) == (b"b", None)
    memory.put("huge", b"h", 2000, "g", 60, 1000)  # larger than the bound: not kept
    assert memory.get("huge", "g") is None and memory.bytes == 800
    memory.put("e", b"e", 10, "g", 60, 500)  # a smaller bound (a reload) applies at once
    assert memory.bytes <= 500


def test_memory_entries_expire_and_belong_to_their_generation() -> None:
    clock = Clock()
    memory: MemoryContent[str, bytes] = MemoryContent(clock)
    memory.put("a", b"a", 10, "g1", 60, 1000)
    assert memory.get("a", "g2") is None  # invalidated since: dropped
    assert memory.bytes == 0
    memory.put("a", b"a", 10, "g1", 60, 1000)
    assert memory.get("a", None) == b"a"  # Redis down: any generation serves
    clock.now += 61
    assert memory.get("a", None) is None


def test_tags_belong_to_their_generation_and_expire() -> None:
    clock = Clock()
    memory: MemoryContent[str, bytes] = MemoryContent(clock)
    memory.put_tag("a/x", "v1", "sha256:1", "g1", 5)
    assert memory.tag("a/x", "v1", "g1") == "sha256:1"
    assert memory.tag("b/y", "v1", "g1") is None
    clock.now += 6
    assert memory.tag("a/x", "v1", "g1") is None
    memory.put_tag("a/x", "v1", "sha256:1", "g1", 5)
    assert memory.tag("a/x", "v1", "g2") is None
    assert memory.tag("a/x", "v1", "g1") is None  # dropped by the mismatch


def test_local_generations_never_repeat() -> None:
    generations = LocalGenerations()
    seen = {generations.current("a/x")}
    for _ in range(3):
        generations.bump("a/x")
        seen.add(generations.current("a/x"))
    assert len(seen) == 4
    assert generations.current("b/y") == generations.current("c/z")


async def test_without_redis_a_delete_drops_the_digest_and_every_tag() -> None:
    cache = build_content_cache(None, SECRET)
    value = entry(b'{"a":1}')
    view = await cache.view("a/x")
    await cache.put(view, key("a/x", value), value, SETTINGS)
    await cache.put_tag(view, "v1", value.digest, SETTINGS)
    assert cache.tag(await cache.view("a/x"), "v1") == value.digest
    assert await cache.get(await cache.view("b/y"), key("b/y", value), SETTINGS) is None
    assert await cache.invalidate("a/x", key("a/x", value))
    after = await cache.view("a/x")
    assert cache.tag(after, "v1") is None
    assert await cache.get(after, key("a/x", value), SETTINGS) is None
    assert cache.bytes_held == 0


async def test_tag_ttl_zero_learns_no_tag() -> None:
    cache = build_content_cache(None, SECRET)
    view = await cache.view("a/x")
    await cache.put_tag(view, "v1", "sha256:" + "0" * 64, ContentCacheSettings(tag_ttl=0))
    assert cache.tag(view, "v1") is None


@dataclass
class Replica:
    cache: TieredContentCache
    link: RedisLink

    def fallbacks(self, metrics: Metrics) -> float:
        value = metrics.registry.get_sample_value(
            "registry_gateway_state_fallbacks_total", {"store": "content"})
        return value or 0.0


ReplicaFactory = Callable[..., Replica]


@pytest.fixture
async def replica(redis_server: RedisServer) -> AsyncIterator[ReplicaFactory]:
    """Caches on one shared client, as separate gateway processes would see one Redis."""
    settings = CacheSettings(redis_url=redis_server.url, redis_timeout=RELAXED)
    async with connect(settings) as client:

        def make(secret: bytes = SECRET, breaker: CircuitBreaker | None = None) -> Replica:
            link = RedisLink(Metrics(), RELAXED, breaker or CircuitBreaker(base=0.2, cap=0.4))
            link.client = client
            return Replica(build_content_cache(link, secret), link)

        yield make


async def test_a_body_one_replica_stored_serves_another(replica: ReplicaFactory) -> None:
    one, two = replica(), replica()
    value = entry(b'{"layers":[]}')
    await one.cache.put(await one.cache.view("a/x"), key("a/x", value), value, SETTINGS)
    got = await two.cache.get(await two.cache.view("a/x"), key("a/x", value), SETTINGS)
    assert got == value
    # Never across repositories, nor from manifest to blob.
    view = await two.cache.view("b/y")
    assert await two.cache.get(view, key("b/y", value), SETTINGS) is None
    blob = key("a/x", value, "blob")
    assert await two.cache.get(await two.cache.view("a/x"), blob, SETTINGS) is None


async def test_redis_false_keeps_bodies_in_process(replica: ReplicaFactory) -> None:
    one, two = replica(), replica()
    value = entry(b'{"local":true}')
    local = ContentCacheSettings(redis=False)
    await one.cache.put(await one.cache.view("a/x"), key("a/x", value), value, local)
    assert await two.cache.get(await two.cache.view("a/x"), key("a/x", value), SETTINGS) is None
    assert await one.cache.get(await one.cache.view("a/x"), key("a/x", value), local) == value


async def test_an_invalidation_on_one_replica_holds_on_the_other_at_once(
        replica: ReplicaFactory) -> None:
    one, two = replica(), replica()
    value = entry(b'{"v":1}')
    for cache in (one.cache, two.cache):
        view = await cache.view("a/x")
        await cache.put(view, key("a/x", value), value, SETTINGS)
        await cache.put_tag(view, "v1", value.digest, SETTINGS)
    assert two.cache.tag(await two.cache.view("a/x"), "v1") == value.digest
    await one.cache.invalidate("a/x", key("a/x", value))
    view = await two.cache.view("a/x")
    assert two.cache.tag(view, "v1") is None
    assert await two.cache.get(view, key("a/x", value), SETTINGS) is None
    other = entry(b'{"other":1}')  # another repository keeps its entries
    await two.cache.put(await two.cache.view("b/y"), key("b/y", other), other, SETTINGS)
    await one.cache.invalidate("a/x", None)
    assert await two.cache.get(await two.cache.view("b/y"), key("b/y", other), SETTINGS) == other


async def test_a_fill_racing_an_invalidation_is_stale(replica: ReplicaFactory) -> None:
    one, two = replica(), replica()
    value = entry(b'{"old":1}')
    before = await two.cache.view("a/x")  # read before the PUT lands
    await one.cache.invalidate("a/x", None)
    await two.cache.put(before, key("a/x", value), value, SETTINGS)  # stored after it
    await two.cache.put_tag(before, "v1", value.digest, SETTINGS)
    now = await two.cache.view("a/x")
    assert two.cache.tag(now, "v1") is None
    assert await two.cache.get(now, key("a/x", value), SETTINGS) is None
    assert await one.cache.get(await one.cache.view("a/x"), key("a/x", value), SETTINGS) is None


async def test_foreign_and_tampered_entries_are_misses(
        replica: ReplicaFactory, redis_server: RedisServer) -> None:
    ours, foreign = replica(), replica(secret=b"f" * 32)
    value = entry(b'{"signed":1}')
    await foreign.cache.put(await foreign.cache.view("a/x"), key("a/x", value), value, SETTINGS)
    assert await ours.cache.get(await ours.cache.view("a/x"), key("a/x", value), SETTINGS) is None
    await ours.cache.put(await ours.cache.view("a/x"), key("a/x", value), value, SETTINGS)
    client = redis_server.client()
    name = next(k for k in client.keys("rg:c:e:*"))
    raw = client.get(name)
    assert isinstance(raw, str)
    client.set(name, raw.replace('"application/vnd.oci', '"application/vnd.OCI'))
    fresh = replica()
    assert await fresh.cache.get(await fresh.cache.view("a/x"), key("a/x", value), SETTINGS) is None


async def test_a_signed_entry_whose_body_does_not_match_is_refused(
        replica: ReplicaFactory) -> None:
    """Even an entry our own key signed is re-hashed: a bug that stored a wrong body must not
    serve it."""
    one = replica()
    value = entry(b'{"right":1}')
    wrong = ContentEntry(value.media_type, value.digest, value.headers, b'{"wrong":1}')
    assert isinstance(one.cache.shared, RedisContent)
    await one.cache.shared.put(key("a/x", value), (wrong.media_type, wrong.headers, wrong.body),
                               (await one.cache.shared.generation("a/x"))[0], 60)
    fresh = replica()
    assert await fresh.cache.get(await fresh.cache.view("a/x"), key("a/x", value), SETTINGS) is None


async def test_redis_losing_its_data_makes_every_generation_stale(
        replica: ReplicaFactory, redis_server: RedisServer) -> None:
    one = replica()
    value = entry(b'{"epoch":1}')
    view = await one.cache.view("a/x")
    await one.cache.put(view, key("a/x", value), value, SETTINGS)
    await one.cache.put_tag(view, "v1", value.digest, SETTINGS)
    redis_server.client().delete(EPOCH_KEY)  # what a restart without persistence looks like
    now = await one.cache.view("a/x")
    assert now.generation != view.generation
    assert one.cache.tag(now, "v1") is None
    assert await one.cache.get(now, key("a/x", value), SETTINGS) is None


async def test_redis_down_serves_digests_per_process_and_no_tags(
        replica: ReplicaFactory, redis_server: RedisServer) -> None:
    one = replica()
    value = entry(b'{"outage":1}')
    view = await one.cache.view("a/x")
    await one.cache.put(view, key("a/x", value), value, SETTINGS)
    await one.cache.put_tag(view, "v1", value.digest, SETTINGS)
    redis_server.stop()
    try:
        down = await one.cache.view("a/x")
        assert down.generation is None and down.failed
        assert one.cache.tag(down, "v1") is None
        assert await one.cache.get(down, key("a/x", value), SETTINGS) == value
        filled = entry(b'{"during":1}')
        await one.cache.put(down, key("a/x", filled), filled, SETTINGS)
        assert await one.cache.get(down, key("a/x", filled), SETTINGS) == filled
        assert not await one.cache.invalidate("a/x", key("a/x", value))
        assert await one.cache.get(down, key("a/x", value), SETTINGS) is None
    finally:
        redis_server.start()
    one.link.breaker.success()
    up = await one.cache.view("a/x")
    assert up.generation is not None
    # What was filled while no generation could be read is not trusted once Redis answers.
    assert await one.cache.get(up, key("a/x", filled), SETTINGS) is None


async def test_lookups_that_arrive_together_share_one_generation_read(
        replica: ReplicaFactory, redis_server: RedisServer) -> None:
    one = replica()
    await one.cache.view("warm/up")  # the epoch exists
    stats = redis_server.client()

    def mgets() -> int:
        return int(stats.info("commandstats").get("cmdstat_mget", {}).get("calls", 0))

    before = mgets()
    names = [f"r/{i % 7}" for i in range(40)]
    views = await asyncio.gather(*(one.cache.view(name) for name in names))
    assert mgets() == before + 1
    assert all(v.generation is not None for v in views)
    assert len({v.generation for v in views}) == 1  # no repository was ever invalidated
    await one.cache.invalidate("r/3", None)
    after = await asyncio.gather(*(one.cache.view(name) for name in ("r/3", "r/4")))
    assert after[0].generation != views[3].generation
    assert after[1].generation == views[4].generation


async def test_a_tag_one_replica_learnt_serves_another_under_its_generation(
        replica: ReplicaFactory, redis_server: RedisServer) -> None:
    one, two = replica(), replica()
    value = entry(b'{"shared":"tag"}')
    await one.cache.put_tag(await one.cache.view("a/x"), "v1", value.digest, SETTINGS)
    assert two.cache.tag(await two.cache.view("a/x", "v1"), "v1") == value.digest
    assert two.cache.tag(await two.cache.view("a/x", "v1"), "v2") is None
    assert two.cache.tag(await two.cache.view("b/y", "v1"), "v1") is None
    name = next(k for k in redis_server.client().keys("rg:c:t:*"))
    assert 0 < redis_server.client().ttl(name) <= SETTINGS.tag_ttl
    await two.cache.invalidate("a/x", None)  # a push through the other replica
    assert one.cache.tag(await one.cache.view("a/x", "v1"), "v1") is None
    assert two.cache.tag(await two.cache.view("a/x", "v1"), "v1") is None


async def test_a_shared_tag_is_not_learnt_without_redis_sharing_or_a_tag_ttl(
        replica: ReplicaFactory) -> None:
    one, two = replica(), replica()
    view = await one.cache.view("a/x")
    await one.cache.put_tag(view, "local", "sha256:" + "1" * 64, ContentCacheSettings(redis=False))
    await one.cache.put_tag(view, "never", "sha256:" + "2" * 64, ContentCacheSettings(tag_ttl=0))
    assert one.cache.tag(await one.cache.view("a/x"), "local") == "sha256:" + "1" * 64
    assert two.cache.tag(await two.cache.view("a/x", "local"), "local") is None
    assert two.cache.tag(await two.cache.view("a/x", "never"), "never") is None


async def test_foreign_and_tampered_tags_are_misses(
        replica: ReplicaFactory, redis_server: RedisServer) -> None:
    ours, foreign = replica(), replica(secret=b"f" * 32)
    forged = "sha256:" + "3" * 64
    await foreign.cache.put_tag(await foreign.cache.view("a/x"), "v1", forged, SETTINGS)
    assert ours.cache.tag(await ours.cache.view("a/x", "v1"), "v1") is None
    real = "sha256:" + "4" * 64
    await ours.cache.put_tag(await ours.cache.view("a/x"), "v1", real, SETTINGS)
    client = redis_server.client()
    name = next(k for k in client.keys("rg:c:t:*"))
    raw = client.get(name)
    assert isinstance(raw, str) and real in raw
    client.set(name, raw.replace(real, forged))
    fresh = replica()
    assert fresh.cache.tag(await fresh.cache.view("a/x", "v1"), "v1") is None
