"""Who is looking: the session cookie checked against the current config on every request."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

from aiohttp import web

from gateway.access.request import ANONYMOUS, REQUEST_SCOPE, Caller, RequestScope
from gateway.config.schema import Settings
from gateway.http.clientaddr import is_secure
from gateway.http.services import SERVICES, Services
from gateway.identity.failures import AuthFailure, IdentityUnavailable
from gateway.policy.accounts import Account
from gateway.policy.subject import EXTERNAL_KINDS, Subject
from gateway.runtime.snapshot import Snapshot
from gateway.ui.session import Revocations, Session, SessionCodec, new_csrf_cookie

SESSION_COOKIE = "rg_session"
CSRF_COOKIE = "rg_csrf"
COOKIE_PATH = "/ui"
CSRF_SHAPE = re.compile(r"[A-Za-z0-9_-]{32,128}", re.ASCII)


@dataclass(frozen=True)
class UiState:
    """The UI's own long-lived parts, kept under one AppKey (no module-level state)."""

    codec: SessionCodec
    revocations: Revocations
    pull_host: str  # what `docker pull HOST/...` names: public_url's host[:port]


UI_STATE = web.AppKey("ui_state", UiState)


def pull_host(settings: Settings) -> str:
    return urlsplit(settings.server.public_url).netloc


@dataclass
class Visit:
    """One request's view: the snapshot it reads, the viewer, and the cookies to send back."""

    services: Services
    scope: RequestScope
    ui: UiState
    account: Account | None
    session: Session | None
    csrf_cookie: str
    set_csrf_cookie: bool
    drop_session: bool
    identity: Subject | None = None  # a viewer that is not a local account (SSO, directory)

    @property
    def snapshot(self) -> Snapshot:
        return self.scope.snapshot

    @property
    def subject(self) -> Subject | None:
        if self.account is not None:
            return Subject(self.account.name, self.account.kind)
        return self.identity

    @property
    def caller(self) -> Caller:
        subject = self.subject
        return Caller(subject, presented_credentials=True) if subject is not None else ANONYMOUS

    @property
    def admin(self) -> bool:
        """Admin in the pages: a local admin, or an SSO viewer in `sso.admin_groups` (pages
        only: decisions and tokens never make a non-local identity an admin)."""
        if self.account is not None:
            return self.account.admin
        sso = self.snapshot.settings.sso
        return (self.identity is not None and self.identity.kind == "sso" and sso is not None
                and not self.identity.groups.isdisjoint(sso.admin_groups))

    @property
    def sid(self) -> str:
        return self.session.sid if self.session is not None else ""

    @property
    def csrf_token(self) -> str:
        return self.ui.codec.csrf_token(self.csrf_cookie, self.sid)


def _checked_session(
    services: Services, ui: UiState, snapshot: Snapshot, cookie: str
) -> tuple[Account, Session] | None:
    claimed = ui.codec.peek(cookie)
    if claimed is None or not claimed.local:
        return None
    account = snapshot.policy.accounts.get(claimed.subject)
    if account is None or services.access.gate_failure(
            snapshot, Subject(account.name, account.kind)) is not None:
        return None
    session = ui.codec.verify(cookie, account.password_hash)
    if session is None or ui.revocations.revoked(session):
        return None
    return account, session


async def _checked_identity(services: Services, ui: UiState, snapshot: Snapshot,
                            cookie: str) -> tuple[Subject, Session] | None:
    """A non-local viewer, checked again by its backend on every page (disabled_identities,
    `sso` removed, a name now taken ...)."""
    session = ui.codec.verify_identity(cookie)
    kind = next((k for k in EXTERNAL_KINDS if session is not None and k == session.kind), None)
    if session is None or kind is None or ui.revocations.revoked(session):
        return None
    claimed = Subject(session.subject, kind, frozenset(session.groups),
                      expires_at=float(session.expires), binding=session.binding)
    try:
        checked = await services.access.identities.recheck(snapshot, claimed)
    except IdentityUnavailable:
        return None  # cannot tell now: this page is shown as to a visitor
    if isinstance(checked, AuthFailure) or services.access.gate_failure(snapshot, checked):
        return None
    return checked, session


async def begin_visit(request: web.Request) -> Visit:
    services = request.app[SERVICES]
    ui = request.app[UI_STATE]
    scope = request[REQUEST_SCOPE]
    cookie = request.cookies.get(SESSION_COOKIE, "")
    checked = _checked_session(services, ui, scope.snapshot, cookie) if cookie else None
    identity = (await _checked_identity(services, ui, scope.snapshot, cookie)
                if cookie and checked is None else None)
    csrf = request.cookies.get(CSRF_COOKIE, "")
    # Only a cookie of our own alphabet is kept: anything else is replaced, never hashed.
    fresh_csrf = CSRF_SHAPE.fullmatch(csrf) is None
    return Visit(
        services=services,
        scope=scope,
        ui=ui,
        account=checked[0] if checked else None,
        session=checked[1] if checked else identity[1] if identity else None,
        csrf_cookie=new_csrf_cookie() if fresh_csrf else csrf,
        set_csrf_cookie=fresh_csrf,
        drop_session=bool(cookie) and checked is None and identity is None,
        identity=identity[0] if identity else None,
    )


def secure_cookies(request: web.Request, settings: Settings) -> bool:
    server = settings.server
    return (server.tls is not None or server.public_url.startswith("https://")
            or is_secure(request, server))


def _set(response: web.StreamResponse, name: str, value: str, secure: bool,
         max_age: int | None) -> None:
    response.set_cookie(name, value, path=COOKIE_PATH, httponly=True, samesite="Lax",
                        secure=secure, max_age=max_age)


def apply_cookies(request: web.Request, visit: Visit, response: web.StreamResponse) -> None:
    """Send the CSRF cookie a new visitor needs, and drop a session that no longer holds."""
    secure = secure_cookies(request, visit.snapshot.settings)
    if visit.set_csrf_cookie:
        _set(response, CSRF_COOKIE, visit.csrf_cookie, secure, None)
    if visit.drop_session:
        response.del_cookie(SESSION_COOKIE, path=COOKIE_PATH, secure=secure, httponly=True,
                            samesite="Lax")


def start_session(request: web.Request, visit: Visit, account: Account,
                  response: web.StreamResponse) -> None:
    ttl = visit.snapshot.settings.ui.session_ttl  # a reload changes it for new sessions
    cookie, _ = visit.ui.codec.issue(account.name, account.password_hash, ttl)
    secure = secure_cookies(request, visit.snapshot.settings)
    _set(response, SESSION_COOKIE, cookie, secure, ttl)
    visit.drop_session = False


def start_identity_session(request: web.Request, visit: Visit, subject: Subject,
                           response: web.StreamResponse) -> None:
    """A session for a non-local identity (SSO now, a directory later), never longer than its
    credential."""
    ttl = visit.snapshot.settings.ui.session_ttl
    if subject.expires_at is not None:
        ttl = max(1, min(ttl, int(subject.expires_at - time.time())))
    cookie, _ = visit.ui.codec.issue_identity(subject, ttl)
    _set(response, SESSION_COOKIE, cookie, secure_cookies(request, visit.snapshot.settings), ttl)
    visit.drop_session = False


def end_session(request: web.Request, visit: Visit, response: web.StreamResponse) -> None:
    if visit.session is not None:
        visit.ui.revocations.revoke(visit.session)
    visit.drop_session = True
