"""Brute-force lockout per (username, client address) on the real gateway, in-process and in Redis."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from support import RedisServer, Upstream
from support.credentials import basic
from support.gateway import RunningGateway
from support.http_api import SERVICE, cache_counts, start_gateway

LOCKOUT = {"max_failures": 3, "window": 60, "cooldown": 2, "max_cooldown": 8}


def lockout_config(config: dict[str, Any]) -> None:
    config["auth"] = {"lockout": dict(LOCKOUT)}
    # X-Forwarded-For from loopback names the client address, and Basic is allowed from any.
    config["server"]["trusted_proxies"] = ["127.0.0.1/32"]
    config["server"]["allow_insecure_basic"] = True


@pytest.fixture(params=["memory", "redis"])
def lockout_gateway(request: pytest.FixtureRequest, registry_upstream: Upstream,
                    tmp_path: Path) -> Iterator[RunningGateway]:
    options: dict[str, Any] = {}
    if request.param == "redis":
        options["redis_url"] = request.getfixturevalue("redis_server").url
    with start_gateway(tmp_path / "gateway", registry_upstream.url, lockout_config,
                       **options) as gateway:
        yield gateway


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client:
        yield client


def client_at(address: str | None) -> dict[str, str]:
    return {"X-Forwarded-For": address} if address else {}


async def token(session: aiohttp.ClientSession, gw: RunningGateway, user: str,
                password: str | None = None, address: str | None = None) -> aiohttp.ClientResponse:
    """GET /token with Basic credentials; the response with its body read."""
    async with session.get(f"{gw.url}/token", params={"service": SERVICE},
                           headers={**basic(user, password), **client_at(address)}) as response:
        await response.read()
        return response


async def fail(session: aiohttp.ClientSession, gw: RunningGateway, user: str, count: int,
               tag: str = "", address: str | None = None) -> list[int]:
    """`count` distinct wrong passwords (a repeated one would count once)."""
    return [(await token(session, gw, user, f"wrong-{tag}{i}", address)).status
            for i in range(count)]


async def test_n_failures_lock_out_that_user_at_that_address_only(
        session: aiohttp.ClientSession, lockout_gateway: RunningGateway) -> None:
    gw = lockout_gateway
    assert await fail(session, gw, "alice", 3) == [401, 401, 401]
    locked = await token(session, gw, "alice")  # the right password
    assert locked.status == 429
    assert 1 <= int(locked.headers["Retry-After"]) <= 2
    async with session.get(f"{gw.url}/token", headers=basic("alice")) as response:
        assert (await response.json())["errors"][0]["code"] == "TOOMANYREQUESTS"
    async with session.get(f"{gw.url}/v2/", headers=basic("alice")) as response:
        assert response.status == 429 and "Retry-After" in response.headers
    assert (await token(session, gw, "bob")).status == 200  # another user
    assert (await token(session, gw, "alice", address="10.1.2.3")).status == 200  # elsewhere


async def test_unknown_usernames_count_exactly_like_known_ones(
        session: aiohttp.ClientSession, lockout_gateway: RunningGateway) -> None:
    gw = lockout_gateway
    known = await fail(session, gw, "alice", 4)
    unknown = await fail(session, gw, "mallory", 4)
    assert known == unknown == [401, 401, 401, 429]
    answers = []
    for user in ("alice", "mallory"):
        async with session.get(f"{gw.url}/token", headers=basic(user, "again")) as response:
            # Per-response values aside, the two answers are byte for byte the same.
            assert response.headers["Retry-After"] in ("1", "2")
            headers = {k: v for k, v in response.headers.items()
                       if k not in ("Date", "X-Request-ID", "Retry-After")}
            answers.append((response.status, headers, await response.read()))
    assert answers[0] == answers[1]


async def test_successes_never_count(
        session: aiohttp.ClientSession, lockout_gateway: RunningGateway) -> None:
    gw = lockout_gateway
    assert await fail(session, gw, "alice", 2) == [401, 401]
    # docker pulls layers in parallel, each request with the same good credentials.
    statuses = await asyncio.gather(*(
        session.get(f"{gw.url}/v2/myteam/app/tags/list", headers=basic("alice"))
        for _ in range(30)))
    assert {response.status for response in statuses} == {404}
    for response in statuses:
        response.release()
    assert (await token(session, gw, "alice")).status == 200
    assert await fail(session, gw, "alice", 1, tag="last") == [401]
    assert (await token(session, gw, "alice")).status == 429


async def test_one_failed_attempt_counts_once_whatever_the_method(
        session: aiohttp.ClientSession, lockout_gateway: RunningGateway) -> None:
    gw = lockout_gateway
    wrong = basic("alice", "the-same-wrong-password")
    form = {"grant_type": "password", "username": "alice", "password": "the-same-wrong-password",
            "service": SERVICE, "client_id": "test"}
    for _ in range(3):
        async with session.get(f"{gw.url}/v2/", headers=wrong) as response:
            assert response.status == 401
        async with session.get(f"{gw.url}/token", headers=wrong) as response:
            assert response.status == 401
        async with session.post(f"{gw.url}/token", data=form) as response:
            assert response.status == 401
    assert (await token(session, gw, "alice")).status == 200
    assert await fail(session, gw, "alice", 2) == [401, 401]
    assert (await token(session, gw, "alice")).status == 429


async def test_the_cooldown_ends_and_grows_on_repeat(
        session: aiohttp.ClientSession, lockout_gateway: RunningGateway) -> None:
    gw = lockout_gateway
    await fail(session, gw, "alice", 3, tag="a")
    first = int((await token(session, gw, "alice")).headers["Retry-After"])
    assert first <= 2
    deadline = time.monotonic() + 5
    while (await token(session, gw, "alice")).status == 429:
        assert time.monotonic() < deadline, "the lockout did not end"
        await asyncio.sleep(0.1)
    await fail(session, gw, "alice", 3, tag="b")
    second = int((await token(session, gw, "alice")).headers["Retry-After"])
    assert 3 <= second <= 4  # doubled


async def test_a_lockout_holds_through_a_redis_outage(
        session: aiohttp.ClientSession, registry_upstream: Upstream, redis_server: RedisServer,
        tmp_path: Path) -> None:
    with start_gateway(tmp_path / "gateway", registry_upstream.url, lockout_config,
                       redis_url=redis_server.url) as gw:
        redis_server.stop()
        assert await fail(session, gw, "alice", 4) == [401, 401, 401, 429]  # in-process
        assert (await token(session, gw, "bob")).status == 200
        assert (await cache_counts(session, gw))["lockout"] > 0
        redis_server.start()
        await asyncio.sleep(0.5)  # the breaker's backoff
        assert (await token(session, gw, "alice")).status == 429  # still held
        assert await fail(session, gw, "bob", 1) == [401]
        deadline = time.monotonic() + 5
        while not redis_server.client().keys("rg:l:*"):
            assert time.monotonic() < deadline, "the counters did not go back to Redis"
            await fail(session, gw, "bob", 1, tag=str(time.monotonic()))
            await asyncio.sleep(0.1)
