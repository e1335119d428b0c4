"""Decision caches: one protocol; an in-process LRU, optionally in front of Redis."""

from __future__ import annotations

import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class DecisionKey:
    fingerprint: str
    subject: str  # "" for anonymous
    repository: str
    action: str

    def redis_key(self) -> str:
        # '\x1f' cannot occur in a fingerprint, account name, repository name or action.
        return "rg:d:" + "\x1f".join((self.fingerprint, self.subject, self.repository, self.action))


@dataclass(frozen=True, slots=True)
class CachedDecision:
    allowed: bool
    rule_index: int | None  # None: no rule matched

    def encode(self) -> str:
        return f"{int(self.allowed)}:{'' if self.rule_index is None else self.rule_index}"

    @classmethod
    def decode(cls, value: str) -> CachedDecision | None:
        allowed, sep, index = value.partition(":")
        if not sep or allowed not in ("0", "1") or (index and not index.isdigit()):
            return None
        return cls(allowed == "1", int(index) if index else None)


class DecisionCache(Protocol):
    async def get(self, key: DecisionKey) -> CachedDecision | None: ...

    async def put(self, key: DecisionKey, value: CachedDecision) -> None: ...

    @property
    def errors(self) -> int:
        """Failed operations on a shared level since start (0 for in-process caches)."""
        ...


class MemoryDecisionCache:
    """A bounded LRU with a TTL per entry."""

    def __init__(self, ttl: float, max_entries: int) -> None:
        self._ttl = ttl
        self._max = max_entries
        self._entries: OrderedDict[DecisionKey, tuple[float, CachedDecision]] = OrderedDict()

    @property
    def errors(self) -> int:
        return 0

    def get_now(self, key: DecisionKey) -> CachedDecision | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        if entry[0] < time.monotonic():
            del self._entries[key]
            return None
        self._entries.move_to_end(key)
        return entry[1]

    def put_now(self, key: DecisionKey, value: CachedDecision, ttl: float | None = None) -> None:
        self._entries[key] = (time.monotonic() + (self._ttl if ttl is None else ttl), value)
        self._entries.move_to_end(key)
        if len(self._entries) > self._max:
            self._entries.popitem(last=False)

    async def get(self, key: DecisionKey) -> CachedDecision | None:
        return self.get_now(key)

    async def put(self, key: DecisionKey, value: CachedDecision) -> None:
        self.put_now(key, value)

    def __len__(self) -> int:
        return len(self._entries)
