"""Who is looking: the session cookie checked against the current config on every request."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

from aiohttp import web

from gateway.access.request import ANONYMOUS, REQUEST_SCOPE, Caller, RequestScope
from gateway.config.schema import Settings
from gateway.http.clientaddr import is_secure
from gateway.http.services import SERVICES, Services
from gateway.policy.accounts import Account
from gateway.policy.subject import Subject
from gateway.runtime.snapshot import Snapshot
from gateway.ui.session import Revocations, Session, SessionCodec, new_csrf_cookie

SESSION_COOKIE = "rg_session"
CSRF_COOKIE = "rg_csrf"
COOKIE_PATH = "/ui"


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

    @property
    def snapshot(self) -> Snapshot:
        return self.scope.snapshot

    @property
    def subject(self) -> Subject | None:
        return Subject(self.account.name, self.account.kind) if self.account is not None else None

    @property
    def caller(self) -> Caller:
        return Caller(self.subject, presented_credentials=True) if self.account else ANONYMOUS

    @property
    def admin(self) -> bool:
        return self.account is not None and self.account.admin

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
    if claimed is None:
        return None
    account = snapshot.policy.accounts.get(claimed.subject)
    if account is None or services.access.gate_failure(
            snapshot, Subject(account.name, account.kind)) is not None:
        return None
    session = ui.codec.verify(cookie, account.password_hash)
    if session is None or ui.revocations.revoked(session):
        return None
    return account, session


def begin_visit(request: web.Request) -> Visit:
    services = request.app[SERVICES]
    ui = request.app[UI_STATE]
    scope = request[REQUEST_SCOPE]
    cookie = request.cookies.get(SESSION_COOKIE, "")
    checked = _checked_session(services, ui, scope.snapshot, cookie) if cookie else None
    csrf = request.cookies.get(CSRF_COOKIE, "")
    fresh_csrf = len(csrf) < 32 or len(csrf) > 128
    return Visit(
        services=services,
        scope=scope,
        ui=ui,
        account=checked[0] if checked else None,
        session=checked[1] if checked else None,
        csrf_cookie=new_csrf_cookie() if fresh_csrf else csrf,
        set_csrf_cookie=fresh_csrf,
        drop_session=bool(cookie) and checked is None,
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


def end_session(request: web.Request, visit: Visit, response: web.StreamResponse) -> None:
    if visit.session is not None:
        visit.ui.revocations.revoke(visit.session)
    visit.drop_session = True
