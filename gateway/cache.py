"""Decision caches: one protocol and the in-process LRU (gateway/redis_decisions.py adds Redis)."""

from __future__ import annotations

import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import NamedTuple, Protocol


class DecisionKey(NamedTuple):
    """A tuple, so hashing and comparing it on the hot path happen in C."""

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


@dataclass(frozen=True, slots=True)
class Lookup:
    """A cache answer. `failed`: a shared level could not answer, so the caller decides from the
    config (a miss that is counted as an error)."""

    value: CachedDecision | None
    failed: bool = False


MISS = Lookup(None)


class DecisionCache(Protocol):
    """Keys carry the config fingerprint, so entries never need invalidating, only expire."""

    async def get(self, key: DecisionKey) -> Lookup: ...

    async def put(self, key: DecisionKey, value: CachedDecision) -> None: ...


class MemoryDecisionCache:
    """A bounded LRU with a TTL per entry."""

    def __init__(self, ttl: float, max_entries: int) -> None:
        self.ttl = ttl
        self.max_entries = max_entries
        self._entries: OrderedDict[DecisionKey, tuple[float, CachedDecision]] = OrderedDict()

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
        self._entries[key] = (time.monotonic() + (self.ttl if ttl is None else ttl), value)
        self._entries.move_to_end(key)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)

    def clear(self) -> None:
        self._entries.clear()

    async def get(self, key: DecisionKey) -> Lookup:
        value = self.get_now(key)
        return MISS if value is None else Lookup(value)

    async def put(self, key: DecisionKey, value: CachedDecision) -> None:
        self.put_now(key, value)

    def __len__(self) -> int:
        return len(self._entries)
