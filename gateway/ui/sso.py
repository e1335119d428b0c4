"""Single sign-on for the pages (/ui/sso/start, /ui/sso/callback) and the CLI password page.

The flow is oidc_flow's (authorization code, PKCE, state, nonce); what the browser keeps in
between is sealed (AES-GCM) in a short-lived cookie scoped to /ui/sso. The identity is
iss + sub; the name, groups and every refusal are sso_names'. /ui/cli-password offers an SSO
viewer a CLI password (cli_tokens) for `docker login`; it is shown once, never logged.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from aiohttp import web

from gateway.config.htpasswd import is_account_name
from gateway.identity.oidc_flow import MAX_PENDING_AGE, LoginFailed, PendingLogin
from gateway.identity.oidc_keys import IssuerUnavailable
from gateway.policy.subject import Subject
from gateway.ui.login import checked_form, see_other
from gateway.ui.render import error_page, not_found, render
from gateway.ui.visit import Visit, secure_cookies, start_identity_session

log = logging.getLogger("registry_gateway.ui.sso")
PENDING_COOKIE = "rg_sso"
PENDING_PATH = "/ui/sso"
CALLBACK_PATH = "/ui/sso/callback"
REFUSED = ("Your single sign-on account cannot be used with this registry (its username is "
           "not valid here, already taken, or disabled). Ask the registry's operator.")
FAILED = "Single sign-on did not complete. Go back to the sign-in page and try again."


def _fail(request: web.Request, visit: Visit, result: str, name: str | None = None) -> web.Response:
    visit.services.metrics.sso_logins.labels(result).inc()
    visit.services.audit.write("ui_login", request_id=visit.scope.request_id,
                               client=visit.scope.client, kind="sso", result="deny",
                               reason=result, user=name if name and is_account_name(name) else None)
    if result == "unavailable":
        response = error_page(request, visit, 503, "Sign-in unavailable",
                              "The identity provider cannot be reached. Try again in a moment.")
    elif result in ("bad_name", "name_taken", "name_contested", "disabled"):
        response = error_page(request, visit, 403, "Account not usable here", REFUSED)
    else:
        response = error_page(request, visit, 400 if result in ("state", "expired") else 401,
                              "Sign-in failed", FAILED)
    response.del_cookie(PENDING_COOKIE, path=PENDING_PATH)
    return response


async def start(request: web.Request, visit: Visit) -> web.StreamResponse:
    sso = visit.snapshot.settings.sso
    if sso is None:
        return not_found(request, visit)
    callback = visit.snapshot.settings.server.public_url.rstrip("/") + CALLBACK_PATH
    try:
        url, pending = await visit.services.oidc.sso_client(sso).begin(callback)
    except (IssuerUnavailable, OSError, ValueError) as exc:
        log.warning("sso: cannot start a sign-in: %s", type(exc).__name__)
        return _fail(request, visit, "unavailable")
    except LoginFailed as exc:
        return _fail(request, visit, exc.reason)
    response = web.Response(status=303, headers={"Location": url})
    response.set_cookie(PENDING_COOKIE, visit.ui.codec.seal(pending.as_dict(), int(MAX_PENDING_AGE)),
                        path=PENDING_PATH, httponly=True, samesite="Lax",
                        secure=secure_cookies(request, visit.snapshot.settings),
                        max_age=int(MAX_PENDING_AGE))
    return response


async def callback(request: web.Request, visit: Visit) -> web.StreamResponse:
    snapshot = visit.snapshot
    sso = snapshot.settings.sso
    if sso is None:
        return not_found(request, visit)
    sealed = visit.ui.codec.unseal(request.cookies.get(PENDING_COOKIE, ""))
    try:
        if sealed is None:
            raise LoginFailed("state")
        pending = PendingLogin.from_dict(sealed)
        login = await visit.services.oidc.sso_client(sso).finish(pending, dict(request.query))
    except LoginFailed as exc:
        return _fail(request, visit, exc.reason)
    except (IssuerUnavailable, OSError, ValueError):
        return _fail(request, visit, "unavailable")
    subject = visit.services.sso_names.identity(snapshot, login.iss, login.sub, login.claims)
    if isinstance(subject, str):
        name = login.claims.get(sso.username_claim)
        return _fail(request, visit, subject, name if isinstance(name, str) else None)
    visit.services.metrics.sso_logins.labels("success").inc()
    visit.services.audit.write("ui_login", request_id=visit.scope.request_id,
                               client=visit.scope.client, user=subject.name, kind="sso",
                               result="allow")
    response = see_other("/ui/cli-password")
    start_identity_session(request, visit, subject, response)
    response.del_cookie(PENDING_COOKIE, path=PENDING_PATH)
    return response


def _sso_viewer(visit: Visit) -> Subject | None:
    identity = visit.identity
    return identity if identity is not None and identity.kind == "sso" else None


def _days(seconds: int) -> str:
    days, rest = divmod(seconds, 86400)
    return f"{days} days" if not rest else f"{days} days {rest // 3600} hours"


async def cli_password_form(request: web.Request, visit: Visit) -> web.StreamResponse:
    sso = visit.snapshot.settings.sso
    if _sso_viewer(visit) is None or sso is None:
        return not_found(request, visit)
    return render(request, visit, "cli_password.html", {
        "password": None, "lifetime": _days(sso.cli_token_ttl), "expires": None})


async def cli_password_create(request: web.Request, visit: Visit) -> web.StreamResponse:
    form = await checked_form(request, visit)
    if isinstance(form, web.Response):
        return form
    viewer, sso = _sso_viewer(visit), visit.snapshot.settings.sso
    if viewer is None or sso is None:
        return not_found(request, visit)
    password, expires = visit.services.cli_tokens.issue(viewer, sso.cli_token_ttl)
    visit.services.audit.write("cli_password", request_id=visit.scope.request_id,
                               client=visit.scope.client, user=viewer.name, kind="sso",
                               expires=datetime.fromtimestamp(expires, UTC).isoformat())
    return render(request, visit, "cli_password.html", {
        "password": password, "lifetime": _days(sso.cli_token_ttl),
        "expires": datetime.fromtimestamp(expires, UTC)})
