"""Connection limits aiohttp has no setting for: a cap on open connections, and a deadline for
receiving each request's head (so a client trickling headers is cut off).

Each accepted connection gets a `ConnectionGuard`, a thin protocol in front of aiohttp's own
`RequestHandler`. The `request_phases` middleware tells the guard when a head has been read (the
handler runs) and when the request is over, because only aiohttp's parser knows where a request
ends. Line, header and idle limits stay with aiohttp (see server.py).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from ssl import SSLContext
from typing import cast

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.typedefs import Handler
from aiohttp.web_protocol import RequestHandler

from gateway.config.schema import LimitSettings
from gateway.http.errors import SERVER_NAME, registry_error
from gateway.metrics import Metrics

REFUSAL_LINGER_SECONDS = 1.0  # time a refused client gets to finish sending its request


class _MalformedRequests(logging.Filter):
    """aiohttp logs each request its parser refuses (a 400) at ERROR with a traceback; anyone
    can send those, so they become one INFO line."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, HttpProcessingError):
            record.levelno, record.levelname = logging.INFO, "INFO"
            # The kind only: the parser's message quotes the refused bytes (a credential, say).
            record.msg = "refused a malformed request from %s: %s (%s)"
            record.args = (*(record.args if isinstance(record.args, tuple) else ()),
                           type(exc).__name__, exc.code)
            record.exc_info, record.exc_text = None, None
        return True


def parser_logger() -> logging.Logger:
    """The logger to hand aiohttp's request handlers (AppRunner's `logger=`)."""
    logger = logging.getLogger("registry_gateway.http.parser")
    if not any(isinstance(f, _MalformedRequests) for f in logger.filters):
        logger.addFilter(_MalformedRequests())
    return logger


def raw_response(status: int, reason: str, code: str, message: str, extra: str = "") -> bytes:
    """A complete HTTP/1.1 error response, for when no aiohttp handler is around to write it."""
    body = json.dumps({"errors": [{"code": code, "message": message}]}, separators=(",", ":"))
    body += "\n"
    return (
        f"HTTP/1.1 {status} {reason}\r\nContent-Type: application/json; charset=utf-8\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n{extra}"
        "Docker-Distribution-API-Version: registry/2.0\r\n\r\n" + body
    ).encode()


class _RegistryErrorHandler(RequestHandler):
    """aiohttp's handler, with the plain-text answers of its own errors (a head the parser
    refuses, say) replaced by registry JSON that names no version."""

    __slots__ = ()

    def handle_error(self, request: web.BaseRequest, status: int = 500,
                     exc: BaseException | None = None,
                     message: str | None = None) -> web.StreamResponse:
        super().handle_error(request, status, exc, message)  # logs; raises if already answering
        code, text = (("UNKNOWN", "internal error") if status >= 500
                      else ("UNSUPPORTED", "malformed or oversized request"))
        response = registry_error(status, code, text, headers={"Server": SERVER_NAME})
        response.force_close()
        return response


def _new_handler(server: web.Server) -> RequestHandler:
    """What `server()` does, with our subclass (the kwargs are the AppRunner's)."""
    return _RegistryErrorHandler(server, loop=server._loop, **server._kwargs)


class ConnectionLimits:
    """Counts open connections of one listener and finds the guard behind a request."""

    def __init__(self, settings: LimitSettings, metrics: Metrics) -> None:
        self.settings = settings
        self.active = 0
        self.refused = metrics.connections_refused.labels("over_cap")
        self.timed_out = metrics.connections_refused.labels("header_timeout")
        self._guards: dict[object, ConnectionGuard] = {}  # by aiohttp RequestHandler

    def protocol_factory(self, server: web.Server) -> Callable[[], asyncio.Protocol]:
        return lambda: ConnectionGuard(self, server)

    def guard_for(self, handler: object) -> ConnectionGuard | None:
        return self._guards.get(handler)

    def _opened(self, handler: object, guard: ConnectionGuard) -> None:
        self.active += 1
        self._guards[handler] = guard

    def _closed(self, handler: object) -> None:
        self.active -= 1
        self._guards.pop(handler, None)


