"""Redis for the shared state: the pooled client, a deadline per call, and a circuit breaker.

Every Redis call of the stores goes through `RedisLink.run`: a down or slow Redis costs one
bounded call per backoff, is counted, and makes the caller fall back to in-process state.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from enum import Enum
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import Sentinel
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError

from gateway.config.schema import CacheSettings, split_host_port
from gateway.metrics import Metrics

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
        [split_host_port(h) for h in sentinel_settings.hosts],
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


class BreakerState(Enum):
    CLOSED = "closed"  # Redis is used
    OPEN = "open"  # Redis is skipped until the backoff ends
    PROBING = "probing"  # one call is trying Redis again; the others still skip it


class CircuitBreaker:
    """Closed -> open on a failure; after the backoff one call probes; its success closes again.

    A down Redis then costs one failed call per backoff (per process) instead of a timeout on
    every request. Failures of calls that were already in flight when it opened count once.
    """

    def __init__(self, base: float = 0.25, cap: float = 2.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._base = base
        self._cap = cap
        self._clock = clock
        self.state = BreakerState.CLOSED
        self._backoff = 0.0
        self._retry_at = 0.0

    def allow(self) -> bool:
        """May this call use Redis? After the backoff, exactly one call gets to probe."""
        if self.state is BreakerState.CLOSED:
            return True
        now = self._clock()
        if now < self._retry_at:
            return False
        # A probe that never reported (its request was cancelled) is replaced after a backoff.
        self.state = BreakerState.PROBING
        self._retry_at = now + self._backoff
        return True

    def success(self) -> bool:
        """Redis answered; True if that closed an open breaker."""
        reopened = self.state is not BreakerState.CLOSED
        self.state = BreakerState.CLOSED
        self._backoff = 0.0
        return reopened

    def failure(self) -> bool:
        """Redis failed; True if that opened a closed breaker."""
        if self.state is BreakerState.OPEN:
            return False  # an in-flight call from before; already counted
        opened = self.state is BreakerState.CLOSED
        self._backoff = self._base if opened else min(self._backoff * 2, self._cap)
        self._retry_at = self._clock() + self._backoff
        self.state = BreakerState.OPEN
        return opened

    @property
    def backoff(self) -> float:
        return self._backoff


T = TypeVar("T")
Operation = Callable[[Redis], Awaitable[T]]

# The socket timeouts bound each read and connect; this bounds the whole call (a retry, a
# Sentinel lookup of the primary), so a request never waits on Redis longer than this many of them.
DEADLINE_TIMEOUTS = 4


class RedisUnavailable(Exception):
    """Redis was skipped (breaker open) or failed; the caller serves from in-process state."""


class RedisLink:
    """The shared client (attached by `open_stores`) behind a circuit breaker."""

    def __init__(self, metrics: Metrics, timeout: float,
                 breaker: CircuitBreaker | None = None) -> None:
        self._metrics = metrics
        self._deadline = timeout * DEADLINE_TIMEOUTS
        self.breaker = breaker or CircuitBreaker()
        self.client: Redis | None = None

    async def run(self, store: str | None, operation: Operation[T]) -> T:
        """`operation(client)`, or RedisUnavailable; `store` labels state_fallbacks_total."""
        client = self.client
        if client is None or not self.breaker.allow():
            self._count_fallback(store)
            raise RedisUnavailable(store)
        try:
            async with asyncio.timeout(self._deadline):
                result = await operation(client)
        except UnicodeDecodeError:
            # A value no gateway wrote (ours are text): this call is served from in-process
            # state, as any value that fails its MAC is a miss; Redis itself answered.
            self.breaker.success()
            self._count_fallback(store)
            log.warning("Redis holds a value that is not UTF-8 (not written by a gateway)")
            raise RedisUnavailable(store) from None
        except (RedisError, OSError, TimeoutError) as exc:
            self._count_fallback(store)
            if self.breaker.failure():
                log.warning("Redis failed (%s: %s); serving from the config and in-process "
                            "state, retrying in %.2fs", type(exc).__name__, exc,
                            self.breaker.backoff)
            raise RedisUnavailable(store) from exc
        if self.breaker.success():
            log.info("Redis answers again; using it")
        return result

    def _count_fallback(self, store: str | None) -> None:
        if store is not None:
            self._metrics.redis_fallbacks.labels(store).inc()

    async def ping(self) -> bool:
        try:
            await self.run(None, lambda client: client.ping())
        except RedisUnavailable:
            return False
        return True
