"""The real gateway with a real redis-server: what lands in Redis, and what /metrics counts."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiohttp
import pytest
from support import RedisServer, Upstream
from support.credentials import basic, write_key
from support.gateway import RunningGateway
from support.http_api import cache_counts, start_gateway, status, until


@pytest.fixture
def redis_gateway(registry_upstream: Upstream, redis_server: RedisServer,
                  tmp_path: Path) -> Iterator[RunningGateway]:
    with start_gateway(tmp_path / "gateway", registry_upstream.url, redis_url=redis_server.url,
                       key_file=write_key(tmp_path / "token.pem")) as gateway:
        yield gateway


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client:
        yield client


def decision_keys(redis_server: RedisServer) -> dict[str, str]:
    """Decision keys as 'subject/repository/action' -> 'allow'|'deny' (one config running)."""
    client = redis_server.client()
    found = {}
    for key in client.keys("rg:d:*"):
        _, subject, repository, action = key.removeprefix("rg:d:").split("\x1f")
        value = client.get(key) or ""
        found[f"{subject or '-'}/{repository}/{action}"] = "allow" if value[0] == "1" else "deny"
    return found


async def test_decisions_land_in_redis_and_hits_are_counted(
        session: aiohttp.ClientSession, redis_gateway: RunningGateway,
        redis_server: RedisServer) -> None:
    gw = redis_gateway
    before = await cache_counts(session, gw)
    assert await status(session, gw, "/v2/myteam/app/tags/list", basic("alice")) == 404
    assert await status(session, gw, "/v2/myteam/app/tags/list", basic("bob")) == 401
    assert await status(session, gw, "/v2/library/base/tags/list", {}) == 404
    assert decision_keys(redis_server) == {
        "alice/myteam/app/pull": "allow",
        "bob/myteam/app/pull": "deny",
        "-/library/base/pull": "allow",
    }
    middle = await cache_counts(session, gw)
    assert middle["miss"] - before["miss"] == 3 and middle["hit"] == before["hit"]
    for _ in range(5):
        assert await status(session, gw, "/v2/myteam/app/tags/list", basic("alice")) == 404
    after = await cache_counts(session, gw)
    assert after["hit"] - middle["hit"] == 5 and after["miss"] == middle["miss"]
    assert after["error"] == 0 and after["decisions"] == 0
    ttl = redis_server.client().ttl(next(iter(redis_server.client().keys("rg:d:*"))))
    assert 0 < ttl <= 60  # cache.ttl


async def test_lockout_counters_and_upload_bindings_land_in_redis(
        session: aiohttp.ClientSession, redis_gateway: RunningGateway,
        redis_server: RedisServer) -> None:
    gw = redis_gateway
    client = redis_server.client()
    assert await status(session, gw, "/v2/", basic("alice", "wrong-1")) == 401
    counters = client.keys("rg:l:*")
    assert len(counters) == 1 and "alice" not in counters[0] and "127.0.0.1" not in counters[0]

    data = b"bound upload"
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    async with session.post(f"{gw.url}/v2/myteam/up/blobs/uploads/",
                            headers=basic("alice")) as response:
        assert response.status == 202
        upload = response.headers["Docker-Upload-UUID"]
        location = response.headers["Location"]
    await until(lambda: client.get(f"rg:u:{upload}") == "alice\x1fmyteam/up", "no binding")
    # Another user with push on the repository cannot continue alice's upload.
    async with session.put(f"{location}&digest={digest}", data=data,
                           headers=basic("carol")) as response:
        assert response.status == 404
    async with session.put(f"{location}&digest={digest}", data=data,
                           headers={**basic("alice"),
                                    "Content-Type": "application/octet-stream"}) as response:
        assert response.status == 201
    await until(lambda: not client.exists(f"rg:u:{upload}"), "the binding outlived its upload")


async def test_without_redis_hits_are_counted_in_process(
        session: aiohttp.ClientSession, gateway: RunningGateway) -> None:
    before = await cache_counts(session, gateway)
    for _ in range(3):
        assert await status(session, gateway, "/v2/myteam/mem/tags/list", basic("alice")) == 404
    after = await cache_counts(session, gateway)
    assert (after["miss"] - before["miss"], after["hit"] - before["hit"]) == (1, 2)
    assert after["error"] == 0


async def test_values_no_gateway_wrote_are_never_a_5xx(
        session: aiohttp.ClientSession, redis_gateway: RunningGateway,
        registry_upstream: Upstream, redis_server: RedisServer, tmp_path: Path) -> None:
    """Issue 11 (sibling found with issue 12): redis-py decodes every value as UTF-8, so raw
    bytes written into Redis raised out of the stores (a 500). Now such a value is served from
    in-process state like any other value the gateway cannot trust. A second replica (same key,
    nothing in process yet) reads every one of them from Redis."""
    gw = redis_gateway
    assert await status(session, gw, "/v2/myteam/app/tags/list", basic("alice")) == 404
    assert await status(session, gw, "/v2/myteam/app/tags/list", basic("bob")) == 401
    assert await status(session, gw, "/v2/", basic("alice", "wrong-1")) == 401
    async with session.post(f"{gw.url}/v2/myteam/raw/blobs/uploads/",
                            headers=basic("alice")) as response:
        assert response.status == 202
        location = response.headers["Location"]
    raw = redis_server.client()
    keys = raw.keys("rg:*")
    assert {k.split(":")[1] for k in keys} >= {"d", "l", "u"}, keys
    for key in keys:
        if raw.type(key) == "hash":
            raw.hset(key, mapping={field: b"\xff\xfe" for field in raw.hkeys(key)})
        elif raw.type(key) == "string":
            raw.set(key, b"\xff\xfe", keepttl=True)
    with start_gateway(tmp_path / "other", registry_upstream.url, redis_url=redis_server.url,
                       key_file=tmp_path / "token.pem") as other:
        for replica in (gw, other):
            assert await status(session, replica, "/v2/myteam/app/tags/list",
                                basic("alice")) == 404
            assert await status(session, replica, "/v2/myteam/app/tags/list",
                                basic("bob")) == 401
            assert await status(session, replica, "/v2/", basic("alice", "wrong-2")) == 401
            assert await status(session, replica, "/v2/", basic("alice")) == 200
        # alice's upload, continued on the replica that never saw it: its binding is not
        # readable, so it is refused (never continued by a guess), not a 500.
        other_location = location.replace(gw.url, other.url)
        async with session.patch(other_location, data=b"x", headers=basic("alice")) as response:
            assert response.status == 404
