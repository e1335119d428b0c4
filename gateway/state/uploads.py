"""Upload sessions bound to their writer: the protocol, in-process, Redis for replicas, fallback."""

from __future__ import annotations

import contextlib
from typing import Protocol

from gateway.state.redis import RedisLink, RedisUnavailable
from gateway.state.ttlmap import TTLMap

UPLOAD_BINDING_SECONDS = 86400
MAX_BINDINGS = 100_000


class UploadBindings(Protocol):
    async def bind(self, upload_id: str, owner: str) -> None: ...

    async def owner(self, upload_id: str) -> str | None: ...

    async def forget(self, upload_id: str) -> None: ...


class MemoryUploadBindings:
    def __init__(self, max_entries: int = MAX_BINDINGS) -> None:
        self._owners: TTLMap[str, str] = TTLMap(max_entries)

    async def bind(self, upload_id: str, owner: str) -> None:
        self._owners.put(upload_id, owner, UPLOAD_BINDING_SECONDS)

    async def owner(self, upload_id: str) -> str | None:
        return self._owners.get(upload_id)

    async def forget(self, upload_id: str) -> None:
        self._owners.pop(upload_id)


def _upload_key(upload_id: str) -> str:
    return f"rg:u:{upload_id}"


class SharedUploadBindings:
    """Bindings in Redis (any replica may get the next PATCH) and in-process.

    The in-process copy lets uploads this replica started go on through a Redis outage.
    """

    def __init__(self, link: RedisLink, memory: MemoryUploadBindings) -> None:
        self._link = link
        self.memory = memory

    async def bind(self, upload_id: str, owner: str) -> None:
        await self.memory.bind(upload_id, owner)
        key = _upload_key(upload_id)
        with contextlib.suppress(RedisUnavailable):  # this replica still knows it
            await self._link.run(
                "uploads", lambda client: client.set(key, owner, ex=UPLOAD_BINDING_SECONDS))

    async def owner(self, upload_id: str) -> str | None:
        key = _upload_key(upload_id)
        try:
            found = await self._link.run("uploads", lambda client: client.get(key))
        except RedisUnavailable:
            found = None
        if isinstance(found, str):
            return found
        return await self.memory.owner(upload_id)

    async def forget(self, upload_id: str) -> None:
        await self.memory.forget(upload_id)
        key = _upload_key(upload_id)
        with contextlib.suppress(RedisUnavailable):  # the binding expires on its own
            await self._link.run("uploads", lambda client: client.delete(key))
