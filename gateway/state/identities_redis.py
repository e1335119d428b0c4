"""Remembered directory identities in Redis, shared by replicas, with the in-process form first.

Every value carries an HMAC of its key and content with a secret derived from the token key:
whoever can write to Redis cannot mint an identity, add a group or move an entry to another key;
such a value is a miss, and the directory is asked. While Redis fails or the breaker skips it,
the in-process form alone serves (a miss costs a bind, never a 5xx or a grant).
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import time
from typing import Any

from gateway.state.identities import (
    CredentialLink,
    IdentityKeys,
    MemoryIdentities,
    Remembered,
    fresh,
    usable,
)
from gateway.state.redis import RedisLink, RedisUnavailable
from gateway.state.signed import ValueSigner

STORE = "identities"
SUBJECT_PREFIX = "rg:i:s:"
LINK_PREFIX = "rg:i:c:"


def _decode_json(raw: str) -> dict[str, Any] | None:
    try:
        value = json.loads(raw)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def decode_subject(raw: str) -> Remembered | None:
    value = _decode_json(raw)
    if value is None:
        return None
    name, groups, binding, checked = (value.get(k) for k in ("n", "g", "b", "t"))
    if not isinstance(name, str) or not isinstance(binding, str) \
            or not isinstance(checked, (int, float)) or not isinstance(groups, list) \
            or not all(isinstance(g, str) for g in groups):
        return None
    return Remembered(name, frozenset(groups), binding, float(checked))


def decode_link(raw: str) -> CredentialLink | None:
    value = _decode_json(raw)
    if value is None:
        return None
    name, binding, checked = (value.get(k) for k in ("n", "b", "t"))
    if not isinstance(name, str) or not isinstance(binding, str) \
            or not isinstance(checked, (int, float)):
        return None
    return CredentialLink(name, binding, float(checked))


def encode_subject(identity: Remembered) -> str:
    return json.dumps({"n": identity.name, "g": sorted(identity.groups), "b": identity.binding,
                       "t": identity.checked_at}, separators=(",", ":"))


def encode_link(link: CredentialLink) -> str:
    return json.dumps({"n": link.name, "b": link.binding, "t": link.checked_at},
                      separators=(",", ":"))


class RedisIdentities:
    """Both kinds of entry in Redis; each value is `JSON:TAG`."""

    def __init__(self, link: RedisLink, secret: bytes) -> None:
        self._link = link
        self._signer = ValueSigner(hmac.new(secret, b"redis value tag", hashlib.sha256).digest())

    async def _get(self, name: str) -> str | None:
        """The verified content under `name`; None if absent or not ours. RedisUnavailable."""
        raw: object = await self._link.run(STORE, lambda client: client.get(name))
        return self._signer.open(name, raw)

    async def link(self, key: str) -> CredentialLink | None:
        encoded = await self._get(LINK_PREFIX + key)
        return None if encoded is None else decode_link(encoded)

    async def subject(self, key: str) -> Remembered | None:
        encoded = await self._get(SUBJECT_PREFIX + key)
        return None if encoded is None else decode_subject(encoded)

    async def put(self, link_key: str, link: CredentialLink, subject_key: str,
                  identity: Remembered, ttl: int) -> None:
        values = {LINK_PREFIX + link_key: encode_link(link),
                  SUBJECT_PREFIX + subject_key: encode_subject(identity)}
        signed = {name: self._signer.sign(name, encoded) for name, encoded in values.items()}

        async def write(client: Any) -> None:
            async with client.pipeline(transaction=False) as pipe:
                for name, value in signed.items():
                    pipe.set(name, value, ex=ttl)
                await pipe.execute()

        await self._link.run(STORE, write)


class SharedIdentities:
    """In process first (a hit never touches Redis), then Redis; a login fills both."""

    def __init__(self, memory: MemoryIdentities, shared: RedisIdentities) -> None:
        self.memory = memory
        self.shared = shared

    @property
    def keys(self) -> IdentityKeys:
        return self.memory.keys

    async def recall(self, generation: str, username: str, password: str,
                     ttl: float) -> Remembered | None:
        hit = await self.memory.recall(generation, username, password, ttl)
        if hit is not None:
            return hit
        link_key = self.keys.credentials(generation, username, password)
        try:
            link = await self.shared.link(link_key)
            if link is None:
                return None
            subject_key = self.keys.subject(generation, link.name)
            identity = await self.shared.subject(subject_key)
        except RedisUnavailable:
            return None  # counted in state_fallbacks_total; the directory decides
        found = usable(link, identity, ttl, time.time())
        if found is not None:
            self.memory.put_link(link_key, link, ttl)
            self.memory.put_subject(subject_key, found, ttl)
        return found

    async def known(self, generation: str, name: str, ttl: float) -> Remembered | None:
        hit = await self.memory.known(generation, name, ttl)
        if hit is not None:
            return hit
        try:
            identity = await self.shared.subject(self.keys.subject(generation, name))
        except RedisUnavailable:
            return None
        if identity is None or identity.name != name \
                or not fresh(identity.checked_at, ttl, time.time()):
            return None
        return identity

    async def remember(self, generation: str, username: str, password: str,
                       identity: Remembered, ttl: float) -> None:
        await self.memory.remember(generation, username, password, identity, ttl)
        if ttl <= 0:
            return
        link = CredentialLink(identity.name, identity.binding, identity.checked_at)
        with contextlib.suppress(RedisUnavailable):  # this replica remembers it meanwhile
            await self.shared.put(self.keys.credentials(generation, username, password), link,
                                  self.keys.subject(generation, identity.name), identity,
                                  max(1, int(ttl)))
