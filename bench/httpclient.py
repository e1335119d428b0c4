"""A minimal blocking HTTP/1.1 client over one socket, for blob transfers.

Why not urllib or aiohttp: the client runs on the same two cores as the servers it measures, so it
must cost as little as possible and the same for every path: bodies land in one reused buffer
(`recv_into`) and go straight to a sink (the digest), requests go out with one `sendall` per piece.
"""

from __future__ import annotations

import socket
import ssl
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

RECV_BUFFER = 1024 * 1024
Sink = Callable[[memoryview], object]


class HttpError(RuntimeError):
    pass


@dataclass(frozen=True)
class Reply:
    status: int
    headers: dict[str, str]  # lower-case names; a repeated header keeps the last value
    body_bytes: int
    body: bytes  # only when no sink was given and the body is small


class Connection:
    """One keep-alive connection to host:port (over TLS with `tls`); one per thread."""

    def __init__(self, host: str, port: int, timeout: float = 120.0,
                 tls: ssl.SSLContext | None = None) -> None:
        self.host = host
        self.port = port
        sock = socket.create_connection((host, port), timeout=timeout)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._sock = tls.wrap_socket(sock, server_hostname=host) if tls is not None else sock
        self._pending = bytearray()
        self._scratch = bytearray(RECV_BUFFER)

    def close(self) -> None:
        self._sock.close()

    def __enter__(self) -> Connection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def request(
        self,
        method: str,
        target: str,
        headers: Mapping[str, str] | None = None,
        body: Iterable[bytes | memoryview] | bytes | None = None,
        length: int | None = None,
        sink: Sink | None = None,
    ) -> Reply:
        """Send one request and read the whole reply; `body` pieces go out as they come."""
        lines = [f"{method} {target} HTTP/1.1", f"Host: {self.host}:{self.port}"]
        for name, value in (headers or {}).items():
            lines.append(f"{name}: {value}")
        if isinstance(body, bytes):
            length = len(body)
            body = (body,)
        if body is not None:
            if length is None:
                raise ValueError("a streamed body needs its length")
            lines.append(f"Content-Length: {length}")
        elif method in ("POST", "PUT", "PATCH"):
            lines.append("Content-Length: 0")
        self._sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
        sent = 0
        for piece in body or ():
            self._sock.sendall(piece)
            sent += len(piece)
        if body is not None and sent != length:
            raise HttpError(f"sent {sent} bytes, announced {length}")
        return self._read_reply(method, sink)

    def _fill(self) -> None:
        chunk = self._sock.recv(65536)
        if not chunk:
            raise HttpError("connection closed by the server")
        self._pending += chunk

    def _read_head(self) -> tuple[int, dict[str, str]]:
        while (end := self._pending.find(b"\r\n\r\n")) < 0:
            self._fill()
        head = bytes(self._pending[:end]).decode("latin-1")
        del self._pending[: end + 4]
        status_line, *header_lines = head.split("\r\n")
        status = int(status_line.split(" ", 2)[1])
        headers: dict[str, str] = {}
        for line in header_lines:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        return status, headers

    def _read_reply(self, method: str, sink: Sink | None) -> Reply:
        status, headers = self._read_head()
        collected = bytearray()
        out: Sink = sink if sink is not None else collected.extend
        if method == "HEAD" or status in (204, 304) or 100 <= status < 200:
            count = 0
        elif headers.get("transfer-encoding", "").lower() == "chunked":
            count = self._read_chunked(out)
        elif "content-length" in headers:
            count = self._read_exact(int(headers["content-length"]), out)
        else:
            raise HttpError("a reply without length: this client needs keep-alive framing")
        return Reply(status, headers, count, bytes(collected))

    def _read_exact(self, size: int, sink: Sink) -> int:
        left = size
        if self._pending:
            take = min(left, len(self._pending))
            head = bytes(self._pending[:take])  # a copy: a live view would pin the bytearray
            del self._pending[:take]
            sink(memoryview(head))
            left -= take
        view = memoryview(self._scratch)
        while left:
            got = self._sock.recv_into(view, min(left, len(view)))
            if not got:
                raise HttpError(f"body cut off with {left} of {size} bytes missing")
            sink(view[:got])
            left -= got
        return size

    def _read_line(self) -> bytes:
        while (end := self._pending.find(b"\r\n")) < 0:
            self._fill()
        line = bytes(self._pending[:end])
        del self._pending[: end + 2]
        return line

    def _read_chunked(self, sink: Sink) -> int:
        total = 0
        while True:
            size = int(self._read_line().split(b";", 1)[0], 16)
            if size == 0:
                while self._read_line():  # trailers, then the empty line
                    pass
                return total
            total += self._read_exact(size, sink)
            if self._read_line():
                raise HttpError("chunk not followed by CRLF")


def split_target(location: str) -> str:
    """The path and query of a Location header (absolute or not), to send on our connection."""
    parts = urlsplit(location)
    return parts.path + (f"?{parts.query}" if parts.query else "")
