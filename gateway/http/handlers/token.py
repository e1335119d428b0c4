"""The Docker token endpoint: GET with Basic or anonymous, POST OAuth2 password and refresh grants."""

from __future__ import annotations

from aiohttp import web

from gateway.access.request import REQUEST_SCOPE, Refusal, RequestScope, identity_fields
from gateway.http.errors import registry_error, unsupported
from gateway.http.forms import read_form
from gateway.http.handlers.refusals import refusal_response
from gateway.http.services import SERVICES, Services
from gateway.identity.credentials import BasicCredentials, NoCredentials, parse_authorization
from gateway.identity.directory import access_ttl
from gateway.identity.failures import AuthFailure
from gateway.policy.scope import RepositoryScope, parse_scopes
from gateway.policy.subject import Subject

MAX_FORM_BYTES = 64 * 1024
FORM_TYPE = "application/x-www-form-urlencoded"


async def handle_token(request: web.Request) -> web.StreamResponse:
    services = request.app[SERVICES]
    rs = request[REQUEST_SCOPE]
    if request.method == "POST":
        return await _post(request, services, rs)
    if request.method not in ("GET", "HEAD"):
        return unsupported()
    service = request.query.get("service")
    if service is not None and service != services.service:
        return registry_error(400, "UNSUPPORTED", "token requested for another service")
    credentials = parse_authorization(request.headers.get("Authorization"))
    subject: Subject | None = None
    if isinstance(credentials, BasicCredentials):
        result = await services.access.login(rs, credentials.username, credentials.password)
        if isinstance(result, Refusal):
            return refusal_response(services, result, "token")
        subject = result
    elif not isinstance(credentials, NoCredentials):
        return refusal_response(services, services.access.refuse(rs, AuthFailure.MALFORMED),
                                "token")
    offline = request.query.get("offline_token", "").lower() == "true"
    return await _grant(services, rs, subject, request.query.getall("scope", []), offline, None)


async def _post(request: web.Request, services: Services, rs: RequestScope) -> web.Response:
    if request.content_type != FORM_TYPE:
        return registry_error(400, "UNSUPPORTED", f"expected an {FORM_TYPE} body")
    if (request.content_length or 0) > MAX_FORM_BYTES:
        return registry_error(400, "UNSUPPORTED", "form too large")
    form = await read_form(request)
    if form is None:
        return registry_error(400, "UNSUPPORTED", "the form body cannot be read")
    fields = dict(form.items())
    service = fields.get("service")
    if service is not None and service != services.service:
        return registry_error(400, "UNSUPPORTED", "token requested for another service")
    scopes = [fields["scope"]] if "scope" in fields else []
    grant = fields.get("grant_type")
    if grant in ("password", "refresh_token") and not rs.passwords_allowed:
        # A password or a long-lived refresh token in a form is as exposed as Basic.
        refusal = services.access.refuse(rs, AuthFailure.INSECURE_TRANSPORT)
        return refusal_response(services, refusal, "token")
    if grant == "password":
        result = await services.access.login(rs, fields.get("username", ""),
                                              fields.get("password", ""))
        if isinstance(result, Refusal):
            return refusal_response(services, result, "token")
        offline = fields.get("access_type") == "offline"
        return await _grant(services, rs, result, scopes, offline, None, oauth=True)
    if grant == "refresh_token":
        refresh = fields.get("refresh_token", "")
        subject = await services.access.refresh(rs, refresh)
        if isinstance(subject, Refusal):
            return refusal_response(services, subject, "token")
        return await _grant(services, rs, subject, scopes, False, refresh, oauth=True)
    return registry_error(400, "UNSUPPORTED", "unsupported grant_type")


async def _granted(services: Services, rs: RequestScope, subject: Subject | None,
                   scope_values: list[str]) -> tuple[list[RepositoryScope], bool]:
    """requested ∩ allowed, with one audit line per requested scope naming what decided."""
    requested = parse_scopes(scope_values)
    granted = []
    for scope in requested.repositories:
        verdicts = await services.access.decide(rs.snapshot, subject, scope.name, scope.actions)
        if verdicts.granted:
            granted.append(RepositoryScope(scope.name, verdicts.granted))
        services.audit.write(
            "token", request_id=rs.request_id, client=rs.client,
            user=subject.name if subject else "anonymous", **identity_fields(subject),
            repository=scope.name,
            requested=sorted(scope.actions), granted=sorted(verdicts.granted),
            decisions={v.action: {"result": "allow" if v.allowed else "deny",
                                  "reason": v.describe(),
                                  "rule_index": v.rule.index if v.rule else None}
                       for v in verdicts})
    return granted, requested.catalog


async def _grant(services: Services, rs: RequestScope, subject: Subject | None,
                 scope_values: list[str], offline: bool, refresh_token: str | None,
                 oauth: bool = False) -> web.Response:
    """A token for requested ∩ allowed; anonymous callers get an empty grant, not a 401."""
    granted, catalog = await _granted(services, rs, subject, scope_values)
    issued = services.tokens.issue_access(subject, granted, catalog,
                                          ttl=access_ttl(rs.snapshot.settings, subject))
    services.metrics.tokens_issued.labels("access").inc()
    body: dict[str, object] = {
        "token": issued.token,
        "access_token": issued.token,
        "expires_in": issued.expires_in,
        "issued_at": issued.issued_at,
    }
    if oauth:
        parts = [s.format() for s in granted]
        if catalog:
            parts.append("registry:catalog:*")
        body["scope"] = " ".join(parts)
    local = subject is not None and subject.local
    account = rs.snapshot.policy.accounts.get(subject.name) if subject and local else None
    # Non-local: one that ends with its credential (a CLI password), never for a workload.
    identity_refresh = (services.tokens.issue_identity_refresh(subject)
                        if subject is not None and not local and offline else None)
    if account is not None and offline:
        body["refresh_token"] = services.tokens.issue_refresh(account.name, account.password_hash)
        services.metrics.tokens_issued.labels("refresh").inc()
    elif identity_refresh is not None:
        body["refresh_token"] = identity_refresh
        services.metrics.tokens_issued.labels("refresh").inc()
    elif refresh_token is not None:
        body["refresh_token"] = refresh_token
    return web.json_response(body, headers={"Cache-Control": "no-store"})
