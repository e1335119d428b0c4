"""Blob downloads moved socket to socket by the kernel (splice(2) through a pipe), not by Python.

Why this is safe with aiohttp: the upstream side is a socket of our own (a one-shot HTTP/1.1 GET
opened here, never an aiohttp client connection: aiohttp's parser may hold body bytes of its
connections out of sight), and the client side is only written once aiohttp has sent the response
headers and its transport's write buffer is empty; aiohttp never writes to that connection while
the handler runs. Readiness is watched on a duplicate of the client's descriptor, so the event
loop's own registration for the transport is untouched.

Only plain TCP on both sides (no TLS) and Linux; everything else takes the ordinary path.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import socket
from collections.abc import Iterable
from dataclasses import dataclass

from aiohttp import web
from multidict import CIMultiDict

PIPE_SIZE = 1024 * 1024
MAX_HEAD = 64 * 1024
_FLAGS = getattr(os, "SPLICE_F_MOVE", 0) | getattr(os, "SPLICE_F_NONBLOCK", 0)
AVAILABLE = hasattr(os, "splice") and hasattr(fcntl, "F_SETPIPE_SZ")


class BrokenTransfer(Exception):
    """The upstream or the client went away mid-body; `sent` bytes reached the client."""

    def __init__(self, reason: str, sent: int) -> None:
        super().__init__(reason)
        self.reason = reason
        self.sent = sent


@dataclass
class UpstreamHead:
    """A parsed response head and the body bytes that came with it."""

    sock: socket.socket
    status: int
    reason: str
    headers: CIMultiDict[str]
    early: bytes

    def close(self) -> None:
        self.sock.close()

    @property
    def content_length(self) -> int | None:
        """The body's length when it is framed by Content-Length alone, else None."""
        value = self.headers.get("Content-Length", "")
        if "Transfer-Encoding" in self.headers or not value.isdigit():
            return None
        return int(value)

    async def read_body(self, length: int, read_timeout: float) -> bytes:
        """The whole (small) body; raises OSError or TimeoutError."""
        loop = asyncio.get_running_loop()
        body = self.early[:length]
        async with asyncio.timeout(read_timeout):
            while len(body) < length:
                chunk = await loop.sock_recv(self.sock, min(length - len(body), 65536))
                if not chunk:
                    raise OSError("upstream closed mid-body")
                body += chunk
        return body


def client_fd(request: web.Request) -> int | None:
    """The client connection's descriptor when splicing into it is possible, else None."""
    transport = request.transport
    if not AVAILABLE or transport is None or transport.get_extra_info("sslcontext") is not None:
        return None
    sock = transport.get_extra_info("socket")
    if sock is None or sock.family not in (socket.AF_INET, socket.AF_INET6):
        return None
    fd: int = sock.fileno()
    return fd if fd >= 0 else None


async def open_get(host: str, port: int, netloc: str, target: str,
                   headers: Iterable[tuple[str, str]], connect_timeout: float,
                   read_timeout: float) -> UpstreamHead:
    """Send one GET on a new connection and read the answer's head; raises OSError/TimeoutError."""
    lines = [f"GET {target} HTTP/1.1", f"Host: {netloc}", "Connection: close"]
    lines += [f"{name}: {value}" for name, value in headers]
    try:
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    except UnicodeEncodeError as exc:  # a header aiohttp decoded as UTF-8: the ordinary path
        raise OSError("request head is not Latin-1") from exc
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    last: OSError = OSError(f"no address for {host}")
    for family, kind, proto, _, address in infos:
        sock = socket.socket(family, kind, proto)
        sock.setblocking(False)
        try:
            async with asyncio.timeout(connect_timeout):
                await loop.sock_connect(sock, address)
            break
        except OSError as exc:
            sock.close()
            last = exc
    else:
        raise last
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        await loop.sock_sendall(sock, head)
        buffer = b""
        async with asyncio.timeout(read_timeout):
            while (end := buffer.find(b"\r\n\r\n")) < 0:
                if len(buffer) > MAX_HEAD:
                    raise OSError("upstream response head too large")
                chunk = await loop.sock_recv(sock, 65536)
                if not chunk:
                    raise OSError("upstream closed before its response head")
                buffer += chunk
        status, reason, parsed = _parse_head(buffer[:end].decode("latin-1"))
        return UpstreamHead(sock, status, reason, parsed, buffer[end + 4:])
    except BaseException:
        sock.close()
        raise


