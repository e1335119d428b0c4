"""Remembered directory identities: a verified login reused for `cache_ttl` without a bind.

Keyed by an HMAC of (username, password) with a secret derived from the token key, so the store
never holds a password or anything that tests one offline. In process only for now: the Redis
store shared by replicas (issue 12, step 2) is not built yet.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from dataclasses import dataclass
from typing import Protocol

from gateway.state.ttlmap import TTLMap

MAX_ENTRIES = 10_000


@dataclass(frozen=True)
class Remembered:
    name: str
    groups: frozenset[str]
    binding: str
    checked_at: float  # wall clock, when the directory last vouched for it


class IdentityMemory(Protocol):
    def key(self, generation: int, username: str, password: str) -> bytes: ...

    def get(self, key: bytes) -> Remembered | None: ...

    def put(self, key: bytes, identity: Remembered, ttl: float) -> None: ...

    def forget_all(self) -> None: ...


class MemoryIdentities:
    """This process's remembered identities (lost on restart, which only costs a bind)."""

    def __init__(self, secret: bytes, max_entries: int = MAX_ENTRIES) -> None:
        self._secret = secret
        self._entries: TTLMap[bytes, Remembered] = TTLMap(max_entries)

    def key(self, generation: int, username: str, password: str) -> bytes:
        # Length-prefixed parts: ("ab", "c") and ("a", "bc") never share a key.
        parts = (str(generation).encode(), username.encode("utf-8", "surrogatepass"),
                 password.encode("utf-8", "surrogatepass"))
        message = b"".join(len(p).to_bytes(4, "big") + p for p in parts)
        return hmac.new(self._secret, message, hashlib.sha256).digest()

    def get(self, key: bytes) -> Remembered | None:
        return self._entries.get(key)

    def put(self, key: bytes, identity: Remembered, ttl: float) -> None:
        if ttl > 0:
            self._entries.put(key, identity, ttl)

    def forget_all(self) -> None:
        self._entries.clear()


def remembered(name: str, groups: frozenset[str], binding: str) -> Remembered:
    return Remembered(name, groups, binding, time.time())