class ConnectionGuard(asyncio.Protocol):
    """One connection: refused with 503 over the cap, else passed to aiohttp under a head deadline."""

    def __init__(self, limits: ConnectionLimits, server: web.Server) -> None:
        self._limits = limits
        self._server = server
        self._handler: asyncio.Protocol | None = None
        self._transport: asyncio.Transport | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._awaiting_head = True
        self._tail = b""  # the last bytes a refused client sent, to see its head end

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport = cast(asyncio.Transport, transport)  # uvloop's are not subclasses
        self._transport = transport
        loop = asyncio.get_running_loop()
        if self._limits.active >= self._limits.settings.max_connections:
            self._limits.refused.inc()
            transport.write(raw_response(503, "Service Unavailable", "UNAVAILABLE",
                                         "too many connections; try again later",
                                         "Retry-After: 1\r\n"))
            # Closing only once the request has arrived avoids a reset that would eat the 503.
            self._timer = loop.call_later(REFUSAL_LINGER_SECONDS, transport.close)
            return
        handler = _new_handler(self._server)
        self._handler = handler
        self._limits._opened(handler, self)
        # From accept: a connection that never completes a head is cut off too.
        self._arm()
        handler.connection_made(transport)

    def data_received(self, data: bytes) -> None:
        if self._handler is None:
            self._tail = (self._tail + data)[-4:]
            if b"\r\n\r\n" in self._tail and self._transport is not None:
                self._transport.close()
            return
        if self._awaiting_head and self._timer is None:
            self._arm()  # the first byte of the next request starts its clock
        self._handler.data_received(data)

    def eof_received(self) -> bool | None:
        return self._handler.eof_received() if self._handler is not None else None

    def pause_writing(self) -> None:
        if self._handler is not None:
            self._handler.pause_writing()

    def resume_writing(self) -> None:
        if self._handler is not None:
            self._handler.resume_writing()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel()
        handler, self._handler = self._handler, None
        if handler is not None:
            self._limits._closed(handler)
            handler.connection_lost(exc)

    def head_complete(self) -> None:
        self._awaiting_head = False
        self._cancel()

    def request_done(self) -> None:
        self._awaiting_head = True

    def _arm(self) -> None:
        loop = asyncio.get_running_loop()
        self._timer = loop.call_later(self._limits.settings.header_timeout, self._expire)

    def _cancel(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _expire(self) -> None:
        self._timer = None
        transport = self._transport
        if not self._awaiting_head or transport is None or transport.is_closing():
            return
        self._limits.timed_out.inc()
        seconds = f"{self._limits.settings.header_timeout:g}"
        transport.write(raw_response(408, "Request Timeout", "REQUEST_TIMEOUT",
                                     f"request headers not received within {seconds} s"))
        transport.close()


CONNECTION_LIMITS = web.AppKey("connection_limits", ConnectionLimits)


@web.middleware
async def request_phases(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Tell the connection's guard that a head has been read, and when its request is over."""
    limits = request.app.get(CONNECTION_LIMITS)
    guard = limits.guard_for(request.protocol) if limits is not None else None
    if guard is None:
        return await handler(request)
    guard.head_complete()
    try:
        return await handler(request)
    finally:
        guard.request_done()


class LimitedSite(web.BaseSite):
    """A TCP listener whose connections go through `ConnectionLimits`."""

    __slots__ = ("_host", "_limits", "_port")

    def __init__(self, runner: web.BaseRunner, host: str, port: int, limits: ConnectionLimits,
                 ssl_context: SSLContext | None = None, backlog: int = 1024) -> None:
        super().__init__(runner, ssl_context=ssl_context, backlog=backlog)
        self._host = host
        self._port = port
        self._limits = limits

    @property
    def name(self) -> str:
        scheme = "https" if self._ssl_context else "http"
        return f"{scheme}://{self._host}:{self._port}"

    async def start(self) -> None:
        await super().start()
        server = self._runner.server
        assert server is not None, "the runner is set up before its sites start"
        ssl_timeout = self._limits.settings.header_timeout if self._ssl_context else None
        self._server = await asyncio.get_running_loop().create_server(
            self._limits.protocol_factory(server), self._host, self._port,
            ssl=self._ssl_context, backlog=self._backlog, reuse_address=True,
            ssl_handshake_timeout=ssl_timeout,
        )
