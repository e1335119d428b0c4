"""The access service: every credential kind to a Caller, every failure counted and audited
in one place (`refuse`), and the decision door (`decide`) beside it."""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Iterable
from datetime import UTC, datetime

from gateway.access.decisions import Decider, Verdicts
from gateway.access.request import ANONYMOUS, Caller, Refusal, RequestScope
from gateway.audit import AuditLog
from gateway.config.htpasswd import is_account_name
from gateway.identity.backends import Door, IdentityBackends, source_configured
from gateway.identity.credentials import (
    BasicCredentials,
    BearerCredentials,
    Credentials,
    NoCredentials,
)
from gateway.identity.failures import AuthFailure, IdentityUnavailable, failure_for_gate
from gateway.metrics import Metrics
from gateway.policy.actions import Action
from gateway.policy.decide import account_gate
from gateway.policy.subject import Subject
from gateway.runtime.snapshot import Snapshot
from gateway.state.lockout import LockoutStore
from gateway.tokens import AccessClaims, RefreshClaims, TokenAuthority, TokenError

_JWT_SHAPE = re.compile(r"eyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*", re.ASCII)


def auditable_username(username: str | None) -> str | None:
    """A failed login's name reaches the audit only when it could be an account's (never a
    password typed into the username field, never a token)."""
    if username is None or not is_account_name(username) or _JWT_SHAPE.fullmatch(username):
        return None
    return username


def lockout_name(username: str) -> str:
    """The name failures are counted under: a directory matches names ignoring case and extra
    spaces (LDAP's caseIgnoreMatch), so `Erin` and ` ERIN` must not each get their own tries."""
    return " ".join(username.casefold().split())


