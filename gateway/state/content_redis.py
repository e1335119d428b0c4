"""The content cache's Redis form: generations per repository, and bodies shared by replicas.

Whoever can write to Redis must not be able to serve content through the gateway: each entry
carries an HMAC of its key and content (the secret is derived from `token.key_file`, so replicas
agree), and the caller re-hashes the body against its digest on every read. Generations need no
MAC: forging one only makes entries stale.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import secrets
from typing import Any

from redis.asyncio import Redis

from gateway.state.generations import GenerationReads, generation_key
from gateway.state.redis import RedisLink

STORE = "content"
TAG_CHARS = 32
# A generation outlives every entry filled before it was written (ttl is at most a day), so an
# expired generation key can never make an older entry current again.
GENERATION_LIFETIME = 2 * 86400

Found = tuple[str, tuple[tuple[str, str], ...], bytes]  # media type, headers, body


def _entry_key(key: tuple[str, str, str]) -> str:
    repository, kind, digest = key
    # '\x1f' cannot occur in a repository name, a kind or a digest.
    return "rg:c:e:" + "\x1f".join((kind, repository, digest))


class RedisContent:
    def __init__(self, link: RedisLink, secret: bytes) -> None:
        self._link = link
        self._secret = secret
        self._generations = GenerationReads(link, STORE)

    def _tag(self, name: str, payload: str) -> str:
        mac = hmac.new(self._secret, f"{name}\0{payload}".encode(), hashlib.sha256)
        return mac.hexdigest()[:TAG_CHARS]

    async def generation(self, repository: str) -> str:
        """The epoch and the repository's generation; RedisUnavailable if Redis failed."""
        return await self._generations.read(repository)

    async def get(self, key: tuple[str, str, str], generation: str) -> Found | None:
        """The stored answer if it is ours and of this generation (the body not yet re-hashed)."""
        name = _entry_key(key)
        raw = await self._link.run(STORE, lambda client: client.get(name))
        if not isinstance(raw, str):
            return None
        tag, _, payload = raw.partition(":")
        if not hmac.compare_digest(tag.encode("utf-8", "surrogateescape"),
                                   self._tag(name, payload).encode()):
            return None
        return _decode(payload, generation)

    async def put(self, key: tuple[str, str, str], found: Found, generation: str,
                  ttl: int) -> None:
        name = _entry_key(key)
        media_type, headers, body = found
        payload = json.dumps([generation, media_type, headers, base64.b64encode(body).decode()],
                             separators=(",", ":"))
        signed = f"{self._tag(name, payload)}:{payload}"
        await self._link.run(STORE, lambda client: client.set(name, signed, ex=ttl))

    async def invalidate(self, repository: str, key: tuple[str, str, str] | None) -> None:
        """A new generation for `repository` (every replica's entries and tags of it go stale)
        and the shared entry of `key` gone."""
        async def operation(client: Redis) -> Any:
            async with client.pipeline(transaction=True) as pipe:
                pipe.set(generation_key(repository), secrets.token_hex(8),
                         ex=GENERATION_LIFETIME)
                if key is not None:
                    pipe.delete(_entry_key(key))
                return await pipe.execute()

        await self._link.run(STORE, operation)


def _decode(payload: str, generation: str) -> Found | None:
    try:
        stored, media_type, headers, body = json.loads(payload)
        if stored != generation or not isinstance(media_type, str):
            return None
        pairs = tuple((str(k), str(v)) for k, v in headers)
        return media_type, pairs, base64.b64decode(body, validate=True)
    except (ValueError, TypeError, binascii.Error):
        return None
