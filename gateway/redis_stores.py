"""Lockout counters and upload bindings in Redis, shared by replicas; in-process while it is down."""

from __future__ import annotations

import contextlib
import hashlib
import math

from gateway.config import LockoutSettings
from gateway.redis_link import RedisLink, RedisUnavailable
from gateway.stores import (
    STRIKE_MEMORY_SECONDS,
    UPLOAD_BINDING_SECONDS,
    MemoryLockoutStore,
    MemoryUploadBindings,
)

# One atomic step per failed attempt, on Redis's clock so replicas agree on the window.
# KEYS: failures (zset attempt -> ms), lock (its TTL is the cooldown), strikes (lockouts so far).
# ARGV: attempt, window s, max failures, cooldown s, max cooldown s, strike memory s.
# Returns the cooldown in seconds if this attempt starts a lockout, else 0.
RECORD_FAILURE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local window = tonumber(ARGV[2]) * 1000
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
if redis.call('ZADD', KEYS[1], 'NX', now, ARGV[1]) == 0 then
  return 0
end
redis.call('PEXPIRE', KEYS[1], window)
if redis.call('ZCARD', KEYS[1]) < tonumber(ARGV[3]) then
  return 0
end
redis.call('DEL', KEYS[1])
local strikes = redis.call('INCR', KEYS[3])
redis.call('EXPIRE', KEYS[3], ARGV[6])
local cooldown = math.min(tonumber(ARGV[4]) * 2 ^ (strikes - 1), tonumber(ARGV[5]))
redis.call('SET', KEYS[2], strikes, 'PX', math.floor(cooldown * 1000))
return math.floor(cooldown)
"""


def lockout_keys(key: str) -> list[str]:
    """Hashed (no usernames or addresses in Redis), one hash tag so Cluster keeps them together."""
    tag = hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()[:32]
    return [f"rg:l:{{{tag}}}:f", f"rg:l:{{{tag}}}:lock", f"rg:l:{{{tag}}}:n"]


class RedisLockoutStore:
    """The LockoutStore semantics of MemoryLockoutStore, for every replica at once."""

    def __init__(self, link: RedisLink, settings: LockoutSettings) -> None:
        self._link = link
        self.settings = settings

    async def locked_for(self, key: str) -> int | None:
        lock = lockout_keys(key)[1]
        left = await self._link.run("lockout", lambda client: client.pttl(lock))
        return math.ceil(left / 1000) if isinstance(left, int) and left > 0 else None

    async def record_failure(self, key: str, attempt: str) -> int | None:
        s = self.settings
        args: list[str | int] = [attempt, s.window, s.max_failures, s.cooldown, s.max_cooldown,
                STRIKE_MEMORY_SECONDS]
        keys = lockout_keys(key)
        cooldown = await self._link.run(
            "lockout", lambda client: client.register_script(RECORD_FAILURE)(keys, args))
        return int(cooldown) or None


class SharedLockoutStore:
    """Redis when it answers, the in-process store while it does not.

    A lockout started in-process during an outage still holds after Redis returns.
    """

    def __init__(self, redis: RedisLockoutStore, memory: MemoryLockoutStore) -> None:
        self.redis = redis
        self.memory = memory

    async def locked_for(self, key: str) -> int | None:
        local = await self.memory.locked_for(key)
        if local is not None:
            return local
        try:
            return await self.redis.locked_for(key)
        except RedisUnavailable:
            return None

    async def record_failure(self, key: str, attempt: str) -> int | None:
        try:
            return await self.redis.record_failure(key, attempt)
        except RedisUnavailable:
            return await self.memory.record_failure(key, attempt)


def _upload_key(upload_id: str) -> str:
    return f"rg:u:{upload_id}"


class SharedUploadBindings:
    """Bindings in Redis (any replica may get the next PATCH) and in-process.

    The in-process copy lets uploads this replica started go on through a Redis outage.
    """

    def __init__(self, link: RedisLink, memory: MemoryUploadBindings) -> None:
        self._link = link
        self.memory = memory

    async def bind(self, upload_id: str, owner: str) -> None:
        await self.memory.bind(upload_id, owner)
        key = _upload_key(upload_id)
        with contextlib.suppress(RedisUnavailable):  # this replica still knows it
            await self._link.run(
                "uploads", lambda client: client.set(key, owner, ex=UPLOAD_BINDING_SECONDS))

    async def owner(self, upload_id: str) -> str | None:
        key = _upload_key(upload_id)
        try:
            found = await self._link.run("uploads", lambda client: client.get(key))
        except RedisUnavailable:
            found = None
        if isinstance(found, str):
            return found
        return await self.memory.owner(upload_id)

    async def forget(self, upload_id: str) -> None:
        await self.memory.forget(upload_id)
        key = _upload_key(upload_id)
        with contextlib.suppress(RedisUnavailable):  # the binding expires on its own
            await self._link.run("uploads", lambda client: client.delete(key))
