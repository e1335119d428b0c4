"""Two gateway processes sharing a Redis and a token key behave as one, config by config."""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest
from support import RedisServer, Upstream
from support.credentials import basic, bearer, write_key
from support.gateway import RunningGateway
from support.http_api import SERVICE, cache_counts, get_token, start_gateway, status, until, wait_for_status

LOCKOUT = {"max_failures": 3, "window": 60, "cooldown": 30}


@dataclass
class Pair:
    one: RunningGateway
    two: RunningGateway


@pytest.fixture
def pair(registry_upstream: Upstream, redis_server: RedisServer,
         tmp_path: Path) -> Iterator[Pair]:
    key = write_key(tmp_path / "token.pem")
    with ExitStack() as stack:
        one, two = (stack.enter_context(start_gateway(
            tmp_path / name, registry_upstream.url, redis_url=redis_server.url, key_file=key,
            auth={"lockout": LOCKOUT})) for name in ("one", "two"))
        yield Pair(one, two)


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client:
        yield client


async def test_a_token_issued_by_one_works_on_the_other(
        session: aiohttp.ClientSession, pair: Pair) -> None:
    token = await get_token(session, pair.one, "alice", "repository:myteam/shared:pull")
    assert await status(session, pair.two, "/v2/myteam/shared/tags/list", bearer(token)) == 404
    async with session.get(f"{pair.one.url}/token", headers=basic("alice"), params={
            "service": SERVICE, "offline_token": "true", "client_id": "t"}) as response:
        refresh = (await response.json())["refresh_token"]
    form = {"grant_type": "refresh_token", "refresh_token": refresh, "service": SERVICE,
            "client_id": "t", "scope": "repository:myteam/shared:pull"}
    async with session.post(f"{pair.two.url}/token", data=form) as response:
        assert response.status == 200


async def test_a_lockout_on_one_holds_on_the_other(
        session: aiohttp.ClientSession, pair: Pair) -> None:
    # The same wrong attempt sent to both counts once: the attempt id is shared too.
    assert await status(session, pair.one, "/v2/", basic("alice", "wrong-a")) == 401
    assert await status(session, pair.two, "/v2/", basic("alice", "wrong-a")) == 401
    assert await status(session, pair.two, "/v2/", basic("alice")) == 200
    assert await status(session, pair.two, "/v2/", basic("alice", "wrong-b")) == 401
    assert await status(session, pair.one, "/v2/", basic("alice", "wrong-c")) == 401
    async with session.get(f"{pair.two.url}/token", headers=basic("alice")) as response:
        assert response.status == 429
        assert 25 <= int(response.headers["Retry-After"]) <= 30
    assert await status(session, pair.one, "/v2/", basic("alice")) == 429
    assert await status(session, pair.one, "/v2/", basic("bob")) == 200


async def test_an_upload_started_on_one_goes_on_on_the_other(
        session: aiohttp.ClientSession, pair: Pair, redis_server: RedisServer) -> None:
    data = b"across replicas"
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    async with session.post(f"{pair.one.url}/v2/myteam/across/blobs/uploads/",
                            headers=basic("alice")) as response:
        assert response.status == 202
        location = response.headers["Location"].replace(pair.one.url, pair.two.url)
        upload = response.headers["Docker-Upload-UUID"]
    await until(lambda: redis_server.client().exists(f"rg:u:{upload}"), "no shared binding")
    async with session.put(f"{location}&digest={digest}", data=data, headers={
            **basic("alice"), "Content-Type": "application/octet-stream"}) as response:
        assert response.status == 201, await response.text()


async def test_decisions_are_shared_until_one_replica_reloads(
        session: aiohttp.ClientSession, pair: Pair, redis_server: RedisServer) -> None:
    path = "/v2/myteam/fleet/tags/list"
    assert await status(session, pair.one, path, basic("alice")) == 404
    before = await cache_counts(session, pair.two)
    assert await status(session, pair.two, path, basic("alice")) == 404
    after = await cache_counts(session, pair.two)
    # Same config, same fingerprint: the second replica found the first one's decision in Redis.
    assert (after["hit"] - before["hit"], after["miss"] - before["miss"]) == (1, 0)

    config = pair.one.copy_config()
    config["teams"]["myteam"]["members"] = ["dave"]
    pair.one.reload(config)
    await wait_for_status(session, pair.one, path, basic("alice"), 401, within=1.0)
    # The other replica runs its own config until it reloads too, cached or not.
    for repository in ("fleet", "fleet-fresh"):
        assert await status(session, pair.two, f"/v2/myteam/{repository}/tags/list",
                            basic("alice")) == 404
    assert await status(session, pair.one, "/v2/myteam/fleet-fresh/tags/list",
                        basic("alice")) == 401
    fingerprints = {key.removeprefix("rg:d:").split("\x1f")[0]
                    for key in redis_server.client().keys("rg:d:*")}
    assert len(fingerprints) == 2

    config = pair.two.copy_config()
    config["teams"]["myteam"]["members"] = ["dave"]
    pair.two.reload(config)
    await wait_for_status(session, pair.two, path, basic("alice"), 401, within=1.0)
    before = await cache_counts(session, pair.two)
    assert await status(session, pair.two, "/v2/myteam/fleet-fresh/tags/list",
                        basic("alice")) == 401
    after = await cache_counts(session, pair.two)
    assert after["hit"] - before["hit"] == 1  # written by the first replica under the new config


async def test_after_a_redis_outage_replicas_share_through_it_again(
        session: aiohttp.ClientSession, pair: Pair, redis_server: RedisServer) -> None:
    redis_server.stop()
    for gw in (pair.one, pair.two):
        assert await status(session, gw, "/v2/myteam/down/tags/list", basic("alice")) == 404
        assert await status(session, gw, "/v2/myteam/down/tags/list", basic("bob")) == 401
        assert (await cache_counts(session, gw))["error"] > 0
    redis_server.start()
    deadline = time.monotonic() + 10
    n = 0
    while True:  # until the first replica's breaker lets it write to Redis again
        n += 1
        path = f"/v2/myteam/up{n}/tags/list"
        assert await status(session, pair.one, path, basic("alice")) == 404
        if redis_server.client().keys("rg:d:*"):
            break
        assert time.monotonic() < deadline, "the first replica did not use Redis again"
        await asyncio.sleep(0.05)
    deadline = time.monotonic() + 10
    while True:  # until the second one reads it there: a hit through Redis
        before = await cache_counts(session, pair.two)
        assert await status(session, pair.two, path, basic("alice")) == 404
        after = await cache_counts(session, pair.two)
        if after["hit"] > before["hit"]:
            break
        assert time.monotonic() < deadline, "the second replica did not read Redis again"
        await asyncio.sleep(0.05)
        n += 1
        path = f"/v2/myteam/up{n}/tags/list"
        assert await status(session, pair.one, path, basic("alice")) == 404
