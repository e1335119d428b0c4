"""/ui/login and /ui/logout: the registry's own accounts and lockout, a session on success."""

from __future__ import annotations

from aiohttp import web
from multidict import MultiDictProxy

from gateway.access.request import Refusal
from gateway.http.forms import read_form
from gateway.identity.failures import AuthFailure
from gateway.ui.render import error_page, render
from gateway.ui.visit import Visit, end_session, start_identity_session, start_session

MAX_USERNAME = 256
MAX_PASSWORD = 1024
BAD_LOGIN = "Incorrect username or password."


async def checked_form(request: web.Request, visit: Visit) -> MultiDictProxy[str] | web.Response:
    """The posted fields, or the 403 page when the CSRF token is missing or wrong."""
    form = await read_form(request)
    if form is None:
        return error_page(request, visit, 400, "Form unreadable",
                          "This form's body could not be read. Reload the page and try again.")
    token = form.get("csrf_token")
    if token is not None and visit.ui.codec.csrf_ok(token, visit.csrf_cookie, visit.sid):
        return MultiDictProxy(form)
    return error_page(request, visit, 403, "Form expired",
                      "This form was not sent from this page, or it has expired. "
                      "Go back, reload the page and try again.")


def wait_text(seconds: int) -> str:
    if seconds < 120:
        return f"{seconds} seconds"
    return f"{-(-seconds // 60)} minutes"


def see_other(location: str) -> web.Response:
    return web.Response(status=303, headers={"Location": location})


async def login_form(request: web.Request, visit: Visit) -> web.StreamResponse:
    return render(request, visit, "login.html", {"username": ""})


async def login(request: web.Request, visit: Visit) -> web.StreamResponse:
    form = await checked_form(request, visit)
    if isinstance(form, web.Response):
        return form
    snapshot = visit.snapshot
    if not visit.scope.passwords_allowed:
        return error_page(request, visit, 403, "Sign-in needs HTTPS",
                          "Passwords are accepted only over HTTPS (or on this machine).")
    username = form.get("username", "")[:MAX_USERNAME]
    password = form.get("password", "")[:MAX_PASSWORD + 1]
    result = await visit.services.access.login(visit.scope, username, password)
    known = username in snapshot.policy.accounts
    visit.services.audit.write("ui_login", request_id=visit.scope.request_id,
                               client=visit.scope.client, user=username if known else None,
                               result="deny" if isinstance(result, Refusal) else "allow")
    if isinstance(result, Refusal):
        if result.retry_after is not None:
            return error_page(
                request, visit, 429, "Too many attempts",
                f"Too many failed sign-ins. Try again in {wait_text(result.retry_after)}.",
                headers={"Retry-After": str(result.retry_after)})
        if result.reason is AuthFailure.UNAVAILABLE:
            return error_page(request, visit, 503, "Sign-in unavailable",
                              "The identity provider cannot be reached. Try again in a moment.")
        return render(request, visit, "login.html", {"username": username, "error": BAD_LOGIN})
    response = see_other("/ui/")
    if result.local:
        start_session(request, visit, snapshot.policy.accounts[result.name], response)
    else:  # a directory identity (CLI passwords and federation are not mounted at this door)
        start_identity_session(request, visit, result, response)
    return response


async def logout(request: web.Request, visit: Visit) -> web.StreamResponse:
    form = await checked_form(request, visit)
    if isinstance(form, web.Response):
        return form
    response = see_other("/ui/")
    end_session(request, visit, response)
    return response
