"""State that is not derived from the config: lockout counters and upload bindings (in-process)."""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Protocol

from gateway.config import LockoutSettings

STRIKE_MEMORY_SECONDS = 86400
UPLOAD_BINDING_SECONDS = 86400


class LockoutStore(Protocol):
    async def locked_for(self, key: str) -> int | None:
        """Seconds left of a running lockout for `key`, or None."""
        ...

    async def record_failure(self, key: str, attempt: str) -> int | None:
        """Count a failed attempt (once per distinct attempt); seconds locked if this locks."""
        ...


class UploadBindings(Protocol):
    async def bind(self, upload_id: str, owner: str) -> None: ...

    async def owner(self, upload_id: str) -> str | None: ...

    async def forget(self, upload_id: str) -> None: ...


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
    def __init__(self, settings: LockoutSettings, max_keys: int = 100_000) -> None:
        self.settings = settings
        self._max = max_keys
        self._entries: OrderedDict[str, _LockoutEntry] = OrderedDict()

    async def locked_for(self, key: str) -> int | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        left = entry.locked_until - time.time()
        return math.ceil(left) if left > 0 else None

    async def record_failure(self, key: str, attempt: str) -> int | None:
        now = time.time()
        entry = self._entries.setdefault(key, _LockoutEntry())
        self._entries.move_to_end(key)
        if len(self._entries) > self._max:
            self._entries.popitem(last=False)
        window_start = now - self.settings.window
        entry.failures = [t for t in entry.failures if t > window_start]
        entry.attempts = {a: t for a, t in entry.attempts.items() if t > window_start}
        if attempt in entry.attempts:
            return None  # the same attempt retried by another method counts once
        entry.attempts[attempt] = now
        entry.failures.append(now)
        if len(entry.failures) < self.settings.max_failures:
            return None
        if now - entry.last_strike > STRIKE_MEMORY_SECONDS:
            entry.strikes = 0
        entry.strikes += 1
        entry.last_strike = now
        cooldown = cooldown_for(self.settings, entry.strikes)
        entry.locked_until = now + cooldown
        entry.failures.clear()
        entry.attempts.clear()
        return cooldown


class MemoryUploadBindings:
    def __init__(self, max_entries: int = 100_000) -> None:
        self._max = max_entries
        self._owners: OrderedDict[str, tuple[float, str]] = OrderedDict()

    async def bind(self, upload_id: str, owner: str) -> None:
        self._owners[upload_id] = (time.time() + UPLOAD_BINDING_SECONDS, owner)
        self._owners.move_to_end(upload_id)
        if len(self._owners) > self._max:
            self._owners.popitem(last=False)

    async def owner(self, upload_id: str) -> str | None:
        entry = self._owners.get(upload_id)
        if entry is None or entry[0] < time.time():
            return None
        return entry[1]

    async def forget(self, upload_id: str) -> None:
        self._owners.pop(upload_id, None)
