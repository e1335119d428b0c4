"""Every Redis call of the stores goes through here: a deadline, the breaker, fallbacks counted."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

from redis.asyncio import Redis
from redis.exceptions import RedisError

from gateway.metrics import Metrics
from gateway.redis_breaker import CircuitBreaker

log = logging.getLogger("registry_gateway.redis")

T = TypeVar("T")
Operation = Callable[[Redis], Awaitable[T]]

# The socket timeouts bound each read and connect; this bounds the whole call (a retry, a
# Sentinel lookup of the primary), so a request never waits on Redis longer than this many of them.
DEADLINE_TIMEOUTS = 4


class RedisUnavailable(Exception):
    """Redis was skipped (breaker open) or failed; the caller serves from in-process state."""


class RedisLink:
    """The shared client (attached by `open_shared_state`) behind a circuit breaker."""

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
