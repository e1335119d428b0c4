"""Redis killed mid-test: decisions come from the config, nothing fails, and Redis is used again."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from support import RedisServer, Upstream
from support.credentials import basic, bearer, write_key
from support.gateway import RunningGateway
from support.http_api import cache_counts, get_token, start_gateway, status

# (user, path, status): allowed reads of a missing repository are the registry's 404.
EXPECTED = [
    ("alice", "/v2/myteam/app/tags/list", 404),
    ("bob", "/v2/myteam/app/tags/list", 401),
    (None, "/v2/library/base/tags/list", 404),
    (None, "/v2/myteam/app/tags/list", 401),
    ("ci-bot", "/v2/myteam/app/tags/list", 404),
    ("carol", "/v2/secret/x/tags/list", 404),  # admin
    ("alice", "/v2/secret/x/tags/list", 401),  # no rule
]


@pytest.fixture
def key_file(tmp_path: Path) -> Path:
    return write_key(tmp_path / "token.pem")


def short_timeout(config: dict[str, Any]) -> None:
    config["cache"]["redis_timeout"] = 0.05  # the default


@pytest.fixture
def redis_gateway(registry_upstream: Upstream, redis_server: RedisServer, tmp_path: Path,
                  key_file: Path) -> Iterator[RunningGateway]:
    with start_gateway(tmp_path / "gateway", registry_upstream.url, redis_url=redis_server.url,
                       key_file=key_file) as gateway:
        yield gateway


@pytest.fixture
def fast_failing_gateway(registry_upstream: Upstream, redis_server: RedisServer, tmp_path: Path,
                         key_file: Path) -> Iterator[RunningGateway]:
    with start_gateway(tmp_path / "gateway", registry_upstream.url, short_timeout,
                       redis_url=redis_server.url, key_file=key_file) as gateway:
        yield gateway


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client:
        yield client


async def check_expected(session: aiohttp.ClientSession, gw: RunningGateway,
                         suffix: str = "") -> None:
    for user, path, expected in EXPECTED:
        path = path.replace("/tags/", f"{suffix}/tags/")
        assert await status(session, gw, path, basic(user) if user else {}) == expected, (user, path)


async def test_a_redis_outage_changes_no_decision_and_is_counted(
        session: aiohttp.ClientSession, redis_gateway: RunningGateway,
        redis_server: RedisServer) -> None:
    gw = redis_gateway
    await check_expected(session, gw)  # warm: in the LRU and in Redis
    token = await get_token(session, gw, "alice", "repository:myteam/tok:pull")
    before = await cache_counts(session, gw)

    redis_server.stop()
    await check_expected(session, gw)  # warm entries: served from the LRU
    await check_expected(session, gw, suffix="-new")  # cold ones: decided from the config
    assert await status(session, gw, "/v2/myteam/tok/tags/list", bearer(token)) == 404
    assert await status(session, gw, "/v2/myteam/tok/tags/list", bearer("x.y.z")) == 401
    # New tokens and uploads go on too (bindings in-process meanwhile).
    token = await get_token(session, gw, "alice", "repository:myteam/up:pull,push")
    async with session.post(f"{gw.url}/v2/myteam/up/blobs/uploads/",
                            headers=bearer(token)) as response:
        assert response.status == 202
        location = response.headers["Location"]
    async with session.patch(location, data=b"x" * 10, headers={
            **bearer(token), "Content-Type": "application/octet-stream"}) as response:
        assert response.status == 202
    during = await cache_counts(session, gw)
    assert during["error"] - before["error"] >= len(EXPECTED)
    assert during["decisions"] > 0 and during["uploads"] > 0
    assert "Redis failed" in gw.log_text()

    redis_server.start()
    # Redis is used again after the breaker's backoff: new decisions land in it once more.
    deadline = time.monotonic() + 10
    n = 0
    while not redis_server.client().keys("rg:d:*"):
        assert time.monotonic() < deadline, "the gateway did not use Redis again"
        n += 1
        assert await status(session, gw, f"/v2/myteam/back{n}/tags/list", basic("alice")) == 404
        await asyncio.sleep(0.05)
    settled = await cache_counts(session, gw)
    await check_expected(session, gw, suffix="-after")
    after = await cache_counts(session, gw)
    assert after["error"] == settled["error"]
    assert after["miss"] - settled["miss"] == len(EXPECTED) - 1  # carol: admin, never cached
    assert len(redis_server.client().keys("rg:d:*")) >= len(EXPECTED) - 1
    assert "Redis answers again" in gw.log_text()


async def test_no_5xx_while_redis_hangs_or_is_gone(
        session: aiohttp.ClientSession, fast_failing_gateway: RunningGateway,
        redis_server: RedisServer) -> None:
    """Many concurrent requests through the moment Redis dies: every answer is the right one."""
    gw = fast_failing_gateway

    async def burst(tag: str) -> None:
        calls = [status(session, gw, path.replace("/tags/", f"-{tag}{i}/tags/"),
                        basic(user) if user else {})
                 for i in range(5) for user, path, _ in EXPECTED]
        expected = [code for _ in range(5) for _, _, code in EXPECTED]
        assert await asyncio.gather(*calls) == expected

    pid = redis_server.process.pid
    assert pid is not None
    os.kill(pid, signal.SIGSTOP)  # a Redis that accepts connections but never answers
    try:
        started = time.monotonic()
        await burst("h")
        assert time.monotonic() - started < 5
    finally:
        os.kill(pid, signal.SIGCONT)
    hung = await cache_counts(session, gw)
    assert hung["error"] > 0
    killer = asyncio.get_running_loop().run_in_executor(None, redis_server.stop)
    await asyncio.gather(burst("a"), burst("b"), killer)
    await burst("c")
    assert (await cache_counts(session, gw))["error"] > hung["error"]


async def test_a_redis_down_at_start_is_an_outage_not_a_crash(
        session: aiohttp.ClientSession, registry_upstream: Upstream, redis_server: RedisServer,
        tmp_path: Path) -> None:
    url = redis_server.url
    redis_server.stop()
    with start_gateway(tmp_path / "gateway", registry_upstream.url, redis_url=url) as gw:
        await check_expected(session, gw)
        assert "does not answer" in gw.log_text()
        redis_server.start()
        deadline = time.monotonic() + 10
        n = 0
        while not redis_server.client().keys("rg:d:*"):
            assert time.monotonic() < deadline, "the gateway did not start using Redis"
            n += 1
            await status(session, gw, f"/v2/myteam/late{n}/tags/list", basic("alice"))
            await asyncio.sleep(0.05)
