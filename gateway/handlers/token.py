"""The Docker token endpoint: GET with Basic or anonymous, POST OAuth2 password and refresh grants."""

from __future__ import annotations

from datetime import UTC, datetime

from aiohttp import web

from gateway.access import Refusal
from gateway.accounts import Account
from gateway.authn import AuthFailure
from gateway.authz import account_gate
from gateway.clientaddr import basic_credentials_allowed
from gateway.credentials import BasicCredentials, NoCredentials
from gateway.errors import bad_login, insecure_credentials, registry_error, too_many_requests
from gateway.handlers.common import audit_refusal, request_client, request_credentials
from gateway.scope import RepositoryScope, parse_scopes
from gateway.services import SERVICES, Services
from gateway.snapshot import Snapshot
from gateway.tokens import TokenError

MAX_FORM_BYTES = 64 * 1024


async def handle_token(request: web.Request) -> web.StreamResponse:
    services = request.app[SERVICES]
    snapshot = services.holder.current
    if request.method == "POST":
        return await _post(request, services, snapshot)
    if request.method not in ("GET", "HEAD"):
        return registry_error(405, "UNSUPPORTED", "The operation is unsupported.")
    service = request.query.get("service")
    if service is not None and service != services.service:
        return registry_error(400, "UNSUPPORTED", "token requested for another service")
    credentials = request_credentials(request, snapshot)
    if isinstance(credentials, Refusal):
        services.metrics.auth_failures.labels(credentials.reason.value).inc()
        audit_refusal(request, services, credentials, None)
        return _refused(credentials)
    account: Account | None = None
    if isinstance(credentials, BasicCredentials):
        result = await services.access.login(
            snapshot, credentials.username, credentials.password, request_client(request, snapshot)
        )
        if isinstance(result, Refusal):
            audit_refusal(request, services, result, credentials.username)
            return _refused(result)
        account = result
    elif not isinstance(credentials, NoCredentials):
        services.metrics.auth_failures.labels(AuthFailure.MALFORMED.value).inc()
        audit_refusal(request, services, Refusal(AuthFailure.MALFORMED), None)
        return bad_login()
    offline = request.query.get("offline_token", "").lower() == "true"
    return await _grant(services, snapshot, account, request.query.getall("scope", []),
                        offline, refresh_token=None)


async def _post(request: web.Request, services: Services, snapshot: Snapshot) -> web.Response:
    if request.content_type != "application/x-www-form-urlencoded":
        return registry_error(400, "UNSUPPORTED", "expected an application/x-www-form-urlencoded body")
    if (request.content_length or 0) > MAX_FORM_BYTES:
        return registry_error(400, "UNSUPPORTED", "form too large")
    form = await request.post()
    fields = {k: v for k, v in form.items() if isinstance(v, str)}
    service = fields.get("service")
    if service is not None and service != services.service:
        return registry_error(400, "UNSUPPORTED", "token requested for another service")
    scopes = [fields["scope"]] if "scope" in fields else []
    grant = fields.get("grant_type")
    if grant in ("password", "refresh_token") and not basic_credentials_allowed(
        request, snapshot.settings.server
    ):
        # A password or a long-lived refresh token in a form is as exposed as Basic.
        refusal = Refusal(AuthFailure.INSECURE_TRANSPORT)
        services.metrics.auth_failures.labels(refusal.reason.value).inc()
        audit_refusal(request, services, refusal, None)
        return _refused(refusal)
    if grant == "password":
        credentials = request_credentials(request, snapshot)
        if isinstance(credentials, Refusal):
            services.metrics.auth_failures.labels(credentials.reason.value).inc()
            audit_refusal(request, services, credentials, None)
            return _refused(credentials)
        result = await services.access.login(
            snapshot, fields.get("username", ""), fields.get("password", ""),
            request_client(request, snapshot),
        )
        if isinstance(result, Refusal):
            audit_refusal(request, services, result, fields.get("username"))
            return _refused(result)
        offline = fields.get("access_type") == "offline"
        return await _grant(services, snapshot, result, scopes, offline, None, oauth=True)
    if grant == "refresh_token":
        refresh = fields.get("refresh_token", "")
        account = _refresh_account(services, snapshot, refresh)
        if account is None:
            services.metrics.auth_failures.labels(AuthFailure.BAD_TOKEN.value).inc()
            audit_refusal(request, services, Refusal(AuthFailure.BAD_TOKEN), None)
            return bad_login()
        return await _grant(services, snapshot, account, scopes, False, refresh, oauth=True)
    return registry_error(400, "UNSUPPORTED", "unsupported grant_type")


def _refresh_account(services: Services, snapshot: Snapshot, token: str) -> Account | None:
    """The account a refresh token names, while it exists, is active and has the same password."""
    try:
        claims = services.tokens.verify_refresh(token)
    except TokenError:
        return None
    gate = account_gate(snapshot.policy, claims.subject, datetime.now(UTC))
    if gate is not None and not gate.allowed:
        return None
    account = snapshot.policy.accounts.get(claims.subject)
    if account is None or services.tokens.credential_tag(
        account.name, account.password_hash
    ) != claims.credential_tag:
        return None
    return account


def _refused(refusal: Refusal) -> web.Response:
    # One answer for unknown users, wrong passwords, disabled or expired accounts.
    if refusal.retry_after is not None:
        return too_many_requests(refusal.retry_after)
    if refusal.reason is AuthFailure.INSECURE_TRANSPORT:
        return insecure_credentials()
    return bad_login()


async def _grant(
    services: Services,
    snapshot: Snapshot,
    account: Account | None,
    scope_values: list[str],
    offline: bool,
    refresh_token: str | None,
    oauth: bool = False,
) -> web.Response:
    """A token for requested ∩ allowed; anonymous callers and refusals get an empty grant, not 401."""
    requested = parse_scopes(scope_values)
    subject = account.name if account is not None else None
    granted = []
    for scope in requested.repositories:
        actions = await services.access.allowed_actions(
            snapshot, subject, scope.name, scope.actions
        )
        if actions:
            granted.append(RepositoryScope(scope.name, actions))
    issued = services.tokens.issue_access(subject or "", granted, requested.catalog)
    services.metrics.tokens_issued.labels("access").inc()
    body: dict[str, object] = {
        "token": issued.token,
        "access_token": issued.token,
        "expires_in": issued.expires_in,
        "issued_at": issued.issued_at,
    }
    if oauth:
        parts = [s.format() for s in granted]
        if requested.catalog:
            parts.append("registry:catalog:*")
        body["scope"] = " ".join(parts)
    if account is not None and offline:
        body["refresh_token"] = services.tokens.issue_refresh(account.name, account.password_hash)
        services.metrics.tokens_issued.labels("refresh").inc()
    elif refresh_token is not None:
        body["refresh_token"] = refresh_token
    return web.json_response(body, headers={"Cache-Control": "no-store"})
