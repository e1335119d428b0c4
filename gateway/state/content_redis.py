"""The content cache's Redis form: generations per repository, and bodies shared by replicas.

Whoever can write to Redis must not be able to serve content through the gateway: each entry
carries an HMAC of its key and content (the secret is derived from `token.key_file`, so replicas
agree), and the caller re-hashes the body against its digest on every read. Generations need no
MAC: forging one only makes entries stale.
"""

from __future__ import annotations

import base64
import binascii
import json
import secrets
from typing import Any

from redis.asyncio import Redis

from gateway.state.generations import GenerationReads, generation_key
from gateway.state.redis import RedisLink
from gateway.state.signed import ValueSigner

STORE = "content"
# A generation outlives every entry filled before it was written (ttl is at most a day), so an
# expired generation key can never make an older entry current again.
GENERATION_LIFETIME = 2 * 86400

Found = tuple[str, tuple[tuple[str, str], ...], bytes]  # media type, headers, body


def _entry_key(key: tuple[str, str, str]) -> str:
    repository, kind, digest = key
    # '\x1f' cannot occur in a repository name, a kind or a digest.
    return "rg:c:e:" + "\x1f".join((kind, repository, digest))


def _tag_key(repository: str, tag: str) -> str:
    return "rg:c:t:" + "\x1f".join((repository, tag))


class RedisContent:
    def __init__(self, link: RedisLink, secret: bytes) -> None:
        self._link = link
        self._signer = ValueSigner(secret)
        self._generations = GenerationReads(link, STORE)

    async def generation(self, repository: str, tag: str | None = None) -> tuple[str, str | None]:
        """The epoch and the repository's generation, and the digest a replica learnt for `tag`
        under it (signed, within `tag_ttl`), read together; RedisUnavailable if Redis failed."""
        name = _tag_key(repository, tag) if tag is not None else None
        generation, raw = await self._generations.read(repository, name)
        payload = self._signer.open(name, raw) if name is not None else None
        if payload is None:
            return generation, None
        stored, _, digest = payload.partition(" ")
        return generation, digest if stored == generation else None

    async def put_tag(self, repository: str, tag: str, digest: str, generation: str,
                      ttl: int) -> None:
        """Share a tag this replica learnt under `generation` for `ttl` seconds."""
        name = _tag_key(repository, tag)
        payload = f"{generation} {digest}"  # neither holds a space
        signed = self._signer.sign(name, payload)
        await self._link.run(STORE, lambda client: client.set(name, signed, ex=ttl))

    async def get(self, key: tuple[str, str, str], generation: str) -> Found | None:
        """The stored answer if it is ours and of this generation (the body not yet re-hashed)."""
        name = _entry_key(key)
        raw: object = await self._link.run(STORE, lambda client: client.get(name))
        payload = self._signer.open(name, raw)
        return None if payload is None else _decode(payload, generation)

    async def put(self, key: tuple[str, str, str], found: Found, generation: str,
                  ttl: int) -> None:
        name = _entry_key(key)
        media_type, headers, body = found
        payload = json.dumps([generation, media_type, headers, base64.b64encode(body).decode()],
                             separators=(",", ":"))
        signed = self._signer.sign(name, payload)
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
