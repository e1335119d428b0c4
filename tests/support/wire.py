"""HTTP/1.1 byte for byte on asyncio streams, with a deadline and the time each answer took.

Unlike an HTTP client library, nothing here normalises what is sent: header values may be raw
bytes (non-Latin-1, 0xFF), a GET may carry a body, a client may leave before the answer.

    answer = await exchange(port, request("GET", "/v2/", [("X-Note", "€".encode())]), wait=3)
    assert answer is not None and answer.status < 500 and answer.elapsed < 3
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

HeaderValue = str | bytes
Headers = Sequence[tuple[str, HeaderValue]]


@dataclass(frozen=True)
class Answer:
    status: int
    reason: str
    headers: tuple[tuple[str, str], ...]
    body: bytes
    elapsed: float

    def header(self, name: str) -> str | None:
        return next((v for k, v in self.headers if k.lower() == name.lower()), None)

    def all(self, name: str) -> list[str]:
        return [v for k, v in self.headers if k.lower() == name.lower()]

    def json(self) -> Any:
        return json.loads(self.body)

    def error_code(self) -> str | None:
        """The first registry error code of a JSON error body, else None."""
        try:
            errors = self.json()["errors"]
            return str(errors[0]["code"])
        except (ValueError, KeyError, IndexError, TypeError):
            return None


def _value(value: HeaderValue) -> bytes:
    return value if isinstance(value, bytes) else value.encode("latin-1")


def request(method: str, target: str | bytes, headers: Headers = (), body: bytes = b"", *,
            close: bool = True, length: bool | None = None) -> bytes:
    """The request's bytes; Content-Length is added when there is a body (or `length=True`),
    unless the headers already frame it."""
    raw_target = target if isinstance(target, bytes) else target.encode("latin-1")
    lines = [method.encode() + b" " + raw_target + b" HTTP/1.1", b"Host: 127.0.0.1"]
    if close:
        lines.append(b"Connection: close")
    lines += [name.encode("latin-1") + b": " + _value(value) for name, value in headers]
    framed = any(n.lower() in ("content-length", "transfer-encoding") for n, _ in headers)
    if not framed and (length if length is not None else bool(body)):
        lines.append(f"Content-Length: {len(body)}".encode())
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


def parse(data: bytes, elapsed: float) -> Answer:
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    _, status, reason = [*lines[0].split(" ", 2), "", ""][:3]
    headers = tuple((k.strip(), v.strip()) for k, _, v in (line.partition(":") for line in lines[1:]))
    return Answer(int(status), reason, headers, _dechunk(headers, body), elapsed)


def _dechunk(headers: tuple[tuple[str, str], ...], body: bytes) -> bytes:
    if not any(k.lower() == "transfer-encoding" and "chunked" in v.lower() for k, v in headers):
        return body
    out, rest = b"", body
    while rest:
        size_line, _, rest = rest.partition(b"\r\n")
        size = int(size_line.split(b";")[0] or b"0", 16)
        if size == 0:
            break
        out, rest = out + rest[:size], rest[size + 2:]
    return out


async def exchange(port: int, data: bytes, wait: float = 5.0) -> Answer | None:
    """Send `data` on a new connection; the answer read until the server closes, or None when
    none came within `wait` seconds (a stall) or the connection closed without one."""
    started = time.monotonic()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    received = b""
    try:
        writer.write(data)
        await writer.drain()
        async with asyncio.timeout(wait):
            received = await reader.read(-1)
    except TimeoutError:
        return None
    except ConnectionResetError:
        pass
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
    return parse(received, time.monotonic() - started) if received else None


async def first_answer(port: int, data: bytes, wait: float = 5.0) -> Answer | None:
    """Like `exchange`, but for keep-alive requests: read only the head (and a body framed by
    Content-Length, none for a HEAD) of the first answer, then hang up."""
    started = time.monotonic()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(data)
        await writer.drain()
        async with asyncio.timeout(wait):
            head = await reader.readuntil(b"\r\n\r\n")
            length = re.search(rb"(?im)^content-length:\s*(\d+)", head)
            has_body = length is not None and not data.startswith(b"HEAD ")
            body = await reader.readexactly(int(length.group(1))) if has_body and length else b""
    except (TimeoutError, asyncio.IncompleteReadError, ConnectionResetError):
        return None
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
    return parse(head + body, time.monotonic() - started)


class Leaver:
    """A client that sends a request and goes away before the answer (`await leave()`)."""

    def __init__(self, port: int, data: bytes) -> None:
        self.port, self.data = port, data
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def send(self) -> None:
        self._reader, self._writer = await asyncio.open_connection("127.0.0.1", self.port)
        self._writer.write(self.data)
        await self._writer.drain()

    async def received(self, wait: float = 0.2) -> bytes:
        """What the server has answered so far (b"" for nothing yet), for a failure message."""
        if self._reader is None:
            return b""
        with contextlib.suppress(TimeoutError, OSError):
            async with asyncio.timeout(wait):
                return await self._reader.read(4096)
        return b""

    async def leave(self) -> None:
        """Idempotent, so a test's `finally` can make sure no connection outlives it."""
        writer, self._writer = self._writer, None
        if writer is not None:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()


def is_registry_error(answer: Answer) -> bool:
    """A JSON body of the registry error model (protocol.md section 3)."""
    content_type = (answer.header("Content-Type") or "").split(";")[0].strip()
    return content_type == "application/json" and answer.error_code() is not None
