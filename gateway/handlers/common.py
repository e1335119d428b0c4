"""Small helpers shared by the HTTP handlers."""

from __future__ import annotations

from aiohttp import web

from gateway.access import Caller, Refusal
from gateway.authn import AuthFailure
from gateway.clientaddr import basic_credentials_allowed, client_address
from gateway.credentials import BasicCredentials, Credentials, parse_authorization
from gateway.errors import INSECURE_CREDENTIALS, too_many_requests, unauthorized
from gateway.services import Services
from gateway.snapshot import Snapshot

CLIENT_KEY = "rg_client"
USER_KEY = "rg_user"


def request_client(request: web.Request, snapshot: Snapshot) -> str:
    client = request.get(CLIENT_KEY)
    if not isinstance(client, str):
        client = client_address(request, snapshot.settings.server)
        request[CLIENT_KEY] = client
    return client


def request_credentials(request: web.Request, snapshot: Snapshot) -> Credentials | Refusal:
    credentials = parse_authorization(request.headers.get("Authorization"))
    if isinstance(credentials, BasicCredentials) and not basic_credentials_allowed(
        request, snapshot.settings.server
    ):
        return Refusal(AuthFailure.INSECURE_TRANSPORT)
    return credentials


async def identify(
    request: web.Request, services: Services, snapshot: Snapshot
) -> Caller | Refusal:
    credentials = request_credentials(request, snapshot)
    if isinstance(credentials, Refusal):
        services.metrics.auth_failures.labels(credentials.reason.value).inc()
        audit_refusal(request, services, credentials, None)
        return credentials
    caller = await services.access.authenticate(
        snapshot, credentials, request_client(request, snapshot)
    )
    if isinstance(caller, Caller):
        request[USER_KEY] = caller.label
    else:
        username = credentials.username if isinstance(credentials, BasicCredentials) else None
        audit_refusal(request, services, caller, username)
    return caller


def audit_refusal(
    request: web.Request, services: Services, refusal: Refusal, username: str | None
) -> None:
    """A failed authentication in the audit trail: who tried, from where, why; never the secret."""
    services.audit.write(
        "login",
        request_id=request.get("rg_request_id"),
        client=request_client(request, services.holder.current),
        user=username or "anonymous",
        route="token" if request.path == "/token" else "v2",
        result="deny",
        reason=refusal.reason.value,
        status=429 if refusal.retry_after is not None else 401,
    )


def refusal_response(services: Services, refusal: Refusal, scope: str | None) -> web.Response:
    """A failed authentication on /v2/: a fresh challenge, or 429 while locked out."""
    if refusal.retry_after is not None:
        return too_many_requests(refusal.retry_after)
    if refusal.reason is AuthFailure.INSECURE_TRANSPORT:
        return unauthorized(services.realm, services.service, scope, "invalid_token",
                            message=INSECURE_CREDENTIALS)
    return unauthorized(services.realm, services.service, scope, "invalid_token")
