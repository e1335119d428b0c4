"""/v2/: parse the route, decide for the caller, then answer locally or forward upstream."""

from __future__ import annotations

import json
import time

from aiohttp import web

from gateway.access.decisions import Verdict
from gateway.access.request import REQUEST_SCOPE, Caller, Refusal, RequestScope, identity_fields
from gateway.access.uploads import MountSource, patch_problem
from gateway.http.errors import (
    denied,
    plain_not_found,
    registry_error,
    unauthorized,
    unsupported,
    upstream_unavailable,
)
from gateway.http.handlers.refusals import refusal_response
from gateway.http.services import SERVICES, Services
from gateway.http.visible import visible_page
from gateway.identity.credentials import parse_authorization
from gateway.policy.names import (
    DIGEST,
    PathError,
    RoutedPath,
    impossible_manifest,
    parse_v2_path,
)
from gateway.policy.routes import query_problem, query_values, required_actions
from gateway.policy.scope import RepositoryScope
from gateway.upstream.catalog import page_size
from gateway.upstream.client import API_VERSION_HEADER, UpstreamError
from gateway.upstream.repairs import is_plain_blob

COMPLETED = {("manifests", "GET", 200): "pull", ("manifests", "PUT", 201): "push",
             ("manifests", "DELETE", 202): "delete", ("blobs", "DELETE", 202): "delete"}


async def handle_v2(request: web.Request) -> web.StreamResponse:
    services = request.app[SERVICES]
    rs = request[REQUEST_SCOPE]
    path, _, query = request.raw_path.partition("?")
    routed = parse_v2_path(path)
    if routed is None:
        return plain_not_found()
    if isinstance(routed, PathError):
        impossible = impossible_manifest(path) if request.method in ("GET", "HEAD") else None
        if impossible is None:
            return registry_error(routed.status, routed.code, routed.message)
        rs.route = impossible.route  # decided first, so private and missing stay alike
        return await _repository(request, services, rs, impossible, query, impossible=True)
    rs.route = routed.route
    if routed.route == "base":
        return await _base(request, services, rs)
    if routed.route == "catalog":
        return await _catalog(request, services, rs, query)
    return await _repository(request, services, rs, routed, query)


async def _identify(request: web.Request, services: Services,
                    rs: RequestScope) -> Caller | Refusal:
    credentials = parse_authorization(request.headers.get("Authorization"))
    caller = await services.access.authenticate(rs, credentials)
    if isinstance(caller, Caller):
        rs.caller = caller
    return caller


async def _base(request: web.Request, services: Services, rs: RequestScope) -> web.Response:
    """`GET /v2/` always challenges the unauthenticated, so `docker login` sends its password."""
    if request.method not in ("GET", "HEAD"):
        return unsupported()
    caller = await _identify(request, services, rs)
    if isinstance(caller, Refusal):
        return refusal_response(services, caller, "v2")
    if not caller.presented_credentials:
        return unauthorized(services.realm, services.service, None, None)
    return web.json_response({}, headers=API_VERSION_HEADER)


async def _catalog(request: web.Request, services: Services, rs: RequestScope,
                   query: str) -> web.Response:
    if request.method not in ("GET", "HEAD"):
        return unsupported()
    caller = await _identify(request, services, rs)
    if isinstance(caller, Refusal):
        return refusal_response(services, caller, "v2", "registry:catalog:*")
    params = query_values(query)
    n = page_size(params.get("n"))
    if n is None:
        return registry_error(400, "PAGINATION_NUMBER_INVALID",
                              "invalid number of results requested")
    try:
        page = await visible_page(services, rs.snapshot, caller, n, params.get("last", ""))
    except UpstreamError as failure:
        return upstream_unavailable(failure)
    headers = dict(API_VERSION_HEADER)
    link = page.link(n)
    if link:
        headers["Link"] = link
    return web.json_response({"repositories": page.repositories}, headers=headers,
                             dumps=lambda o: json.dumps(o, separators=(",", ":")))


