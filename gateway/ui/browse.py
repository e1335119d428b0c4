"""/ui/ and /ui/repositories/NAME: what the viewer may pull, with tags and pull commands."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from urllib.parse import urlencode

from aiohttp import web

from gateway.http.visible import visible_page
from gateway.policy.names import NAME_MAX, valid_name
from gateway.ui.render import not_found, render
from gateway.ui.upstream_reads import TagReader, list_tags
from gateway.ui.visit import Visit
from gateway.upstream.client import UpstreamError

PAGE_SIZE = 50
TAG_PAGE_SIZE = 25
TAGS_SHOWN = 5
TAG_LIST_CONCURRENCY = 16


@dataclass(frozen=True, slots=True)
class RepositoryEntry:
    name: str
    tags: list[str] | None  # None: the registry did not say
    total: int


async def _entries(visit: Visit, names: list[str]) -> list[RepositoryEntry]:
    limit = asyncio.Semaphore(TAG_LIST_CONCURRENCY)

    async def entry(name: str) -> RepositoryEntry:
        async with limit:
            try:
                tags = await list_tags(visit.services, name)
            except UpstreamError:
                tags = None
        return RepositoryEntry(name, None if tags is None else tags[:TAGS_SHOWN],
                               len(tags or ()))

    return list(await asyncio.gather(*(entry(name) for name in names)))


async def index(request: web.Request, visit: Visit) -> web.StreamResponse:
    query = request.query.get("q", "").strip().lower()[:NAME_MAX]
    last = request.query.get("last", "")[:NAME_MAX]

    def keep(name: str) -> bool:
        return (not query or query in name) and valid_name(name)

    page = await visible_page(visit.services, visit.snapshot, visit.caller, PAGE_SIZE, last,
                              keep)
    next_url = None
    if page.more and page.repositories:
        params = {"q": query} if query else {}
        next_url = "/ui/?" + urlencode({**params, "last": page.repositories[-1]})
    first_url = "/ui/?" + urlencode({"q": query}) if query else "/ui/"
    return render(request, visit, "index.html", {
        "query": query,
        "entries": await _entries(visit, page.repositories),
        "next_url": next_url,
        "first_url": first_url if last else None,
    })


async def repository(request: web.Request, visit: Visit) -> web.StreamResponse:
    name = request.match_info["name"]
    # Nothing about a repository the viewer may not pull is read, so its page is the 404 page.
    if not valid_name(name):
        return not_found(request, visit)
    verdicts = await visit.services.access.decide(visit.snapshot, visit.subject, name,
                                                  ("pull", "push", "delete"))
    if "pull" not in verdicts.granted:
        return not_found(request, visit)
    tags = await list_tags(visit.services, name)
    if tags is None:
        return not_found(request, visit)
    last = request.query.get("last", "")
    start = tags.index(last) + 1 if last in tags else 0
    shown = tags[start:start + TAG_PAGE_SIZE]
    more = start + TAG_PAGE_SIZE < len(tags)
    may = [action for action in ("push", "delete") if action in verdicts.granted]
    base = f"/ui/repositories/{name}"
    return render(request, visit, "repository.html", {
        "name": name,
        "details": await TagReader(visit.services, name).all_details(shown),
        "total": len(tags),
        "first": start + 1,
        "next_url": f"{base}?{urlencode({'last': shown[-1]})}" if more and shown else None,
        "first_url": base if start else None,
        "may": ["pull", *may],
    })
