"""Rendering pages: the common context, error pages, and the headers every /ui response carries."""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import aiohttp_jinja2
from aiohttp import web

from gateway.ui.visit import Visit, apply_cookies, begin_visit
from gateway.upstream.client import UpstreamError

log = logging.getLogger("registry_gateway.ui")

SECURITY_HEADERS = {
    "Content-Security-Policy": ("default-src 'self'; base-uri 'none'; form-action 'self'; "
                                "frame-ancestors 'none'"),
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
}

Page = Callable[[web.Request, Visit], Awaitable[web.StreamResponse]]


def render(request: web.Request, visit: Visit, template: str,
           context: Mapping[str, Any] | None = None, status: int = 200) -> web.Response:
    full = {"viewer": visit.subject, "admin": visit.admin, "csrf_token": visit.csrf_token,
            "pull_host": visit.ui.pull_host, "sso": visit.snapshot.settings.sso is not None,
            **(context or {})}
    response: web.Response = aiohttp_jinja2.render_template(template, request, full, status=status)
    return response


def not_found(request: web.Request, visit: Visit) -> web.Response:
    """The one 404 page: the same bytes for a missing, private or admin-only page."""
    return render(request, visit, "not_found.html", status=404)


def error_page(request: web.Request, visit: Visit, status: int, title: str, message: str,
               headers: Mapping[str, str] | None = None) -> web.Response:
    response = render(request, visit, "error.html", {"title": title, "message": message},
                      status=status)
    response.headers.update(headers or {})
    return response


def page(handler: Page) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    """Resolve the viewer, run the page, send cookie updates; upstream trouble is a 502 page."""

    @functools.wraps(handler)
    async def wrapped(request: web.Request) -> web.StreamResponse:
        visit = await begin_visit(request)
        try:
            response = await handler(request, visit)
        except web.HTTPException:
            raise
        except UpstreamError as failure:
            log.warning("ui page %s: upstream %s", request.path, failure.kind)
            response = error_page(request, visit, failure.status, "Registry unavailable",
                                  "The registry behind the gateway did not answer. "
                                  "Try again in a moment.")
        except Exception:
            log.exception("ui page %s failed", request.path)
            response = error_page(request, visit, 500, "Something went wrong",
                                  "The page could not be shown; the error is in the gateway's log.")
        apply_cookies(request, visit, response)
        return response

    return wrapped


async def add_security_headers(request: web.Request, response: web.StreamResponse) -> None:
    """on_response_prepare: every /ui answer (static files and aiohttp's own errors included)."""
    if not request.path.startswith("/ui"):
        return
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    if not request.path.startswith("/ui/static/"):
        # Pages depend on who is looking; shared caches must not keep them.
        response.headers.setdefault("Cache-Control", "no-store")
