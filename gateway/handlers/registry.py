"""/v2/: parse the route, decide for the caller, then answer locally or forward upstream."""

from __future__ import annotations

import json
import time

from aiohttp import web

from gateway.access import Caller, Refusal, Verdict
from gateway.catalog import page_size
from gateway.errors import API_VERSION_HEADER, denied, plain_not_found, registry_error, unauthorized
from gateway.handlers.common import CLIENT_KEY, identify, refusal_response, request_client
from gateway.names import PathError, RoutedPath, parse_v2_path, valid_name
from gateway.proxy import Forwarded, UpstreamError, upstream_unavailable
from gateway.routes import query_problem, query_values, required_actions, without_params
from gateway.scope import RepositoryScope
from gateway.services import SERVICES, Services
from gateway.snapshot import Snapshot

ROUTE_KEY = "rg_route"
COMPLETED = {("manifests", "GET", 200): "pull", ("manifests", "PUT", 201): "push",
             ("manifests", "DELETE", 202): "delete", ("blobs", "DELETE", 202): "delete"}


async def handle_v2(request: web.Request) -> web.StreamResponse:
    services = request.app[SERVICES]
    snapshot = services.holder.current
    path, _, query = request.raw_path.partition("?")
    routed = parse_v2_path(path)
    if routed is None:
        return plain_not_found()
    if isinstance(routed, PathError):
        return registry_error(routed.status, routed.code, routed.message)
    request[ROUTE_KEY] = routed.route
    if routed.route == "base":
        return await _base(request, services, snapshot)
    if routed.route == "catalog":
        return await _catalog(request, services, snapshot, query)
    return await _repository(request, services, snapshot, routed, query)


async def _base(request: web.Request, services: Services, snapshot: Snapshot) -> web.Response:
    """`GET /v2/` always challenges the unauthenticated, so `docker login` sends its password."""
    if request.method not in ("GET", "HEAD"):
        return registry_error(405, "UNSUPPORTED", "The operation is unsupported.")
    caller = await identify(request, services, snapshot)
    if isinstance(caller, Refusal):
        return refusal_response(services, caller, None)
    if not caller.presented_credentials:
        return unauthorized(services.realm, services.service, None, None)
    return web.json_response({}, headers=API_VERSION_HEADER)


async def _catalog(
    request: web.Request, services: Services, snapshot: Snapshot, query: str
) -> web.Response:
    if request.method not in ("GET", "HEAD"):
        return registry_error(405, "UNSUPPORTED", "The operation is unsupported.")
    caller = await identify(request, services, snapshot)
    if isinstance(caller, Refusal):
        return refusal_response(services, caller, "registry:catalog:*")
    params = query_values(query)
    n = page_size(params.get("n"))
    if n is None:
        return registry_error(400, "PAGINATION_NUMBER_INVALID",
                              "invalid number of results requested")

    try:
        page = await services.catalog.page_for(snapshot.policy, caller.subject, n,
                                               params.get("last", ""))
    except UpstreamError as failure:
        return upstream_unavailable(failure)
    headers = dict(API_VERSION_HEADER)
    link = page.link(n)
    if link:
        headers["Link"] = link
    return web.json_response({"repositories": page.repositories}, headers=headers,
                             dumps=lambda o: json.dumps(o, separators=(",", ":")))


async def _repository(
    request: web.Request, services: Services, snapshot: Snapshot, routed: RoutedPath, query: str
) -> web.StreamResponse:
    assert routed.name is not None
    actions = required_actions(routed, request.method)
    if actions is None:
        return registry_error(405, "UNSUPPORTED", "The operation is unsupported.")
    problem = query_problem(query, request.headers.getall("Content-Type", []))
    if problem:
        return registry_error(400, "UNSUPPORTED", problem)
    scope = RepositoryScope(routed.name, frozenset(actions)).format()
    caller = await identify(request, services, snapshot)
    if isinstance(caller, Refusal):
        return refusal_response(services, caller, scope)
    started = time.monotonic()
    verdict = await services.access.authorize(snapshot, caller, routed.name, actions)
    if not verdict.allowed:
        _audit(request, services, caller, routed, verdict, 401, 0, started)
        if not caller.presented_credentials:
            return unauthorized(services.realm, services.service, scope, None)
        return denied(services.realm, services.service, scope)

    owner = f"{caller.subject or ''}\x1f{routed.name}"
    if routed.route == "uploads" and routed.reference:
        if await services.uploads.owner(routed.reference) != owner:
            _audit(request, services, caller, routed, verdict, 404, 0, started)
            return registry_error(404, "BLOB_UPLOAD_UNKNOWN", "blob upload unknown to registry")
    elif routed.route == "uploads":
        query = await _checked_mount(services, snapshot, caller, query)

    path_qs = request.raw_path.partition("?")[0] + (f"?{query}" if query else "")
    response, forwarded = await services.upstream.forward(request, path_qs)
    if forwarded is not None:
        await _track_upload(services, routed, request.method, forwarded, owner)
        if forwarded.status == 201:
            services.catalog.note(routed.name)  # a push may have created the repository
    status = forwarded.status if forwarded else response.status
    size = (forwarded.bytes_down + forwarded.bytes_up) if forwarded else 0
    _audit(request, services, caller, routed, verdict, status, size, started)
    completed = COMPLETED.get((routed.route, request.method, status))
    if completed:
        services.audit.write(completed, request_id=request.get("rg_request_id"),
                             client=request.get(CLIENT_KEY), user=caller.label,
                             repository=routed.name, reference=routed.reference, status=status,
                             bytes=size)
    return response


async def _checked_mount(
    services: Services, snapshot: Snapshot, caller: Caller, query: str
) -> str:
    """A cross-repository mount only from a repository the caller may pull; else a plain upload."""
    params = query_values(query)
    if "mount" not in params and "from" not in params:
        return query
    source = params.get("from", "")
    if valid_name(source) and params.get("mount"):
        verdict = await services.access.authorize(snapshot, caller, source, ("pull",))
        if verdict.allowed:
            return query
    return without_params(query, ("mount", "from"))


async def _track_upload(
    services: Services, routed: RoutedPath, method: str, forwarded: Forwarded, owner: str
) -> None:
    """Bind a new upload to its writer; forget it once finished or cancelled.

    The POST's 202 has no body, so forward() hands it back unsent (proxy._relay_small): the
    binding is stored before the client can send its first PATCH, on any connection or replica.
    """
    if routed.route != "uploads":
        return
    if method == "POST" and forwarded.status == 202:
        upload_id = forwarded.headers.get("Docker-Upload-UUID", "")
        if upload_id:
            await services.uploads.bind(upload_id, owner)
    elif routed.reference and forwarded.status in (201, 204):
        await services.uploads.forget(routed.reference)


def _audit(
    request: web.Request,
    services: Services,
    caller: Caller,
    routed: RoutedPath,
    verdict: Verdict,
    status: int,
    size: int,
    started: float,
) -> None:
    decision = verdict.decision
    rule = decision.rule if decision is not None else None
    services.audit.write(
        "access",
        request_id=request.get("rg_request_id"),
        client=request_client(request, services.holder.current),
        user=caller.label,
        method=request.method,
        route=routed.route,
        repository=routed.name,
        action=verdict.action,
        result="allow" if verdict.allowed else "deny",
        reason=verdict.describe(),
        rule_index=rule.index if rule else None,
        rule_comment=rule.comment if rule else None,
        status=status,
        bytes=size,
        duration_ms=round((time.monotonic() - started) * 1000, 2),
    )
