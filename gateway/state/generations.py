"""Generation reads of the content cache, batched: requests that reach the lookup in the same
turn of the event loop share one MGET.

A hit costs one Redis round trip for its repository's generation, and redis-py's per-command
overhead (~150 us of CPU) would be most of a hit's cost. The batch is sent only after every
request in it asked, so each still reads a generation at least as new as its own arrival: an
invalidation that finished before a request arrived is always seen. A by-tag lookup that has
no tag in process reads the replicas' shared tag in the same MGET.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Awaitable, Callable

from redis.asyncio import Redis

from gateway.state.redis import RedisLink

EPOCH_KEY = "rg:c:epoch"
MAX_BATCH = 256  # keys per MGET; the rest wait for the next one


def generation_key(repository: str) -> str:
    return "rg:c:g:" + repository


class GenerationReads:
    def __init__(self, link: RedisLink, store: str) -> None:
        self._link = link
        self._store = store
        # Redis key -> the futures waiting for (epoch, its value)
        self._waiting: dict[str, list[asyncio.Future[tuple[str, object]]]] = {}
        self._sending: set[asyncio.Task[None]] = set()
        self._scheduled = False

    async def read(self, repository: str, extra: str | None = None) -> tuple[str, object]:
        """`epoch/generation` of `repository`, and the value of the key `extra` (None if not
        asked or absent), read in one batch; RedisUnavailable if Redis failed."""
        loop = asyncio.get_running_loop()
        asked = self._ask(generation_key(repository), loop)
        also = self._ask(extra, loop) if extra is not None else None
        try:
            epoch, value = await asked
        except BaseException:
            if also is not None and not also.cancel():
                also.exception()  # already failed with the same batch: retrieved, not logged
            raise
        generation = f"{epoch}/{value if isinstance(value, str) else ''}"
        return generation, (await also)[1] if also is not None else None

    def _ask(self, name: str, loop: asyncio.AbstractEventLoop
             ) -> asyncio.Future[tuple[str, object]]:
        future: asyncio.Future[tuple[str, object]] = loop.create_future()
        self._waiting.setdefault(name, []).append(future)
        if not self._scheduled:
            self._scheduled = True
            loop.call_soon(self._send_batch, loop)  # after the requests already runnable
        return future

    def _send_batch(self, loop: asyncio.AbstractEventLoop) -> None:
        self._scheduled = False
        batch = dict(list(self._waiting.items())[:MAX_BATCH])
        for name in batch:
            del self._waiting[name]
        if self._waiting:
            self._scheduled = True
            loop.call_soon(self._send_batch, loop)
        task = loop.create_task(self._answer(batch))
        self._sending.add(task)
        task.add_done_callback(self._sending.discard)

    async def _answer(self, batch: dict[str, list[asyncio.Future[tuple[str, object]]]]) -> None:
        names = [EPOCH_KEY, *batch]
        try:
            values = await self._link.run(self._store, _mget(names))
            epoch = values[0] if isinstance(values[0], str) else await self._link.run(
                self._store, _new_epoch)
        except Exception as failure:  # RedisUnavailable, or anything a waiter must not hang on
            for futures in batch.values():
                for future in futures:
                    if not future.done():
                        future.set_exception(failure)
            return
        for value, futures in zip(values[1:], batch.values(), strict=True):
            for future in futures:
                if not future.done():
                    future.set_result((epoch, value))


def _mget(names: list[str]) -> Callable[[Redis], Awaitable[list[object]]]:
    async def operation(client: Redis) -> list[object]:
        return list(await client.mget(names))

    return operation


async def _new_epoch(client: Redis) -> str:
    """The epoch changes when Redis lost its data (a restart without persistence): generations
    read before are then all stale, instead of an absent key meaning "never invalidated"."""
    await client.set(EPOCH_KEY, secrets.token_hex(8), nx=True)
    epoch = await client.get(EPOCH_KEY)
    return epoch if isinstance(epoch, str) else ""
