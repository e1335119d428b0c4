"""Remembered directory identities: a verified login reused for `cache_ttl` without a bind.

Two kinds of entry, both under keys that are HMACs with a secret derived from the token key (so
replicas agree, no key names a user, and nothing stored tests a password offline):

- by subject: the identity the directory vouched for (name, groups, password-change binding,
  when it was checked);
- by credentials (an HMAC of the generation, username and password): which subject, with which
  binding, those credentials were checked for. A login with a new password that moves the
  binding retires every other password's entry.

The generation is a hash of the `directory` settings, so a reload that changes them forgets
everything on every replica at once. `checked_at` (wall clock) bounds each entry's life too, so
an entry older than `cache_ttl` is never used whatever store returned it. This module holds the
keys and the in-process form; identities_redis.py the Redis form shared by replicas.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from dataclasses import dataclass
from typing import Protocol

from gateway.state.ttlmap import TTLMap

MAX_ENTRIES = 10_000
CLOCK_SKEW = 5.0  # seconds a replica's checked_at may lie in this one's future


@dataclass(frozen=True)
class Remembered:
    name: str
    groups: frozenset[str]
    binding: str
    checked_at: float  # wall clock, when the directory last vouched for it


@dataclass(frozen=True)
class CredentialLink:
    """What a pair of credentials was checked for: the subject, its binding, when."""

    name: str
    binding: str
    checked_at: float


def fresh(checked_at: float, ttl: float, now: float) -> bool:
    return now - ttl < checked_at <= now + CLOCK_SKEW


def _digest(secret: bytes, *parts: str) -> str:
    # Length-prefixed parts: ("ab", "c") and ("a", "bc") never share a key.
    encoded = (p.encode("utf-8", "surrogatepass") for p in parts)
    message = b"".join(len(p).to_bytes(4, "big") + p for p in encoded)
    return hmac.new(secret, message, hashlib.sha256).hexdigest()


class IdentityKeys:
    """The store keys of both kinds of entry (hex HMACs: no name or password shows)."""

    def __init__(self, secret: bytes) -> None:
        self._secret = secret

    def subject(self, generation: str, name: str) -> str:
        return _digest(self._secret, "subject", generation, name)

    def credentials(self, generation: str, username: str, password: str) -> str:
        return _digest(self._secret, "credentials", generation, username, password)


class IdentityMemory(Protocol):
    async def recall(self, generation: str, username: str, password: str,
                     ttl: float) -> Remembered | None:
        """The identity these credentials were checked for within `ttl`, if remembered."""
        ...

    async def known(self, generation: str, name: str, ttl: float) -> Remembered | None:
        """The subject `name` as checked within `ttl`, whatever credentials were used."""
        ...

    async def remember(self, generation: str, username: str, password: str,
                       identity: Remembered, ttl: float) -> None: ...


def usable(link: CredentialLink | None, identity: Remembered | None, ttl: float,
           now: float) -> Remembered | None:
    """The identity a credential link leads to, if both are fresh and agree."""
    if link is None or identity is None or identity.name != link.name \
            or identity.binding != link.binding:
        return None
    if not fresh(link.checked_at, ttl, now) or not fresh(identity.checked_at, ttl, now):
        return None
    return identity


class MemoryIdentities:
    """This process's remembered identities (lost on restart, which only costs a bind)."""

    def __init__(self, keys: IdentityKeys, max_entries: int = MAX_ENTRIES) -> None:
        self.keys = keys
        self._subjects: TTLMap[str, Remembered] = TTLMap(max_entries, time.time)
        self._links: TTLMap[str, CredentialLink] = TTLMap(max_entries, time.time)

    async def recall(self, generation: str, username: str, password: str,
                     ttl: float) -> Remembered | None:
        link = self._links.get(self.keys.credentials(generation, username, password))
        return self.follow(generation, link, ttl)

    def follow(self, generation: str, link: CredentialLink | None,
               ttl: float) -> Remembered | None:
        if link is None:
            return None
        identity = self._subjects.get(self.keys.subject(generation, link.name))
        return usable(link, identity, ttl, time.time())

    async def known(self, generation: str, name: str, ttl: float) -> Remembered | None:
        identity = self._subjects.get(self.keys.subject(generation, name))
        return identity if identity is not None and fresh(
            identity.checked_at, ttl, time.time()) else None

    async def remember(self, generation: str, username: str, password: str,
                       identity: Remembered, ttl: float) -> None:
        self.put_link(self.keys.credentials(generation, username, password),
                      CredentialLink(identity.name, identity.binding, identity.checked_at), ttl)
        self.put_subject(self.keys.subject(generation, identity.name), identity, ttl)

    def put_link(self, key: str, link: CredentialLink, ttl: float) -> None:
        if ttl > 0:
            self._links.put_until(key, link, link.checked_at + ttl)

    def put_subject(self, key: str, identity: Remembered, ttl: float) -> None:
        if ttl > 0:
            self._subjects.put_until(key, identity, identity.checked_at + ttl)


def remembered(name: str, groups: frozenset[str], binding: str) -> Remembered:
    return Remembered(name, groups, binding, time.time())
