"""Registry JSON errors and the Bearer challenges, built in one place."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from aiohttp import web

from gateway.upstream.client import API_VERSION_HEADER, UpstreamError

SERVER_NAME = "registry-gateway"  # the product, never its versions
OMIT: Any = object()  # leave "detail" out of the error entirely


def registry_error(
    status: int,
    code: str,
    message: str,
    detail: Any = OMIT,
    headers: Mapping[str, str] | None = None,
) -> web.Response:
    error: dict[str, Any] = {"code": code, "message": message}
    if detail is not OMIT:
        error["detail"] = detail
    body = json.dumps({"errors": [error]}, separators=(",", ":")) + "\n"
    return web.Response(
        status=status,
        text=body,
        content_type="application/json",
        charset="utf-8",
        headers={**API_VERSION_HEADER, **(headers or {})},
    )


def challenge_header(realm: str, service: str, scope: str | None, error: str | None) -> str:
    value = f'Bearer realm="{realm}",service="{service}"'
    if scope:
        value += f',scope="{scope}"'
    if error:
        value += f',error="{error}"'
    return value


def unauthorized(realm: str, service: str, scope: str | None, error: str | None,
                 message: str = "authentication required") -> web.Response:
    """No usable credentials: 401 with a challenge that names what the route needs.

    `"detail": null`, as distribution's token auth answers (protocol.md §1.1).
    """
    return registry_error(
        401,
        "UNAUTHORIZED",
        message,
        detail=None,
        headers={"WWW-Authenticate": challenge_header(realm, service, scope, error)},
    )


def denied(realm: str, service: str, scope: str) -> web.Response:
    """Valid credentials without the access: the same answer whether the repository exists or not.

    401 + insufficient_scope + DENIED is the only shape that makes both Docker stores print
    "pull access denied ... repository does not exist or may require 'docker login'".
    """
    return registry_error(
        401,
        "DENIED",
        "requested access to the resource is denied",
        headers={"WWW-Authenticate": challenge_header(realm, service, scope, "insufficient_scope")},
    )


def bad_login() -> web.Response:
    return registry_error(401, "UNAUTHORIZED", "incorrect username or password")


# Said before any account is looked at, so it tells nothing about the account.
INSECURE_CREDENTIALS = "credentials are accepted only over https"


def insecure_credentials() -> web.Response:
    return registry_error(401, "UNAUTHORIZED", INSECURE_CREDENTIALS)


def identity_unavailable() -> web.Response:
    """A directory or an issuer could not be asked: try again, nothing was decided."""
    return registry_error(503, "UNAVAILABLE",
                          "the identity provider cannot be reached; try again later",
                          headers={"Retry-After": "10"})


def too_many_requests(retry_after: int) -> web.Response:
    return registry_error(
        429, "TOOMANYREQUESTS", "too many failed attempts; try again later",
        headers={"Retry-After": str(retry_after)},
    )


def plain_not_found() -> web.Response:
    """What the registry's router answers for a path no route matches."""
    return web.Response(status=404, text="404 page not found\n", headers=API_VERSION_HEADER)



def unsupported() -> web.Response:
    """A method the route does not have."""
    return registry_error(405, "UNSUPPORTED", "The operation is unsupported.")


def upstream_unavailable(failure: UpstreamError) -> web.Response:
    message = ("the registry behind the gateway did not answer in time"
               if failure.status == 504 else "the registry behind the gateway is unavailable")
    return registry_error(failure.status, "UNAVAILABLE", message)
