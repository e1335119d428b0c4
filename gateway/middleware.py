"""Request ids, request metrics and a JSON answer instead of a traceback, around every handler."""

from __future__ import annotations

import asyncio
import logging
import secrets
import time

from aiohttp import web
from aiohttp.typedefs import Handler

from gateway.errors import registry_error
from gateway.handlers.registry import ROUTE_KEY
from gateway.metrics import method_label
from gateway.services import SERVICES

log = logging.getLogger("registry_gateway.http")
REQUEST_ID_KEY = "rg_request_id"
CLIENT_CLOSED = 499  # nginx's status for a request the client abandoned


def _route_label(request: web.Request) -> str:
    route = request.get(ROUTE_KEY)
    if isinstance(route, str):
        return route
    path = request.path
    if path == "/token":
        return "token"
    if path.startswith("/ui"):
        return "ui"
    if path.startswith("/v2"):
        return "base" if path in ("/v2", "/v2/") else "other"
    return "other"


@web.middleware
async def observe(request: web.Request, handler: Handler) -> web.StreamResponse:
    services = request.app[SERVICES]
    metrics = services.metrics
    request[REQUEST_ID_KEY] = secrets.token_hex(8)
    started = time.monotonic()
    status = 500
    metrics.in_flight.inc()
    try:
        response = await handler(request)
        status = response.status
        if not response.prepared:
            response.headers.setdefault("X-Request-Id", request[REQUEST_ID_KEY])
        return response
    except web.HTTPException as exc:
        status = exc.status
        raise
    except (ConnectionResetError, asyncio.CancelledError):
        status = CLIENT_CLOSED  # the client went away mid-answer; nothing left to tell it
        raise
    except Exception:
        log.exception("unhandled error in request %s", request[REQUEST_ID_KEY])
        return registry_error(500, "UNKNOWN", "unknown error",
                              headers={"X-Request-Id": request[REQUEST_ID_KEY]})
    finally:
        metrics.in_flight.dec()
        route = _route_label(request)
        metrics.requests.labels(method_label(request.method), route, str(status)).inc()
        metrics.duration.labels(route).observe(time.monotonic() - started)
