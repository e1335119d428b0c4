"""The pooled redis.asyncio client, from `cache.redis_url` or `cache.sentinel`, opened and closed once."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import Sentinel
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError

from gateway.config import CacheSettings

log = logging.getLogger("registry_gateway.redis")

# Enough for a busy process; past it redis-py raises, which counts as an outage for that call.
MAX_CONNECTIONS = 256


def uses_redis(settings: CacheSettings) -> bool:
    return settings.redis_url is not None or settings.sentinel is not None


def describe(settings: CacheSettings) -> str:
    """Where Redis is, for logs: never the password of a redis:// URL."""
    if settings.sentinel is not None:
        hosts = ",".join(settings.sentinel.hosts)
        return f"sentinel {hosts} service {settings.sentinel.service_name!r}"
    parts = urlsplit(settings.redis_url or "")
    netloc = parts.hostname or ""
    if parts.port:
        netloc += f":{parts.port}"
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def _connection_options(settings: CacheSettings) -> dict[str, Any]:
    timeout = settings.redis_timeout
    return {
        "socket_timeout": timeout,
        "socket_connect_timeout": timeout,
        # redis-py retries 3 times with a backoff of up to seconds by default; a request must
        # not wait for that. One immediate retry replaces a pooled connection a restart broke.
        "retry": Retry(NoBackoff(), 1, supported_errors=(RedisConnectionError,)),
        "decode_responses": True,
        "client_name": "registry-gateway",
        "max_connections": MAX_CONNECTIONS,
    }


def _host_port(value: str) -> tuple[str, int]:
    host, _, port = value.rpartition(":")
    return host.strip("[]"), int(port)


@asynccontextmanager
async def connect(settings: CacheSettings) -> AsyncIterator[Redis]:
    """A client that connects lazily: a Redis that is down at start is an outage, not a crash."""
    options = _connection_options(settings)
    sentinel_settings = settings.sentinel
    if sentinel_settings is None:
        assert settings.redis_url is not None, "connect() needs cache.redis_url or cache.sentinel"
        client = Redis.from_url(settings.redis_url, **options)
        try:
            yield client
        finally:
            await client.aclose()
        return
    timeout = settings.redis_timeout
    sentinel = Sentinel(  # type: ignore[no-untyped-call]  # redis-py leaves it unannotated
        [_host_port(h) for h in sentinel_settings.hosts],
        sentinel_kwargs={"socket_timeout": timeout, "socket_connect_timeout": timeout,
                         "retry": Retry(NoBackoff(), 0), "decode_responses": True},
    )
    client = sentinel.master_for(sentinel_settings.service_name, db=sentinel_settings.db,
                                 **options)
    try:
        yield client
    finally:
        await client.aclose()
        for connection in sentinel.sentinels:
            await connection.aclose()
