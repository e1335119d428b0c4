"""A lean pooled keep-alive HTTP/1.1 client for small upstream GETs, on httptools' parser.

Two transports with the same parser, for bench/upstream_client.py: asyncio streams
(`LeanPool`) and a bare `asyncio.Protocol` (`ProtocolPool`). GET only, bodies framed by
Content-Length or chunked (httptools does the framing); a reused connection that fails before
any byte of the answer arrived is retried once on a new one (a GET is safe to repeat), as a
keep-alive client must (the server may have closed it while idle). What a production version
would still need: HEAD (httptools cannot be told that a HEAD answer has no body), timeouts, a
bound on the body size and on idle connections, and errors mapped to the gateway's 502/504.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import cast

import httptools

READ = 64 * 1024


@dataclass(frozen=True, slots=True)
class Reply:
    status: int
    headers: list[tuple[str, str]]
    body: bytes
    keep_alive: bool


class _Message:
    """httptools callbacks: collect one answer."""

    __slots__ = ("body", "done", "headers")

    def __init__(self) -> None:
        self.headers: list[tuple[str, str]] = []
        self.body: list[bytes] = []
        self.done = False

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name.decode("latin-1"), value.decode("latin-1")))

    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        self.done = True


def _head(host: str, port: int, headers: Sequence[tuple[str, str]]) -> str:
    return f"Host: {host}:{port}\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers)


class _StreamConnection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    async def request(self, request: bytes) -> tuple[Reply, bool]:
        """The answer; ConnectionResetError if not a byte of it came (safe to retry)."""
        message = _Message()
        parser = httptools.HttpResponseParser(message)
        self.writer.write(request)
        got = False
        while not message.done:
            data = await self.reader.read(READ)
            if not data and got:
                raise ConnectionAbortedError("upstream closed mid-answer")
            if not data:
                raise ConnectionResetError("upstream closed the connection")
            got = True
            parser.feed_data(data)
        return Reply(parser.get_status_code(), message.headers, b"".join(message.body),
                     parser.should_keep_alive()), got

    def close(self) -> None:
        self.writer.close()


class LeanPool:
    """Keep-alive connections over asyncio streams, LIFO (the warmest first)."""

    def __init__(self, host: str, port: int, headers: Sequence[tuple[str, str]]) -> None:
        self.host, self.port = host, port
        self._fixed = _head(host, port, headers)
        self._idle: list[_StreamConnection] = []

    async def _open(self) -> _StreamConnection:
        reader, writer = await asyncio.open_connection(self.host, self.port, limit=READ)
        return _StreamConnection(reader, writer)

    async def get(self, target: str) -> Reply:
        request = f"GET {target} HTTP/1.1\r\n{self._fixed}\r\n".encode("latin-1")
        reused = bool(self._idle)
        conn = self._idle.pop() if reused else await self._open()
        try:
            reply, _ = await conn.request(request)
        except ConnectionResetError:
            conn.close()
            if not reused:
                raise
            conn = await self._open()  # the idle connection was gone: once more, fresh
            reply, _ = await conn.request(request)
        except BaseException:
            conn.close()
            raise
        if reply.keep_alive:
            self._idle.append(conn)
        else:
            conn.close()
        return reply

    def close(self) -> None:
        for conn in self._idle:
            conn.close()
        self._idle.clear()


class _Protocol(asyncio.Protocol):
    """One connection: bytes go straight from the transport into the parser."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.waiter: asyncio.Future[Reply] | None = None
        self.message = _Message()
        self.parser = httptools.HttpResponseParser(self.message)
        self.got = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses: no isinstance check here.
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        self.got = True
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(exc)
            return
        if self.message.done and self.waiter is not None and not self.waiter.done():
            m = self.message
            self.waiter.set_result(Reply(self.parser.get_status_code(), m.headers,
                                         b"".join(m.body), self.parser.should_keep_alive()))

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        self._fail(ConnectionResetError("upstream closed the connection") if not self.got
                   else ConnectionAbortedError("upstream closed mid-answer"))

    def _fail(self, exc: Exception) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(exc)

    async def request(self, request: bytes) -> Reply:
        if self.transport is None:
            raise ConnectionResetError("upstream closed the connection")
        self.message = _Message()
        self.parser = httptools.HttpResponseParser(self.message)
        self.got = False
        self.waiter = asyncio.get_running_loop().create_future()
        self.transport.write(request)
        return await self.waiter

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


class ProtocolPool(LeanPool):
    """The same pool, connections as bare protocols."""

    def __init__(self, host: str, port: int, headers: Sequence[tuple[str, str]]) -> None:
        super().__init__(host, port, headers)
        self._free: list[_Protocol] = []

    async def get(self, target: str) -> Reply:
        request = f"GET {target} HTTP/1.1\r\n{self._fixed}\r\n".encode("latin-1")
        reused = bool(self._free)
        conn = self._free.pop() if reused else await self._connect()
        try:
            reply = await conn.request(request)
        except ConnectionResetError:
            conn.close()
            if not reused:
                raise
            conn = await self._connect()
            reply = await conn.request(request)
        except BaseException:
            conn.close()
            raise
        if reply.keep_alive:
            self._free.append(conn)
        else:
            conn.close()
        return reply

    async def _connect(self) -> _Protocol:
        loop = asyncio.get_running_loop()
        _, protocol = await loop.create_connection(_Protocol, self.host, self.port)
        return protocol

    def close(self) -> None:
        for conn in self._free:
            with contextlib.suppress(Exception):
                conn.close()
        self._free.clear()
