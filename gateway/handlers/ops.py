"""Health, readiness and metrics endpoints."""

from __future__ import annotations

from aiohttp import web

from gateway.services import SERVICES


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    services = request.app[SERVICES]
    snapshot = services.holder.current
    if not await services.upstream.ping():
        return web.json_response(
            {"status": "unavailable", "reason": "the upstream registry does not answer"},
            status=503,
        )
    return web.json_response({"status": "ready", "config": snapshot.fingerprint})


async def metrics(request: web.Request) -> web.Response:
    body, content_type = request.app[SERVICES].metrics.render()
    response = web.Response(body=body)
    response.headers["Content-Type"] = content_type
    return response