async def _repository(request: web.Request, services: Services, rs: RequestScope,
                      routed: RoutedPath, query: str,
                      impossible: bool = False) -> web.StreamResponse:
    assert routed.name is not None
    actions = required_actions(routed, request.method)
    if actions is None:
        return unsupported()
    problem = query_problem(query, request.headers.getall("Content-Type", []))
    if problem:
        return registry_error(400, "UNSUPPORTED", problem)
    scope = RepositoryScope(routed.name, frozenset(actions)).format()
    caller = await _identify(request, services, rs)
    if isinstance(caller, Refusal):
        return refusal_response(services, caller, "v2", scope)
    verdicts = await services.access.decide(rs.snapshot, caller, routed.name, actions)
    verdict = verdicts.deciding()
    if not verdicts.allowed:
        _audit(request, services, rs, routed, verdict, 401, 0)
        if not caller.presented_credentials:
            return unauthorized(services.realm, services.service, scope, None)
        return denied(services.realm, services.service, scope)
    if impossible:
        _audit(request, services, rs, routed, verdict, 404, 0)
        return registry_error(404, "MANIFEST_UNKNOWN", "manifest unknown")
    if routed.route == "uploads" and routed.reference:
        if not await services.uploads.may_continue(caller, routed):
            _audit(request, services, rs, routed, verdict, 404, 0)
            return registry_error(404, "BLOB_UPLOAD_UNKNOWN", "blob upload unknown to registry")
        patch = patch_problem(request.method, request.headers.get("Content-Type", ""))
        if patch:
            _audit(request, services, rs, routed, verdict, 400, 0)
            return registry_error(400, "UNSUPPORTED", patch)
    elif routed.route == "uploads":
        mount = await services.uploads.checked_mount(rs.snapshot, caller, query)
        if isinstance(mount, MountSource):
            _audit(request, services, rs, routed, mount.verdict, 401, 0)
            source = RepositoryScope(mount.name, frozenset({"pull"})).format()
            return denied(services.realm, services.service, f"{scope} {source}")
        query = mount
    return await _forward(request, services, rs, routed, verdict, query)


async def _forward(request: web.Request, services: Services, rs: RequestScope,
                   routed: RoutedPath, verdict: Verdict, query: str) -> web.StreamResponse:
    assert routed.name is not None and rs.caller is not None
    path_qs = request.raw_path.partition("?")[0] + (f"?{query}" if query else "")
    try:
        forwarded = await services.content.forward(
            request, rs.snapshot.settings.cache.manifests, routed, path_qs)
    except UpstreamError as failure:
        _audit(request, services, rs, routed, verdict, failure.status, 0)
        return upstream_unavailable(failure)
    if await _parsed_a_plain_blob(services, request.method, routed, forwarded.status):
        _audit(request, services, rs, routed, verdict, 404, 0)
        return registry_error(404, "MANIFEST_UNKNOWN", "manifest unknown")
    if forwarded.complete:
        await services.uploads.track(rs.caller, routed, request.method, forwarded.status,
                                     forwarded.headers.get("Docker-Upload-UUID", ""))
        if forwarded.status == 201:
            services.catalog.note(routed.name)  # a push may have created the repository
    size = forwarded.bytes_down + forwarded.bytes_up if forwarded.complete else 0
    _audit(request, services, rs, routed, verdict, forwarded.status, size)
    completed = COMPLETED.get((routed.route, request.method, forwarded.status))
    if completed and forwarded.complete:
        services.audit.write(completed, request_id=rs.request_id, client=rs.client,
                             user=rs.user, **identity_fields(rs.caller.subject),
                             repository=routed.name,
                             reference=routed.reference, status=forwarded.status, bytes=size)
    return forwarded.response


async def _parsed_a_plain_blob(services: Services, method: str, routed: RoutedPath,
                               status: int) -> bool:
    """A manifest read by digest that distribution answered 500 because the digest names a
    blob that is not a manifest (upstream/repairs.py)."""
    return (status == 500 and routed.route == "manifests" and method in ("GET", "HEAD")
            and routed.name is not None and routed.reference is not None
            and DIGEST.fullmatch(routed.reference) is not None
            and await is_plain_blob(services.upstream, routed.name, routed.reference))


def _audit(request: web.Request, services: Services, rs: RequestScope, routed: RoutedPath,
           verdict: Verdict, status: int, size: int) -> None:
    rule = verdict.rule
    # The route's action (push for a push that failed on pull), so a filter on it finds it.
    action = (required_actions(routed, request.method) or (verdict.action,))[-1]
    services.audit.write(
        "access",
        request_id=rs.request_id,
        client=rs.client,
        user=rs.user,
        **identity_fields(rs.caller.subject if rs.caller else None),
        method=request.method,
        route=routed.route,
        repository=routed.name,
        action=action,
        result="allow" if verdict.allowed else "deny",
        reason=verdict.describe(),
        rule_index=rule.index if rule else None,
        rule_comment=rule.comment if rule else None,
        status=status,
        bytes=size,
        duration_ms=round((time.monotonic() - rs.started) * 1000, 2),
    )