class AccessService:
    def __init__(self, tokens: TokenAuthority, identities: IdentityBackends, decider: Decider,
                 lockout: LockoutStore, metrics: Metrics, audit: AuditLog,
                 attempt_secret: bytes) -> None:
        self.tokens = tokens
        self.identities = identities
        self._decider = decider
        self._lockout = lockout
        self._metrics = metrics
        self._audit = audit
        self._attempt_secret = attempt_secret
        for reason in AuthFailure:  # every reason has a series from the start
            metrics.auth_failures.labels(reason.value)

    def refuse(self, rs: RequestScope, reason: AuthFailure, username: str | None = None,
               retry_after: int | None = None, backend: str | None = None) -> Refusal:
        """The one refusal path: counted, audited (never the secret), then answered by the caller."""
        self._metrics.auth_failures.labels(reason.value).inc()
        status = 429 if retry_after is not None else 503 if reason is AuthFailure.UNAVAILABLE else 401
        extra = {"backend": backend} if backend else {}
        self._audit.write(
            "login", request_id=rs.request_id, client=rs.client,
            user=auditable_username(username) or "anonymous",
            route=rs.route if rs.route in ("token", "ui") else "v2", result="deny",
            reason=reason.value, status=status, **extra)
        return Refusal(reason, retry_after)

    async def login(self, rs: RequestScope, username: str, password: str) -> Subject | Refusal:
        """A password check by whichever backend owns the name, with lockout per (name, client)."""
        if not rs.passwords_allowed:
            return self.refuse(rs, AuthFailure.INSECURE_TRANSPORT)
        key = f"{lockout_name(username)}\x1f{rs.client}"
        locked = await self._lockout.locked_for(key)
        if locked is not None:
            return self.refuse(rs, AuthFailure.LOCKED_OUT, username, locked)
        try:
            result = await self.identities.verify(rs.snapshot, username, password, door_of(rs))
        except IdentityUnavailable as exc:  # could not decide: not a failed attempt either
            return self.refuse(rs, AuthFailure.UNAVAILABLE, username, backend=exc.backend)
        if isinstance(result, Subject):
            # A non-local identity is refused by name here (disabled_identities), not only
            # at each decision, so `docker login` itself fails.
            failure = None if result.local else self.gate_failure(rs.snapshot, result)
            if failure is None:
                return result
            result = failure
        attempt = hmac.new(self._attempt_secret, f"{key}\x1f{password}".encode(
            "utf-8", "surrogatepass"), hashlib.sha256).hexdigest()
        settings = rs.snapshot.settings.auth.lockout
        if await self._lockout.record_failure(key, attempt, settings) is not None:
            self._metrics.lockouts.inc()
        return self.refuse(rs, result, username)

    async def authenticate(self, rs: RequestScope, credentials: Credentials) -> Caller | Refusal:
        if isinstance(credentials, NoCredentials):
            return ANONYMOUS
        if isinstance(credentials, BasicCredentials):
            subject = await self.login(rs, credentials.username, credentials.password)
            return subject if isinstance(subject, Refusal) else Caller(subject, True)
        if isinstance(credentials, BearerCredentials):
            return self.bearer(rs, credentials.token)
        return self.refuse(rs, AuthFailure.MALFORMED)

    def bearer(self, rs: RequestScope, token: str) -> Caller | Refusal:
        try:
            claims = self.tokens.verify_access(token)
        except TokenError:
            return self.refuse(rs, AuthFailure.BAD_TOKEN)
        subject = _token_subject(rs.snapshot, claims)
        failure = self.gate_failure(rs.snapshot, subject)
        if failure is not None:
            return self.refuse(rs, failure)
        return Caller(subject, presented_credentials=True, token_access=claims.access)

    def gate_failure(self, snapshot: Snapshot, subject: Subject | None) -> AuthFailure | None:
        """Why the running config refuses `subject` outright (disabled, expired, gone), if it does."""
        if subject is not None and not source_configured(snapshot.settings, subject):
            return AuthFailure.UNKNOWN_USER  # its federation entry, sso or directory is gone
        gate = account_gate(snapshot.policy, subject, datetime.now(UTC))
        return failure_for_gate(gate.reason) if gate is not None and not gate.allowed else None

    async def refresh(self, rs: RequestScope, token: str) -> Subject | Refusal:
        """The account a refresh token names, while it exists, is active and has the same password;
        a non-local identity while the backend that vouched for it still does."""
        try:
            claims = self.tokens.verify_refresh(token)
        except TokenError:
            return self.refuse(rs, AuthFailure.BAD_TOKEN)
        if claims.kind is not None:
            return await self._refresh_identity(rs, claims)
        account = rs.snapshot.policy.accounts.get(claims.subject)
        subject = rs.snapshot.policy.subject_for(claims.subject)
        if (account is None or subject is None or self.gate_failure(rs.snapshot, subject)
                or self.tokens.credential_tag(account.name, account.password_hash)
                != claims.credential_tag):
            return self.refuse(rs, AuthFailure.BAD_TOKEN)
        return subject

    async def _refresh_identity(self, rs: RequestScope, claims: RefreshClaims) -> Subject | Refusal:
        assert claims.kind is not None
        claimed = Subject(claims.subject, claims.kind, claims.groups,
                          expires_at=claims.expires_at, binding=claims.binding)
        try:
            result = await self.identities.recheck(rs.snapshot, claimed)
        except IdentityUnavailable as exc:
            return self.refuse(rs, AuthFailure.UNAVAILABLE, claims.subject, backend=exc.backend)
        if isinstance(result, AuthFailure) or self.gate_failure(rs.snapshot, result) is not None:
            return self.refuse(rs, AuthFailure.BAD_TOKEN, claims.subject)
        return result

    async def decide(self, snapshot: Snapshot, caller: Caller | Subject | None, repository: str,
                     actions: Iterable[Action], *, cached: bool = True,
                     count: bool = True) -> Verdicts:
        return await self._decider.decide(snapshot, caller, repository, actions,
                                          cached=cached, count=count)


def door_of(rs: RequestScope) -> Door:
    """Which door a password came through, by the request's route."""
    return "token" if rs.route == "token" else "ui" if rs.route == "ui" else "v2"


def _token_subject(snapshot: Snapshot, claims: AccessClaims) -> Subject | None:
    if not claims.subject:
        return None
    if claims.kind is None:  # a local account: its kind is the running config's
        return snapshot.policy.subject_for(claims.subject) or Subject(claims.subject)
    return Subject(claims.subject, claims.kind, claims.groups)
