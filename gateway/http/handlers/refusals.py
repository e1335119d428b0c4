"""A failed authentication as an answer: the one mapping from a Refusal to a response."""

from __future__ import annotations

from typing import Literal

from aiohttp import web

from gateway.access.request import Refusal
from gateway.http.errors import (
    INSECURE_CREDENTIALS,
    bad_login,
    identity_unavailable,
    insecure_credentials,
    too_many_requests,
    unauthorized,
)
from gateway.http.services import Services
from gateway.identity.failures import AuthFailure


def refusal_response(services: Services, refusal: Refusal, endpoint: Literal["v2", "token"],
                     scope: str | None = None) -> web.Response:
    """429 while locked out; 503 when a directory or an issuer could not decide; else /v2/ gets
    a fresh challenge and /token one answer for unknown users, wrong passwords, disabled or
    expired accounts alike."""
    if refusal.retry_after is not None:
        return too_many_requests(refusal.retry_after)
    if refusal.reason is AuthFailure.UNAVAILABLE:  # nothing was decided: not a 401
        return identity_unavailable()
    insecure = refusal.reason is AuthFailure.INSECURE_TRANSPORT
    if endpoint == "token":
        return insecure_credentials() if insecure else bad_login()
    if insecure:
        return unauthorized(services.realm, services.service, scope, "invalid_token",
                            message=INSECURE_CREDENTIALS)
    return unauthorized(services.realm, services.service, scope, "invalid_token")
