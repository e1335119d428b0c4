"""`cache.sentinel`: the gateway finds the primary through a real Sentinel, and follows a failover."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiohttp
import pytest
import redis
from support import ManagedProcess, RedisServer, Upstream, start_redis
from support.credentials import basic
from support.http_api import cache_counts, start_gateway, status
from support.procs import find_program, start_on_free_port

SERVICE_NAME = "gateway-cache"


class SentinelServer:
    """One Sentinel watching `primary`, told about `replica` so it need not wait to discover it."""

    def __init__(self, workdir: Path, port: int, primary: RedisServer,
                 replica: RedisServer) -> None:
        self.port = port
        workdir.mkdir(parents=True, exist_ok=True)
        config = workdir / "sentinel.conf"  # Sentinel rewrites it, so it is its own file
        config.write_text(
            f"port {port}\nbind 127.0.0.1\ndir {workdir}\n"
            f"sentinel monitor {SERVICE_NAME} 127.0.0.1 {primary.port} 1\n"
            f"sentinel known-replica {SERVICE_NAME} 127.0.0.1 {replica.port}\n"
            f"sentinel down-after-milliseconds {SERVICE_NAME} 500\n"
            f"sentinel failover-timeout {SERVICE_NAME} 5000\n")
        self.process = ManagedProcess(
            "redis-sentinel", [find_program("redis-server"), str(config), "--sentinel"],
            log_path=workdir / "sentinel.log", cwd=workdir)
        self.process.start()
        self.process.wait_ready(self._ready, timeout=10)

    def _ready(self) -> bool:
        with socket.create_connection(("127.0.0.1", self.port), timeout=1.0) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(64).startswith(b"+PONG")

    def client(self) -> redis.Redis:
        return redis.Redis(port=self.port, decode_responses=True, socket_timeout=5)


@pytest.fixture
def replica(redis_server: RedisServer, tmp_path: Path) -> Iterator[RedisServer]:
    server = start_redis(tmp_path / "replica")
    server.client().replicaof("127.0.0.1", redis_server.port)
    yield server
    server.close()


@pytest.fixture
def sentinel(redis_server: RedisServer, replica: RedisServer,
             tmp_path: Path) -> Iterator[SentinelServer]:
    server = start_on_free_port(lambda port: SentinelServer(tmp_path / "sentinel", port,
                                                            redis_server, replica))
    yield server
    server.process.stop()


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as client:
        yield client


async def test_the_primary_is_found_through_sentinel_and_followed_on_failover(
        session: aiohttp.ClientSession, registry_upstream: Upstream, redis_server: RedisServer,
        replica: RedisServer, sentinel: SentinelServer, tmp_path: Path) -> None:
    watcher = sentinel.client()
    cache = {"ttl": 60, "sentinel": {"hosts": [f"127.0.0.1:{sentinel.port}"],
                                     "service_name": SERVICE_NAME}}
    with start_gateway(tmp_path / "gateway", registry_upstream.url, cache=cache) as gw:
        assert await status(session, gw, "/v2/myteam/s1/tags/list", basic("alice")) == 404
        assert redis_server.client().keys("rg:d:*")

        redis_server.stop()  # the primary dies; Sentinel promotes the replica
        n = 0
        deadline = time.monotonic() + 20
        while not replica.client().keys("rg:d:*\x1fmyteam/after*"):
            assert time.monotonic() < deadline, "the gateway did not follow the failover"
            n += 1
            assert await status(session, gw, f"/v2/myteam/after{n}/tags/list",
                                basic("alice")) == 404  # meanwhile, from the config
            await asyncio.sleep(0.1)
        address = watcher.sentinel_get_master_addr_by_name(SERVICE_NAME)
        assert int(address[1]) == replica.port
        counts = await cache_counts(session, gw)
        assert counts["error"] > 0 and counts["miss"] > 0
