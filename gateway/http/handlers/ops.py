"""Health, readiness and metrics endpoints."""

from __future__ import annotations

import time

from aiohttp import web

from gateway.access.request import REQUEST_SCOPE
from gateway.http.services import SERVICES, Services

NO_STORE = {"Cache-Control": "no-store"}


async def healthz(request: web.Request) -> web.Response:
    """200 while the process serves; it asks nothing of the upstream, so restarts stay rare."""
    return web.json_response({"status": "ok"}, headers=NO_STORE)


async def probe_upstream(services: Services) -> bool:
    """Ask the upstream registry whether it answers; the result also feeds `upstream_up`."""
    up = await services.upstream.ping()
    services.metrics.upstream_up.set(1 if up else 0)
    return up


async def readyz(request: web.Request) -> web.Response:
    """200 while the upstream answers, else 503 with the reason.

    A config is always loaded here: the process refuses to start without a valid one. A refused
    reload does not make the gateway unready either, since the previous config keeps serving
    (alert on `config_last_reload_successful` instead of taking every replica out of service).
    """
    services = request.app[SERVICES]
    snapshot = request[REQUEST_SCOPE].snapshot
    if not await probe_upstream(services):
        return _unready("the upstream registry does not answer")
    return web.json_response({"status": "ready", "config": snapshot.fingerprint},
                             headers=NO_STORE)


def _unready(reason: str) -> web.Response:
    return web.json_response({"status": "unavailable", "reason": reason}, status=503,
                             headers=NO_STORE)


async def metrics(request: web.Request) -> web.Response:
    services = request.app[SERVICES]
    # Probing at scrape time keeps `upstream_up` as fresh as the scrape, with no timer of our own.
    await probe_upstream(services)
    services.metrics.observe_expiries(time.time())
    body, content_type = services.metrics.render(request.headers.get("Accept"))
    response = web.Response(body=body, headers=NO_STORE)
    response.headers["Content-Type"] = content_type
    return response
