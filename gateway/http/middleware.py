"""The request scope, request metrics and a JSON answer instead of a traceback, around every
handler."""

from __future__ import annotations

import asyncio
import logging
import secrets
import time

from aiohttp import web
from aiohttp.typedefs import Handler

from gateway.access.request import REQUEST_SCOPE, RequestScope
from gateway.http.clientaddr import origin
from gateway.http.errors import registry_error
from gateway.http.services import SERVICES
from gateway.policy.names import RouteName

log = logging.getLogger("registry_gateway.http")
CLIENT_CLOSED = 499  # nginx's status for a request the client abandoned


def route_of_path(path: str) -> RouteName:
    """The metric route before a handler knows better (the /v2/ handler refines it)."""
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
    snapshot = services.holder.current
    client, passwords_allowed = origin(request, snapshot.settings.server)
    scope = RequestScope(
        request_id=secrets.token_hex(8),
        snapshot=snapshot,
        client=client,
        passwords_allowed=passwords_allowed,
        route=route_of_path(request.path),
    )
    request[REQUEST_SCOPE] = scope
    status = 500
    metrics.in_flight.inc()
    try:
        response = await handler(request)
        status = response.status
        if not response.prepared:
            response.headers.setdefault("X-Request-Id", scope.request_id)
        return response
    except web.HTTPException as exc:
        status = exc.status
        raise
    except (ConnectionResetError, asyncio.CancelledError):
        status = CLIENT_CLOSED  # the client went away mid-answer; nothing left to tell it
        raise
    except Exception:
        log.exception("unhandled error in request %s", scope.request_id)
        return registry_error(500, "UNKNOWN", "unknown error",
                              headers={"X-Request-Id": scope.request_id})
    finally:
        metrics.in_flight.dec()
        metrics.count_request(request.method, scope.route, status,
                              time.monotonic() - scope.started)
