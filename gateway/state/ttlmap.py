"""One bounded map whose entries expire: every in-process cache and store is built on it."""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class TTLMap(Generic[K, V]):
    """Least recently used entries go first past `max_entries`; expired ones are never returned.

    `clock` is the time deadlines are read against (monotonic for caches, wall clock where a
    deadline comes from outside, such as a session's expiry).
    """

    def __init__(self, max_entries: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.max_entries = max_entries
        self._clock = clock
        self._entries: OrderedDict[K, tuple[float, V]] = OrderedDict()

    def now(self) -> float:
        return self._clock()

    def get(self, key: K, now: float | None = None) -> V | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        if entry[0] <= (self._clock() if now is None else now):
            del self._entries[key]
            return None
        self._entries.move_to_end(key)
        return entry[1]

    def put(self, key: K, value: V, ttl: float, max_entries: int | None = None) -> None:
        """Keep `value` for `ttl` seconds from now; `max_entries` (a reloadable bound) wins."""
        self.put_until(key, value, self._clock() + ttl, max_entries)

    def put_until(self, key: K, value: V, deadline: float, max_entries: int | None = None) -> None:
        if max_entries is not None:
            self.max_entries = max_entries
        self._entries[key] = (deadline, value)
        self._entries.move_to_end(key)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)

    def pop(self, key: K) -> V | None:
        entry = self._entries.pop(key, None)
        return entry[1] if entry is not None else None

    def clear(self) -> None:
        self._entries.clear()

    def __contains__(self, key: object) -> bool:
        return self.get(key) is not None  # type: ignore[arg-type]

    def __len__(self) -> int:
        return len(self._entries)
