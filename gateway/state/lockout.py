"""Failed-login lockout: the protocol, in-process counters, Redis shared by replicas, fallback.

Settings come with every call (from the request's config snapshot), so a reload applies at once.
"""

from __future__ import annotations

import hashlib
import math
import time
from dataclasses import dataclass, field
from typing import Protocol

from gateway.config.schema import LockoutSettings
from gateway.state.redis import RedisLink, RedisUnavailable
from gateway.state.ttlmap import TTLMap

STRIKE_MEMORY_SECONDS = 86400
MAX_KEYS = 100_000


class LockoutStore(Protocol):
    async def locked_for(self, key: str) -> int | None:
        """Seconds left of a running lockout for `key`, or None."""
        ...

    async def record_failure(self, key: str, attempt: str, settings: LockoutSettings) -> int | None:
        """Count a failed attempt (once per distinct attempt); seconds locked if this locks."""
        ...


def cooldown_for(settings: LockoutSettings, strikes: int) -> int:
    """The cooldown doubles with every lockout of the same key, up to `max_cooldown`."""
    return int(min(settings.cooldown << max(strikes - 1, 0), settings.max_cooldown))


@dataclass
class _LockoutEntry:
    failures: list[float] = field(default_factory=list)
    attempts: dict[str, float] = field(default_factory=dict)
    locked_until: float = 0.0
    strikes: int = 0
    last_strike: float = 0.0


class MemoryLockoutStore:
    """Per process; an entry idle for longer than the strike memory is forgotten."""

    def __init__(self, max_keys: int = MAX_KEYS) -> None:
        self._entries: TTLMap[str, _LockoutEntry] = TTLMap(max_keys)

    async def locked_for(self, key: str) -> int | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        left = entry.locked_until - time.time()
        return math.ceil(left) if left > 0 else None

    async def record_failure(self, key: str, attempt: str, settings: LockoutSettings) -> int | None:
        now = time.time()
        entry = self._entries.get(key) or _LockoutEntry()
        self._entries.put(key, entry, STRIKE_MEMORY_SECONDS)
        window_start = now - settings.window
        entry.failures = [t for t in entry.failures if t > window_start]
        entry.attempts = {a: t for a, t in entry.attempts.items() if t > window_start}
        if attempt in entry.attempts:
            return None  # the same attempt retried by another method counts once
        entry.attempts[attempt] = now
        entry.failures.append(now)
        if len(entry.failures) < settings.max_failures:
            return None
        if now - entry.last_strike > STRIKE_MEMORY_SECONDS:
            entry.strikes = 0
        entry.strikes += 1
        entry.last_strike = now
        cooldown = cooldown_for(settings, entry.strikes)
        entry.locked_until = now + cooldown
        entry.failures.clear()
        entry.attempts.clear()
        return cooldown


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

    def __init__(self, link: RedisLink) -> None:
        self._link = link

    async def locked_for(self, key: str) -> int | None:
        lock = lockout_keys(key)[1]
        left = await self._link.run("lockout", lambda client: client.pttl(lock))
        return math.ceil(left / 1000) if isinstance(left, int) and left > 0 else None

    async def record_failure(self, key: str, attempt: str, settings: LockoutSettings) -> int | None:
        s = settings
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

    async def record_failure(self, key: str, attempt: str, settings: LockoutSettings) -> int | None:
        try:
            return await self.redis.record_failure(key, attempt, settings)
        except RedisUnavailable:
            return await self.memory.record_failure(key, attempt, settings)
