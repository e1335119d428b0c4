"""setup_ui: templates, the session secret, routes and headers for /ui/, called by create_app."""

from __future__ import annotations

from pathlib import Path

import aiohttp_jinja2
import jinja2
from aiohttp import web

from gateway.config.schema import Settings
from gateway.ui import access_page, browse, login, sso
from gateway.ui.formatting import FILTERS
from gateway.ui.render import add_security_headers, not_found, page
from gateway.ui.session import Revocations, SessionCodec, load_secret
from gateway.ui.visit import UI_STATE, UiState, Visit, pull_host

STATIC_DIR = Path(__file__).resolve().parent.parent / "static"


async def _to_index(request: web.Request) -> web.StreamResponse:
    return web.Response(status=308, headers={"Location": "/ui/"})


async def _unknown(request: web.Request, visit: Visit) -> web.StreamResponse:
    return not_found(request, visit)


def setup_ui(app: web.Application, settings: Settings) -> None:
    secret = load_secret(settings.ui.session_secret_file)
    app[UI_STATE] = UiState(SessionCodec(secret), Revocations(), pull_host(settings))
    aiohttp_jinja2.setup(
        app,
        loader=jinja2.PackageLoader("gateway", "templates"),
        autoescape=jinja2.select_autoescape(default=True, default_for_string=True),
        undefined=jinja2.StrictUndefined,
        filters=FILTERS,
        default_helpers=False,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    app.on_response_prepare.append(add_security_headers)
    router = app.router
    router.add_get("/ui", _to_index)
    router.add_get("/ui/", page(browse.index))
    router.add_get("/ui/repositories/{name:.+}", page(browse.repository))
    router.add_get("/ui/access", page(access_page.access))
    router.add_get("/ui/login", page(login.login_form))
    router.add_post("/ui/login", page(login.login))
    router.add_post("/ui/logout", page(login.logout))
    router.add_get("/ui/sso/start", page(sso.start))
    router.add_get("/ui/sso/callback", page(sso.callback))
    router.add_get("/ui/cli-password", page(sso.cli_password_form))
    router.add_post("/ui/cli-password", page(sso.cli_password_create))
    router.add_static("/ui/static", STATIC_DIR, append_version=False)
    router.add_route("*", "/ui/{tail:.*}", page(_unknown))