def _parse_head(head: str) -> tuple[int, str, CIMultiDict[str]]:
    status_line, *lines = head.split("\r\n")
    version, _, rest = status_line.partition(" ")
    code, _, reason = rest.partition(" ")
    if not version.startswith("HTTP/1.") or not code.isdigit():
        raise OSError("malformed upstream status line")
    headers: CIMultiDict[str] = CIMultiDict()
    for line in lines:
        name, sep, value = line.partition(":")
        if not sep or not name or name != name.strip() or line[0] in " \t":
            raise OSError("malformed upstream header")
        headers.add(name, value.strip())
    return int(code), reason, headers


async def _ready(fd: int, writable: bool, limit: float | None) -> None:
    loop = asyncio.get_running_loop()
    waiter = loop.create_future()

    def wake() -> None:
        if not waiter.done():
            waiter.set_result(None)

    if writable:
        loop.add_writer(fd, wake)
    else:
        loop.add_reader(fd, wake)
    try:
        async with asyncio.timeout(limit):
            await waiter
    finally:
        if writable:
            loop.remove_writer(fd)
        else:
            loop.remove_reader(fd)


async def wait_flushed(request: web.Request) -> None:
    """Until aiohttp's transport has handed every byte it holds (the headers) to the kernel."""
    transport = request.transport
    while transport is not None and transport.get_write_buffer_size() > 0:
        if transport.is_closing():
            raise BrokenTransfer("client", 0)
        await asyncio.sleep(0.001)


def _splice(src: int, dst: int, count: int, broken_side: str, sent: int) -> int:
    """Bytes moved by one splice(2): -1 when it would block, BrokenTransfer on an error."""
    try:
        return os.splice(src, dst, count, flags=_FLAGS)
    except BlockingIOError:
        return -1
    except OSError as exc:
        raise BrokenTransfer(broken_side, sent) from exc


class _Transfer:
    """Upstream socket -> pipe -> client, one pipeful at a time, waiting on whichever side."""

    def __init__(self, src: int, dst: int, length: int, read_timeout: float) -> None:
        self.src, self.dst, self.left, self.read_timeout = src, dst, length, read_timeout
        self.pipe_r, self.pipe_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        with contextlib.suppress(OSError):
            fcntl.fcntl(self.pipe_w, fcntl.F_SETPIPE_SZ, PIPE_SIZE)
        self.capacity = fcntl.fcntl(self.pipe_w, fcntl.F_GETPIPE_SZ)
        self.in_pipe = 0
        self.sent = 0

    def close(self) -> None:
        os.close(self.pipe_r)
        os.close(self.pipe_w)

    def _fill(self) -> bool:
        if not self.left or self.in_pipe >= self.capacity:
            return False
        got = _splice(self.src, self.pipe_w, min(self.left, self.capacity - self.in_pipe),
                      "upstream", self.sent)
        if got == 0:
            raise BrokenTransfer("upstream", self.sent)  # EOF before the promised length
        if got > 0:
            self.left -= got
            self.in_pipe += got
        return got > 0

    def _drain(self) -> bool:
        if not self.in_pipe:
            return False
        put = _splice(self.pipe_r, self.dst, self.in_pipe, "client", self.sent)
        if put > 0:
            self.in_pipe -= put
            self.sent += put
        return put > 0

    async def run(self) -> int:
        while self.left or self.in_pipe:
            moved = self._fill()
            moved = self._drain() or moved
            if moved:
                await asyncio.sleep(0)  # one pipeful at a time: other requests run in between
            elif self.in_pipe:
                await _ready(self.dst, writable=True, limit=None)  # as a slow client blocks write()
            else:
                try:
                    await _ready(self.src, writable=False, limit=self.read_timeout)
                except TimeoutError as exc:
                    raise BrokenTransfer("timeout", self.sent) from exc
        return self.sent


async def splice_body(src: socket.socket, dst_fd: int, length: int,
                      read_timeout: float) -> int:
    """Move exactly `length` bytes from `src` to the client; returns them, or BrokenTransfer."""
    dst = os.dup(dst_fd)  # our own registration with the loop; the transport keeps its own
    try:
        transfer = _Transfer(src.fileno(), dst, length, read_timeout)
        try:
            return await transfer.run()
        finally:
            transfer.close()
    finally:
        os.close(dst)
