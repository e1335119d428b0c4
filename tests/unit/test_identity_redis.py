"""Remembered identities in a real redis-server: shared by replicas, signed, safe when down."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Callable

import pytest
from support import RedisServer

from gateway.config.schema import CacheSettings
from gateway.metrics import Metrics
from gateway.state.identities import CredentialLink, IdentityKeys, MemoryIdentities, Remembered, remembered
from gateway.state.identities_redis import RedisIdentities, SharedIdentities
from gateway.state.redis import CircuitBreaker, RedisLink, connect

SECRET = b"s" * 32
GEN = "g1"
TTL = 60
def fresh_erin() -> Remembered:
    """erin as the directory vouched for her just now (never at collection: checked_at ages)."""
    return remembered("erin", frozenset({"platform"}), "pwd:20240101120000Z")

Replica = Callable[..., SharedIdentities]


@pytest.fixture
async def replica(redis_server: RedisServer) -> AsyncIterator[Replica]:
    """Stores on one shared client, as separate gateway processes would see one Redis."""
    settings = CacheSettings(redis_url=redis_server.url, ttl=60, redis_timeout=0.5)
    async with connect(settings) as client:

        def make(secret: bytes = SECRET) -> SharedIdentities:
            link = RedisLink(Metrics(), 0.5, CircuitBreaker(base=0.2, cap=0.4))
            link.client = client
            return SharedIdentities(MemoryIdentities(IdentityKeys(secret)),
                                    RedisIdentities(link, secret))

        yield make


async def test_one_replicas_login_is_remembered_by_the_other(
        replica: Replica, redis_server: RedisServer) -> None:
    erin = fresh_erin()  # made now: checked_at must be fresh for the test
    one, two = replica(), replica()
    await one.remember(GEN, "erin", "erin-pw", erin, TTL)
    assert await two.recall(GEN, "erin", "erin-pw", TTL) == erin
    assert await two.known(GEN, "erin", TTL) == erin
    assert await two.recall(GEN, "erin", "wrong", TTL) is None
    assert await two.recall("g2", "erin", "erin-pw", TTL) is None
    assert await replica(b"t" * 32).recall(GEN, "erin", "erin-pw", TTL) is None  # another key
    raw = redis_server.client()
    keys = [str(k) for k in raw.keys("*")]
    assert len(keys) == 2 and all(k.startswith("rg:i:") for k in keys)
    dump = " ".join(keys + [str(raw.get(k) or "") for k in keys])
    assert "erin-pw" not in dump and "erin" not in " ".join(keys)
    assert all(55 <= raw.ttl(k) <= TTL for k in keys)


def _resign_free(raw: str, change: Callable[[dict[str, object]], None]) -> str:
    """The stored JSON changed, the tag kept: what someone who can write to Redis can do."""
    encoded, _, tag = raw.rpartition(":")
    value = json.loads(encoded)
    change(value)
    return json.dumps(value, separators=(",", ":")) + ":" + tag


async def test_a_tampered_or_moved_value_is_a_miss(
        replica: Replica, redis_server: RedisServer) -> None:
    erin = fresh_erin()  # made now: checked_at must be fresh for the test
    one = replica()
    await one.remember(GEN, "erin", "erin-pw", erin, TTL)
    await one.remember(GEN, "heidi", "heidi-pw", remembered("heidi", frozenset(), "pwd:"), TTL)
    raw = redis_server.client()
    subject = "rg:i:s:" + one.keys.subject(GEN, "erin")
    original = str(raw.get(subject) or "")
    raw.set(subject, _resign_free(original, lambda v: v.update(g=["platform", "registry-admins"])))
    assert await replica().recall(GEN, "erin", "erin-pw", TTL) is None
    assert await replica().known(GEN, "erin", TTL) is None
    # heidi's credentials pointed at erin's subject (a moved, validly signed value): a miss.
    heidi_link = "rg:i:c:" + one.keys.credentials(GEN, "heidi", "heidi-pw")
    raw.set(subject, original)
    raw.set(heidi_link, raw.get("rg:i:c:" + one.keys.credentials(GEN, "erin", "erin-pw")) or "")
    assert await replica().recall(GEN, "heidi", "heidi-pw", TTL) is None
    raw.set(subject, "not json:" + "0" * 32)
    assert await replica().recall(GEN, "erin", "erin-pw", TTL) is None
    raw.set(subject, b"\xff\xfe not UTF-8")  # redis-py cannot even decode it: still a miss
    assert await replica().recall(GEN, "erin", "erin-pw", TTL) is None
    assert await replica().known(GEN, "erin", TTL) is None
    # The replica that wrote them still has its own, in process.
    assert await one.recall(GEN, "erin", "erin-pw", TTL) == erin


async def test_an_old_signed_value_is_not_used_past_its_ttl(replica: Replica) -> None:
    # Validly signed but checked more than cache_ttl ago (a replayed value, or a Redis TTL
    # longer than the running config's cache_ttl): a miss.
    one = replica()
    stale = Remembered("erin", frozenset({"platform"}), "pwd:", time.time() - TTL - 1)
    link = CredentialLink(stale.name, stale.binding, stale.checked_at)
    await one.shared.put(one.keys.credentials(GEN, "erin", "pw"), link,
                         one.keys.subject(GEN, "erin"), stale, 3600)
    assert await one.recall(GEN, "erin", "pw", TTL) is None
    assert await one.known(GEN, "erin", TTL) is None
    assert await one.recall(GEN, "erin", "pw", 3600) is not None  # the same, with a longer ttl


async def test_redis_down_falls_back_to_this_process(
        replica: Replica, redis_server: RedisServer) -> None:
    erin = fresh_erin()  # made now: checked_at must be fresh for the test
    one, two = replica(), replica()
    redis_server.stop()
    await one.remember(GEN, "erin", "erin-pw", erin, TTL)  # no exception: kept in process
    assert await one.recall(GEN, "erin", "erin-pw", TTL) == erin
    assert await one.known(GEN, "erin", TTL) == erin
    assert await two.recall(GEN, "erin", "erin-pw", TTL) is None
    assert await two.known(GEN, "erin", TTL) is None
